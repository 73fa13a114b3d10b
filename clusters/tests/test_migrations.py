"""The KV tab model's move from kvmanager to clusters changes the migration state only: an
existing database keeps its table and rows (ciphertexts included), a fresh one gets the same
table."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from clusters.crypto import password_decrypt, password_encrypt
from clusters.models import KvClusterTab
from tests.migrating import latest, migrate, table_constraints

LAST_BEFORE_THE_MOVE = ("kvmanager", "0001_kv_cluster_tabs")
BEFORE_THE_MOVE = [LAST_BEFORE_THE_MOVE, ("clusters", None)]


@pytest.mark.django_db(transaction=True)
def test_tabs_stored_before_the_move_are_read_through_the_clusters_app():
    owner = get_user_model().objects.create_user(username="alice", password="a" * 12)
    content_type_id = ContentType.objects.get_for_model(KvClusterTab).pk
    tab_id = uuid.uuid4()
    cipher = password_encrypt("s3cret", tab_id=str(tab_id))
    try:
        executor = migrate(BEFORE_THE_MOVE)
        old_model = executor.loader.project_state(LAST_BEFORE_THE_MOVE).apps.get_model(
            "kvmanager", "KvClusterTab"
        )
        now = timezone.now()
        old_model.objects.create(
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
            created_at=now,
            updated_at=now,
        )
        assert ContentType.objects.get(pk=content_type_id).app_label == "kvmanager"
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()

    tab = KvClusterTab.objects.get(pk=tab_id)
    assert (tab.owner, tab.name, tab.endpoint, tab.username) == (
        owner,
        "remote",
        "http://192.0.2.10:2379",
        "app",
    )
    assert (tab.sort_order, tab.last_status, tab.failure_count) == (3, "error", 2)
    assert password_decrypt(tab.password_cipher, tab_id=str(tab.id)) == "s3cret"
    # Permissions and admin history point at the content type, which follows the model.
    assert ContentType.objects.get(pk=content_type_id).app_label == "clusters"


@pytest.mark.django_db
def test_a_fresh_database_has_the_table_with_its_index():
    constraints = table_constraints("kvmanager_kvclustertab")

    assert KvClusterTab._meta.db_table == "kvmanager_kvclustertab"
    assert constraints["kv_tab_owner_sort"]["columns"] == ["owner_id", "sort_order"]
