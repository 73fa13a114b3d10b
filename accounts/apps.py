import sys

from django.apps import AppConfig
from django.db.models.signals import post_migrate


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
        from accounts import schema  # noqa: F401 - registers the OpenAPI auth extension

        post_migrate.connect(
            _bootstrap_after_migrate, sender=self, dispatch_uid="accounts-admin-bootstrap"
        )
