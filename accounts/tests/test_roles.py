"""The role policy the enforcement asks: accounts.selectors.role_for and friends."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AccountProfile
from accounts.selectors import effective_roles, role_allows, role_for, users_admin
from accounts.validators import validate_roles

pytestmark = pytest.mark.django_db


def with_roles(make_user, roles, **kwargs):
    user = make_user(**kwargs)
    AccountProfile.objects.filter(user=user).update(roles=roles)
    user.refresh_from_db()
    return user


def test_a_named_cluster_wins_over_star(make_user):
    user = with_roles(make_user, {"c-1": "admin", "c-2": "viewer", "*": "operator"})

    assert role_for(user=user, cluster_id="c-1") == "admin"
    assert role_for(user=user, cluster_id="c-2") == "viewer"
    assert role_for(user=user, cluster_id="elsewhere") == "operator"


def test_star_defaults_to_viewer(make_user):
    user = with_roles(make_user, {"c-1": "operator"})

    assert role_for(user=user, cluster_id="c-9") == "viewer"
    assert role_for(user=user, cluster_id="*") == "viewer"
    assert effective_roles(user) == {"c-1": "operator", "*": "viewer"}


def test_a_user_without_a_profile_is_a_viewer(django_user_model):
    user = django_user_model.objects.create_user(username="bare", password="x-unused-x")

    assert role_for(user=user, cluster_id="default") == "viewer"
    assert not AccountProfile.objects.filter(user=user).exists()  # a read writes nothing


def test_a_superuser_is_admin_everywhere_whatever_is_stored(admin_user):
    AccountProfile.objects.filter(user=admin_user).update(roles={"c-1": "viewer"})
    admin_user.refresh_from_db()

    assert role_for(user=admin_user, cluster_id="c-1") == "admin"
    assert effective_roles(admin_user) == {"*": "admin"}
    assert users_admin(admin_user)


def test_a_stored_value_that_is_no_role_counts_as_viewer(make_user):
    user = with_roles(make_user, {"c-1": "root", "*": ["admin"]})

    assert role_for(user=user, cluster_id="c-1") == "viewer"
    assert role_for(user=user, cluster_id="c-2") == "viewer"


def test_an_inactive_user_gets_nothing_more_than_viewer(make_user):
    user = with_roles(make_user, {"*": "admin"})
    user.is_active = False

    assert role_for(user=user, cluster_id="c-1") == "viewer"
    assert not users_admin(user)


def test_role_allows_follows_viewer_operator_admin(make_user):
    user = with_roles(make_user, {"*": "operator"})

    assert role_allows(user=user, cluster_id="c", role="viewer")
    assert role_allows(user=user, cluster_id="c", role="operator")
    assert not role_allows(user=user, cluster_id="c", role="admin")


def test_who_manages_users(make_user):
    assert users_admin(with_roles(make_user, {"*": "admin"}, username="a"))
    assert users_admin(make_user("s", is_staff=True))
    assert not users_admin(with_roles(make_user, {"c-1": "admin"}, username="c"))


@pytest.mark.parametrize(
    "roles",
    [[], {"*": "root"}, {"": "viewer"}, {"has space": "viewer"}, {"x" * 65: "viewer"}],
    ids=["not-a-map", "unknown-role", "empty-id", "bad-id", "long-id"],
)
def test_validate_roles_refuses_bad_maps(roles):
    with pytest.raises(ValidationError):
        validate_roles(roles)


def test_validate_roles_accepts_cluster_ids_and_star():
    validate_roles(
        {"*": "viewer", "default": "admin", "2f1c0e9a-0000-4000-8000-000000000001": "operator"}
    )
