"""`manage.py unlock --username U`: clear the user's sign-in locks from every address and the
slow-down (password unchanged); says from how many addresses the user was locked out."""

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
        locked = services.account_unlock(user=user, actor="cli", source="cli")
        detail = f"was locked from {locked} address(es)" if locked else "was not locked"
        self.stdout.write(f"Account {username!r} unlocked ({detail}).")
