"""Panel configuration's move from accounts to monitoring changes the migration state only: an
existing database keeps its table and rows, a fresh one gets the same table."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from monitoring.models import PanelConfig

LAST_BEFORE_THE_MOVE = ("accounts", "0004_auditlog_moves_to_audit")
BEFORE_THE_MOVE = [LAST_BEFORE_THE_MOVE, ("monitoring", "0005_sample_partitioned_by_day")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # reloaded: the graph's state after the run


def latest() -> list:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_layouts_saved_before_the_move_are_read_through_the_monitoring_app(django_user_model):
    user = django_user_model.objects.create_user(username="alice", password="pw-123456789")
    content_type_id = ContentType.objects.get_for_model(PanelConfig).pk
    try:
        executor = migrate(BEFORE_THE_MOVE)
        old_model = executor.loader.project_state(LAST_BEFORE_THE_MOVE).apps.get_model(
            "accounts", "PanelConfig"
        )
        saved = old_model.objects.create(
            user_id=user.pk, panels=[{"id": "chartCPU", "visible": False, "order": 0}], cards=None
        )
        assert ContentType.objects.get(pk=content_type_id).app_label == "accounts"
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()

    layout = PanelConfig.objects.get(pk=saved.pk)
    assert (layout.user, layout.cards) == (user, None)
    assert layout.panels == [{"id": "chartCPU", "visible": False, "order": 0}]
    assert user.panel_config == layout
    # Permissions and admin history point at the content type, which follows the model.
    assert ContentType.objects.get(pk=content_type_id).app_label == "monitoring"


@pytest.mark.django_db
def test_a_fresh_database_has_the_table_with_one_layout_per_user():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "accounts_panelconfig")

    assert PanelConfig._meta.db_table == "accounts_panelconfig"
    unique = {tuple(c["columns"]) for c in constraints.values() if c["unique"]}
    assert ("user_id",) in unique
