"""Reads of the KV tabs: the synthetic default tab and a user's own tabs, in order."""

from django.conf import settings

from clusters.models import KvClusterTab
from etcdgateway import normalise_endpoint


def default_tab() -> dict:
    """The configured cluster as a tab: never stored, always first, not editable or closable."""
    return {
        "id": "default",
        "name": "default",
        "endpoint": normalise_endpoint(settings.ETCD_ENDPOINTS[0]),
        "username": "",
        "has_password": False,
        "sort_order": -1,
        "last_status": KvClusterTab.Status.OK,
        "last_error": "",
        "last_checked_at": 0,
        "is_default": True,
        "insecure_skip_verify": settings.ETCD_TLS_INSECURE_SKIP_VERIFY,
        "has_ca_cert": bool(settings.ETCD_TLS_CA_CERT),
        "created_at": 0,
        "updated_at": 0,
    }


def tabs_for_user(*, user) -> list[dict]:
    """`default` followed by the user's own tabs by sort_order (one query; only their rows)."""
    own = KvClusterTab.objects.filter(owner=user).order_by("sort_order", "created_at")
    return [default_tab(), *(tab.to_dict() for tab in own)]
