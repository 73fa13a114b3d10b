import sys

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


def _bootstrap_after_migrate(sender, using="default", verbosity=1, **kwargs):
    """`migrate` creates the initial admin when there are no users (the same service as
    runmonitor's start-up)."""
    from accounts.services import admin_bootstrap

    path = admin_bootstrap(using=using)
    if path is not None and verbosity:
        sys.stdout.write(f"Created user 'admin'; its initial password is in {path}\n")


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from django.contrib.auth import get_user_model

        from accounts import checks, schema  # noqa: F401 - registers checks, OpenAPI auth
        from accounts.models import AccountProfile, UserSession
        from accounts.selectors import forget_session_rows

        post_delete.connect(forget_session_rows, sender=UserSession, dispatch_uid="session-rows")
        post_save.connect(
            forget_session_rows, sender=get_user_model(), dispatch_uid="session-rows-user"
        )
        # A session row carries the user's forced-change flag (accounts.selectors).
        post_save.connect(
            forget_session_rows, sender=AccountProfile, dispatch_uid="session-rows-profile"
        )
        post_migrate.connect(
            _bootstrap_after_migrate, sender=self, dispatch_uid="accounts-admin-bootstrap"
        )
