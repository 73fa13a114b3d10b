"""GET /healthz: is each dependency reachable? Public, always 200, never raises."""

import functools
import json
import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from etcdgateway import EtcdError, cluster_gateway
from etcdmonitor_site.reuse import ReuseWindow

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as exc:  # noqa: BLE001 - a health check reports, it never raises
        logger.warning("health: database unreachable: %s", type(exc).__name__)
        return False


def etcd_ok() -> bool:
    try:
        return cluster_gateway().is_available(max_age=5)
    except (EtcdError, ValueError) as exc:
        logger.warning("health: etcd check failed: %s", exc)
        return False


@functools.cache
def _broker_client(url: str) -> redis.Redis:
    """One pooled client per broker URL: /healthz must not open a connection per request."""
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def broker_ok() -> bool | None:
    """None in embedded mode (there is no broker)."""
    if settings.EMBEDDED_MODE:
        return None
    try:
        return bool(_broker_client(settings.CELERY_BROKER_URL).ping())
    except Exception as exc:  # noqa: BLE001
        logger.warning("health: broker unreachable: %s", type(exc).__name__)
        return False


# One entry: the key only changes when tests change settings.
_health = ReuseWindow(max_entries=1)


def _health_body() -> bytes:
    """The checks' JSON, reused for HEALTH_CACHE_SECONDS per process.

    A load balancer or a monitoring loop polling /healthz must not turn into a database query
    and a Redis round trip per request; a second of staleness does not change its answer.
    """
    key = (settings.CELERY_BROKER_URL, settings.EMBEDDED_MODE, tuple(settings.ETCD_ENDPOINTS))
    body = _health.get(key, settings.HEALTH_CACHE_SECONDS)
    if body is None:
        body = json.dumps(
            {"status": "ok", "database": database_ok(), "etcd": etcd_ok(), "broker": broker_ok()}
        ).encode()
        _health.put(key, body)
    return body


@require_GET
def healthz(request):
    return HttpResponse(_health_body(), content_type="application/json")
