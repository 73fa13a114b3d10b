"""WSGI entry point (gunicorn in compose, `runmonitor` in embedded mode)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

application = get_wsgi_application()
