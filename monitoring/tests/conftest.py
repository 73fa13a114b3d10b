"""Fixtures shared by the monitoring tests."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from monitoring import timeseries


@pytest.fixture
def fresh_slot_cache():
    """Forget the process's metric-slot cache around a test: the test database is flushed, so
    slots remembered from another test name rows that are gone (production never flushes)."""
    timeseries._slots.clear()
    yield
    timeseries._slots.clear()


@pytest.fixture
def api(db):
    """An API client signed in as a plain viewer."""
    user = get_user_model().objects.create_user(username="viewer", password="pw-123456789")
    client = APIClient()
    client.force_authenticate(user=user)
    return client
