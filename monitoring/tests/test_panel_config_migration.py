"""Panel configuration's move from accounts to monitoring changes the migration state only: an
existing database keeps its table and rows (a fresh one gets the same table from accounts'
0002)."""

from contextlib import contextmanager

import pytest
from django.contrib.contenttypes.models import ContentType

from audit.tests.test_migrations import latest, migrate
from monitoring.models import PanelConfig

LAST_BEFORE_THE_MOVE = ("accounts", "0004_auditlog_moves_to_audit")
LAYOUT = [{"id": "chartCPU", "visible": False, "order": 0}]


@contextmanager
def accounts_model_before_the_move():
    """accounts' PanelConfig in a database migrated back to just before the move (and forward
    to the latest state again afterwards)."""
    state = migrate([LAST_BEFORE_THE_MOVE, ("monitoring", "0005_sample_partitioned_by_day")])
    try:
        yield state.loader.project_state(LAST_BEFORE_THE_MOVE).apps.get_model(
            "accounts", "PanelConfig"
        )
    finally:
        migrate(latest())
        ContentType.objects.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_layouts_saved_before_the_move_are_read_through_the_monitoring_app(django_user_model):
    user = django_user_model.objects.create_user(username="alice", password="pw-123456789")
    content_type_id = ContentType.objects.get_for_model(PanelConfig).pk

    with accounts_model_before_the_move() as old_model:
        saved = old_model.objects.create(user_id=user.pk, panels=LAYOUT, cards=None)
        content_type_before = ContentType.objects.get(pk=content_type_id).app_label

    layout = PanelConfig.objects.get(pk=saved.pk)
    assert (PanelConfig._meta.db_table, layout.panels, layout.cards) == (
        "accounts_panelconfig",
        LAYOUT,
        None,
    )
    assert user.panel_config == layout
    # Permissions and admin history point at the content type, which follows the model.
    assert (content_type_before, ContentType.objects.get(pk=content_type_id).app_label) == (
        "accounts",
        "monitoring",
    )
