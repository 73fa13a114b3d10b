from django.apps import AppConfig
from django.apps import apps as django_apps
from django.db.models.signals import post_migrate


def _default_after_migrate(sender, using="default", apps=None, **kwargs):
    """`migrate` (and so every start-up, which migrates) writes the record `default` from the
    environment; requests that list records bring it up to date again (default_cluster_sync)."""
    from clusters.services import default_cluster_sync

    try:
        # A migration back to the tabs (or not yet to the records) has no table for it.
        (apps or django_apps).get_model("clusters", "Cluster")
    except LookupError:
        return
    if using == "default":
        default_cluster_sync()


def check_default_environment(app_configs=None, **kwargs):
    """ETCD_CLUSTER_ENVIRONMENT must be one of the labels the dashboard has a colour for."""
    from django.conf import settings
    from django.core import checks

    from clusters.models import Cluster

    if settings.ETCD_CLUSTER_ENVIRONMENT in Cluster.Environment.values:
        return []
    return [
        checks.Error(
            f"ETCD_CLUSTER_ENVIRONMENT={settings.ETCD_CLUSTER_ENVIRONMENT!r} is not one of "
            f"{', '.join(Cluster.Environment.values)}",
            id="clusters.E001",
        )
    ]


class ClustersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clusters"
    verbose_name = "Clusters"

    def ready(self):
        from django.core import checks

        from etcdgateway.egress import check_allowlist_setting

        # Tabs are the first users of the allowlist: a bad entry must show at startup.
        checks.register(check_allowlist_setting)
        checks.register(check_default_environment)
        post_migrate.connect(
            _default_after_migrate, sender=self, dispatch_uid="clusters-default-record"
        )
