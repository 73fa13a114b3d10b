"""`manage.py unlock --username U`: clear the failure counter and lock (password unchanged)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import services


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="account to unlock (default admin)")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"user {username!r} does not exist")
        services.account_unlock(user=user, actor="cli", source="cli")
        self.stdout.write(f"Account {username!r} unlocked.")
