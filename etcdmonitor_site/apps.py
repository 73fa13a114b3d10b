import contextlib
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class SiteConfig(AppConfig):
    name = "etcdmonitor_site"
    verbose_name = "etcdmonitor"

    def ready(self):
        from etcdmonitor_site import checks  # noqa: F401 - registers the system checks
        from etcdmonitor_site.datadir import data_dir_prepare

        # Before any connection: the embedded SQLite database lives in DATA_DIR. A failure is
        # named by system check etcdmonitor.E001.
        with contextlib.suppress(OSError):
            data_dir_prepare(Path(settings.DATA_DIR))
