"""Fixtures of the ops tests: an operator with an API client."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import AccountProfile


@pytest.fixture
def operator(db):
    """Admin on every cluster by role (defragment, compact, move-leader need it; issue 21),
    neither staff nor superuser."""
    user = get_user_model().objects.create_user("operator", password="operator-password-1")
    AccountProfile.objects.create(user=user, roles={"*": "admin"})
    return user


@pytest.fixture
def ops_client(operator):
    client = APIClient()
    client.force_authenticate(user=operator)
    return client
