from django.apps import AppConfig


class KvmanagerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "kvmanager"
    verbose_name = "KV manager"
