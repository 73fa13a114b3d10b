"""Models of the clusters app: the users' remote-cluster KV tabs (reference §4.6)."""

import uuid

from django.conf import settings
from django.db import models


def _unix(moment) -> int:
    return int(moment.timestamp()) if moment else 0


class KvClusterTab(models.Model):
    """One remote etcd cluster a user browses in its own KV tab, owned by exactly one user.

    The etcd password is stored only as an AES-256-GCM blob bound to the row's id
    (`clusters.crypto`); `failure_count` is the probe's consecutive-failure counter, kept
    here so that every worker process sees the same two-strike state.
    """

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        UNKNOWN = "unknown"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kv_tabs"
    )
    name = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=2048)
    username = models.CharField(max_length=255, blank=True, default="")
    password_cipher = models.BinaryField(blank=True, default=b"")
    ca_cert = models.TextField(blank=True, default="")
    insecure_skip_verify = models.BooleanField(default=False)
    sort_order = models.IntegerField(default=0)
    last_status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "kvmanager_kvclustertab"  # created by kvmanager, whose model this was
        ordering = ["owner", "sort_order", "created_at"]
        indexes = [models.Index(fields=["owner", "sort_order"], name="kv_tab_owner_sort")]

    def __str__(self) -> str:
        return f"{self.name} ({self.endpoint})"

    def to_dict(self) -> dict:
        """The reference's TabResponse, plus our two TLS fields; never the cipher or the owner."""
        return {
            "id": str(self.id),
            "name": self.name,
            "endpoint": self.endpoint,
            "username": self.username,
            "has_password": bool(self.password_cipher),
            "sort_order": self.sort_order,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_checked_at": _unix(self.last_checked_at),
            "is_default": False,
            "insecure_skip_verify": self.insecure_skip_verify,
            "has_ca_cert": bool(self.ca_cert),
            "created_at": _unix(self.created_at),
            "updated_at": _unix(self.updated_at),
        }
