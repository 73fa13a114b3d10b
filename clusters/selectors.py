"""Reads of the clusters app: the records a user may see, the monitored ones, and the KV tabs
(the synthetic default tab and a user's own clusters, in order)."""

import functools

from django.conf import settings
from django.db import connection
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from clusters.models import DEFAULT_CLUSTER_ID, Cluster
from etcdgateway import normalise_endpoint
from etcdmonitor_site import rawsql


def default_tab() -> dict:
    """The configured cluster as a tab: never stored, always first, not editable or closable."""
    return {
        "id": DEFAULT_CLUSTER_ID,
        "name": "default",
        "endpoint": normalise_endpoint(settings.ETCD_ENDPOINTS[0]),
        "username": "",
        "has_password": False,
        "sort_order": -1,
        "last_status": Cluster.Status.OK,
        "last_error": "",
        "last_checked_at": 0,
        "is_default": True,
        "insecure_skip_verify": settings.ETCD_TLS_INSECURE_SKIP_VERIFY,
        "has_ca_cert": bool(settings.ETCD_TLS_CA_CERT),
        "created_at": 0,
        "updated_at": 0,
    }


def tabs_for_user(*, user) -> list[dict]:
    """`default` followed by the user's own clusters by sort_order (one query; only their
    rows)."""
    own = Cluster.objects.filter(owner=user).order_by("sort_order", "created_at")
    return [default_tab(), *(tab.to_tab_dict() for tab in own)]


def _rank() -> Case:
    """0 for the default, 1 for shared records, 2 for users' own."""
    return Case(
        When(pk=DEFAULT_CLUSTER_ID, then=Value(0)),
        When(owner=None, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


def clusters_visible(*, user) -> QuerySet[Cluster]:
    """The records `user` may see: shared ones (the default among them) and the user's own;
    the default first, then shared by name, then the user's own in tab order. One query."""
    return (
        Cluster.objects.filter(Q(owner=None) | Q(owner=user))
        .select_related("owner")
        .order_by(_rank(), "sort_order", "name", "created_at")
    )


def cluster_visible(*, user, cluster_id: str) -> Cluster | None:
    """The record `cluster_id` if `user` may see it (shared or the user's own), else None."""
    return clusters_visible(user=user).filter(pk=cluster_id).first()


def fleet_clusters(*, user) -> list[Cluster]:
    """`clusters_visible` as a list (the fleet), the default record brought up to date with
    the environment first (one read; a write only when the environment changed)."""
    from clusters.services import default_cluster_sync  # services never read through here

    default_cluster_sync()
    return list(clusters_visible(user=user))


def _monitored():
    """Monitored records in their order (the default first, then by name), the default record
    brought up to date with the environment first (one read, a write only when it changed)."""
    from clusters.services import default_cluster_sync  # services never read through here

    default_cluster_sync()
    return Cluster.objects.filter(monitored=True).order_by(_rank(), "name", "created_at")


def monitored_clusters() -> list[Cluster]:
    """Every record with `monitored` set, the default first when it is monitored, then by name.
    Owners loaded, so `to_dict()` needs no query."""
    return list(_monitored().select_related("owner"))


def monitored_cluster_ids() -> list[str]:
    """The ids of `monitored_clusters()`, in its order, without loading the records: the
    periodic jobs list them every few seconds and read what they need per round."""
    return list(_monitored().values_list("pk", flat=True))


# What connecting to a record needs (clusters.connection.stored_config); nothing else is read.
_CONNECTION_FIELDS = [
    "id",
    "name",
    "endpoints",
    "username",
    "password_cipher",
    "ca_cert",
    "insecure_skip_verify",
    "monitored",
]


@functools.cache
def _monitored_record_sql(vendor: str) -> str:
    monitored = rawsql.column(Cluster, "monitored")
    return (
        f"SELECT {rawsql.select_list(Cluster, 'c', _CONNECTION_FIELDS)} "  # noqa: S608
        f"FROM {rawsql.table(Cluster)} c WHERE c.id = %s AND c.{monitored}"
    )


def monitored_records(cluster_ids: list[str]) -> dict[str, Cluster]:
    """`monitored_record` of many ids in one query (a fleet round): {id: record}, monitored
    ones only."""
    rows = rawsql.rows_in(_monitored_record_sql(connection.vendor), "c.id = %s", cluster_ids)
    records = [rawsql.instance(Cluster, _CONNECTION_FIELDS, row) for row in rows]
    return {record.pk: record for record in records}


def monitored_record(cluster_id: str) -> Cluster | None:
    """The record `cluster_id` with its connection fields when it is monitored, else None.

    Read by every collection cycle and health probe of every cluster (several a second across
    a fleet): hand-written, as the ORM's compile cost several times the query here."""
    with connection.cursor() as cursor:
        cursor.execute(_monitored_record_sql(connection.vendor), [cluster_id])
        row = cursor.fetchone()
    return rawsql.instance(Cluster, _CONNECTION_FIELDS, row) if row else None
