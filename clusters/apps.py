from django.apps import AppConfig


class ClustersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clusters"
    verbose_name = "Clusters"

    def ready(self):
        from django.core import checks

        from etcdgateway.egress import check_allowlist_setting

        # Tabs are the first users of the allowlist: a bad entry must show at startup.
        checks.register(check_allowlist_setting)
