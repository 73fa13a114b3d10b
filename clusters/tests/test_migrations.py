"""The KV tab model's moves: from kvmanager to clusters (state only), then into cluster records
(issue 19). Rows, ids and ciphertexts survive both; the migrated tabs keep working."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from accounts.models import AccountProfile
from clusters.crypto import password_decrypt, password_encrypt
from clusters.models import Cluster
from tests.migrating import latest, migrate, table_constraints

LAST_BEFORE_THE_MOVE = ("kvmanager", "0001_kv_cluster_tabs")
BEFORE_THE_MOVE = [LAST_BEFORE_THE_MOVE, ("clusters", None)]
LAST_TAB_STATE = ("clusters", "0001_initial")


def _old_tab(executor, state, app_label, **fields):
    model = executor.loader.project_state(state).apps.get_model(app_label, "KvClusterTab")
    now = timezone.now()
    return model.objects.create(created_at=now, updated_at=now, **fields)


@pytest.mark.django_db(transaction=True)
def test_tabs_stored_before_the_move_are_read_through_the_clusters_app():
    owner = get_user_model().objects.create_user(username="alice", password="a" * 12)
    content_type_id = ContentType.objects.get_for_model(Cluster).pk
    tab_id = uuid.uuid4()
    cipher = password_encrypt("s3cret", tab_id=str(tab_id))
    try:
        executor = migrate(BEFORE_THE_MOVE)
        _old_tab(
            executor,
            LAST_BEFORE_THE_MOVE,
            "kvmanager",
            id=tab_id,
            owner_id=owner.pk,
            name="remote",
            endpoint="http://192.0.2.10:2379",
            username="app",
            password_cipher=cipher,
            sort_order=3,
            last_status="error",
            last_error="unreachable: connection refused",
            failure_count=2,
        )
        assert ContentType.objects.get(pk=content_type_id).app_label == "kvmanager"
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()

    tab = Cluster.objects.get(pk=str(tab_id))
    assert (tab.owner, tab.name, tab.endpoints, tab.username) == (
        owner,
        "remote",
        ["http://192.0.2.10:2379"],
        "app",
    )
    assert (tab.sort_order, tab.last_status, tab.failure_count) == (3, "error", 2)
    assert password_decrypt(tab.password_cipher, tab_id=str(tab.id)) == "s3cret"
    # Permissions and admin history point at the content type, which follows the model.
    content_type = ContentType.objects.get(pk=content_type_id)
    assert (content_type.app_label, content_type.model) == ("clusters", "cluster")


@pytest.mark.django_db(transaction=True)
def test_tabs_become_their_owners_clusters_with_ciphertexts_intact():
    owner = get_user_model().objects.create_user(username="carol", password="c" * 12)
    content_type_id = ContentType.objects.get_for_model(Cluster).pk
    tab_id = uuid.uuid4()
    cipher = password_encrypt("pw-of-carol", tab_id=str(tab_id))
    try:
        executor = migrate([LAST_TAB_STATE])
        _old_tab(
            executor,
            LAST_TAB_STATE,
            "clusters",
            id=tab_id,
            owner_id=owner.pk,
            name="staging",
            endpoint="https://etcd.example:2379",
            username="carol",
            password_cipher=cipher,
            ca_cert="PEM\n",
            insecure_skip_verify=True,
            sort_order=2,
        )
        assert ContentType.objects.get(pk=content_type_id).model == "kvclustertab"
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()

    cluster = Cluster.objects.get(pk=str(tab_id))
    assert cluster.pk == str(tab_id)  # the UUID's hyphenated text, which the blob is bound to
    assert bytes(cluster.password_cipher) == cipher
    assert password_decrypt(cluster.password_cipher, tab_id=cluster.pk) == "pw-of-carol"
    assert cluster.owner == owner and cluster.endpoints == ["https://etcd.example:2379"]
    assert (cluster.ca_cert, cluster.insecure_skip_verify, cluster.sort_order) == ("PEM\n", True, 2)
    assert (cluster.labels, cluster.monitored) == ({"environment": "other"}, False)
    assert ContentType.objects.get(pk=content_type_id).model == "cluster"


@pytest.mark.django_db(transaction=True)
def test_the_migration_back_restores_the_tabs():
    owner = get_user_model().objects.create_user(username="dave", password="d" * 12)
    now = timezone.now()
    tab_id = str(uuid.uuid4())
    cipher = password_encrypt("back", tab_id=tab_id)
    Cluster.objects.create(
        id=tab_id,
        owner=owner,
        name="t",
        endpoints=["http://192.0.2.7:2379"],
        password_cipher=cipher,
        username="u",
        created_at=now,
        updated_at=now,
    )
    try:
        executor = migrate([LAST_TAB_STATE])
        old = executor.loader.project_state(LAST_TAB_STATE).apps.get_model(
            "clusters", "KvClusterTab"
        )
        row = old.objects.get(pk=uuid.UUID(tab_id))
        assert row.endpoint == "http://192.0.2.7:2379" and row.owner_id == owner.pk
        assert password_decrypt(row.password_cipher, tab_id=str(row.id)) == "back"
        assert old.objects.count() == 1  # the shared default record has no tab form
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()


@pytest.mark.django_db
def test_a_fresh_database_has_the_table_with_its_index():
    constraints = table_constraints(Cluster._meta.db_table)

    assert constraints["cluster_owner_sort"]["columns"] == ["owner_id", "sort_order"]


@pytest.mark.django_db(transaction=True)
def test_a_migrated_tab_keeps_working_through_the_tab_and_kv_apis(
    auth_cluster, bearer_client, kv_prefix
):
    """A tab stored before the records, with a password for an auth-enabled cluster: after the
    migration the tab API lists it unchanged and the KV routes reach its cluster with the
    password decrypted from the copied blob."""
    from clusters.tests.conftest import remote_get

    owner = get_user_model().objects.create_user(username="erin", password="e" * 12)
    # Writing keys on one's own cluster needs the operator role there too (issue 21).
    AccountProfile.objects.create(user=owner, roles={"*": "operator"})
    url = auth_cluster.client_urls[0]
    tab_id = uuid.uuid4()
    try:
        executor = migrate([LAST_TAB_STATE])
        _old_tab(
            executor,
            LAST_TAB_STATE,
            "clusters",
            id=tab_id,
            owner_id=owner.pk,
            name="secured",
            endpoint=url,
            username="root",
            password_cipher=password_encrypt("rootpw", tab_id=str(tab_id)),
            sort_order=1,
            last_status="ok",
        )
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()
    client = bearer_client(owner)

    tabs = client.get("/api/kv/tabs").json()["tabs"]
    put = client.put(
        f"/api/kv/v3/put?tab_id={tab_id}", {"key": f"{kv_prefix}m", "value": "1"}, format="json"
    )
    read = client.get("/api/kv/v3/get", {"key": f"{kv_prefix}m", "cluster_id": str(tab_id)})
    renamed = client.patch(f"/api/kv/tabs/{tab_id}", {"name": "renamed"}, format="json")

    assert [(t["id"], t["name"], t["endpoint"], t["has_password"]) for t in tabs] == [
        ("default", "default", tabs[0]["endpoint"], False),
        (str(tab_id), "secured", url, True),
    ]
    assert put.status_code == 200, put.json()
    assert remote_get(url, f"{kv_prefix}m", username="root", password="rootpw") == b"1"
    assert read.json()["node"]["value"] == "1"
    assert renamed.status_code == 200 and renamed.json()["tab"]["name"] == "renamed"


@pytest.mark.django_db(transaction=True)
def test_migrating_back_to_the_tabs_survives_the_default_record_hook():
    """post_migrate writes the default record, but not into a state without the records."""
    from django.core.management import call_command

    try:
        call_command("migrate", "clusters", "0001_initial", verbosity=0)
        executor = migrate([LAST_TAB_STATE])
        assert (
            "clusters",
            "0002_kvclustertab_becomes_cluster",
        ) not in executor.loader.applied_migrations
    finally:
        call_command("migrate", verbosity=0)
        ContentType.objects.clear_cache()

    assert Cluster.objects.get(pk="default").monitored is True
