"""etcdmonitor: health, keyspace and maintenance of etcd clusters, as one Django project."""

__version__ = "0.1.0"

# Imported here so that `shared_task` binds to our app in every process (web, worker, beat).
from etcdmonitor_site.celery import app as celery_app

__all__ = ["__version__", "celery_app"]
