"""Password validators of the project (named in settings.AUTH_PASSWORD_VALIDATORS) and the
validator of a user's role map (`AccountProfile.roles`)."""

import re

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

ROLE_NAMES = ("viewer", "operator", "admin")
ANY_CLUSTER = "*"
# Cluster ids are the records' primary keys (UUID text, "default"); at most 64 characters.
CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
MAX_ROLE_ENTRIES = 500


class MinimumLengthValidator(password_validation.MinimumLengthValidator):
    """Django's minimum length (in characters), read from MIN_PASSWORD_LENGTH at each check.

    Django builds its validators once per process, so a length fixed in OPTIONS would not follow
    the setting when it changes (tests, `override_settings`); reading it here always does.
    """

    def __init__(self, min_length: int | None = None):
        super().__init__(min_length=min_length or 1)
        self._fixed = min_length

    def _current(self) -> int:
        return self._fixed or max(1, settings.MIN_PASSWORD_LENGTH)

    def validate(self, password, user=None):
        self.min_length = self._current()
        super().validate(password, user)

    def get_help_text(self):
        self.min_length = self._current()
        return super().get_help_text()


def validate_roles(value) -> None:
    """A role map: {"<cluster_id>" | "*": "viewer" | "operator" | "admin"} (model validator)."""
    if not isinstance(value, dict):
        raise ValidationError("roles must be an object of cluster id to role")
    if len(value) > MAX_ROLE_ENTRIES:
        raise ValidationError(f"roles may name at most {MAX_ROLE_ENTRIES} clusters")
    for cluster_id, role in value.items():
        if cluster_id != ANY_CLUSTER and not (
            isinstance(cluster_id, str) and CLUSTER_ID.fullmatch(cluster_id)
        ):
            raise ValidationError(f"roles: {str(cluster_id)[:80]!r} is not a cluster id or '*'")
        if role not in ROLE_NAMES:
            raise ValidationError(
                f"roles: the role of {cluster_id!r} must be one of {', '.join(ROLE_NAMES)}"
            )


MAX_SCOPE_PREFIXES = 50
MAX_PREFIX_CHARS = 1024


def _prefix_list(cluster_id: str, name: str, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SCOPE_PREFIXES:
        raise ValidationError(
            f"kv_scopes: {name} of {cluster_id!r} must be a list of at most "
            f"{MAX_SCOPE_PREFIXES} key prefixes"
        )
    for prefix in value:
        if not isinstance(prefix, str) or not prefix or len(prefix) > MAX_PREFIX_CHARS:
            raise ValidationError(
                f"kv_scopes: each {name} prefix of {cluster_id!r} must be a non-empty string of "
                f"at most {MAX_PREFIX_CHARS} characters"
            )
    return value


def validate_kv_scopes(value) -> None:
    """A KV scope map: {"<cluster_id>" | "*": {"read": [prefix, …], "write": [prefix, …]}}
    (model validator). Every write prefix must lie within a read prefix: a user never writes
    what they cannot see."""
    if not isinstance(value, dict):
        raise ValidationError("kv_scopes must be an object of cluster id to scope")
    if len(value) > MAX_ROLE_ENTRIES:
        raise ValidationError(f"kv_scopes may name at most {MAX_ROLE_ENTRIES} clusters")
    for cluster_id, scope in value.items():
        if cluster_id != ANY_CLUSTER and not (
            isinstance(cluster_id, str) and CLUSTER_ID.fullmatch(cluster_id)
        ):
            raise ValidationError(f"kv_scopes: {str(cluster_id)[:80]!r} is not a cluster id or '*'")
        if not isinstance(scope, dict) or set(scope) - {"read", "write"}:
            raise ValidationError(
                f'kv_scopes: the scope of {cluster_id!r} must be {{"read": [...], "write": [...]}}'
            )
        read = _prefix_list(cluster_id, "read", scope.get("read"))
        for prefix in _prefix_list(cluster_id, "write", scope.get("write")):
            if not any(prefix.startswith(allowed) for allowed in read):
                raise ValidationError(
                    f"kv_scopes: the write prefix {prefix[:80]!r} of {cluster_id!r} is not "
                    "within one of its read prefixes"
                )
