"""Fixtures of the ops tests: an operator with an API client."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_user("operator", password="operator-password-1")


@pytest.fixture
def ops_client(operator):
    client = APIClient()
    client.force_authenticate(user=operator)
    return client
