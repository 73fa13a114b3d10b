"""`manage.py reset_password --username U`: set a new password the user must change at next login.

Prompts twice without echo (a terminal is required unless `--password-stdin` reads one line from
standard input), clears the lock, ends the user's sessions and audits `cli_reset_password`.
"""

import getpass
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from etcdmonitor_site.errors import DomainError


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="account to reset (default admin)")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the new password from the first line of standard input (scripts)",
        )

    def handle(self, *args, username, password_stdin, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"user {username!r} does not exist")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            if not sys.stdin.isatty():
                raise CommandError(
                    "reset_password needs an interactive terminal (or use --password-stdin)"
                )
            password = getpass.getpass("New password: ")
            if getpass.getpass("Retype new password: ") != password:
                raise CommandError("passwords do not match")
        try:
            revoked = services.password_reset(user=user, new_password=password, actor="cli")
        except DomainError as refusal:  # the password policy, or no free hashing slot
            raise CommandError(refusal.message) from None
        self.stdout.write(
            f"Password of {username!r} reset; it must be changed at next login. "
            f"Lock cleared, {revoked} session(s) ended."
        )
