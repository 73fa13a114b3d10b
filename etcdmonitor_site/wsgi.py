"""WSGI entry point: the Django app that `etcdmonitor_site.asgi` runs on its thread pool."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

application = get_wsgi_application()
