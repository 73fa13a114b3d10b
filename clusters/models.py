"""Models of the clusters app: the etcd clusters one deployment knows (issue 19).

A cluster is shared (no owner: registered by staff, visible to every signed-in user) or a user's
own (what a KV tab is, reference §4.6). The cluster of `ETCD_ENDPOINTS` is the record `default`,
written from the environment only.
"""

import uuid

from django.conf import settings
from django.db import models

DEFAULT_CLUSTER_ID = "default"


def _unix(moment) -> int:
    return int(moment.timestamp()) if moment else 0


def new_cluster_id() -> str:
    return str(uuid.uuid4())


class Cluster(models.Model):
    """One etcd cluster: where it is, how to authenticate, its labels and who owns it.

    The etcd password is stored only as an AES-256-GCM blob bound to the row's id
    (`clusters.crypto`; ids of tabs from before the records are their UUIDs' text, which is
    what the blobs were bound to). `failure_count` is the tab probe's consecutive-failure
    counter, kept here so that every worker process sees the same two-strike state. The
    `default` record mirrors the environment: its secrets stay there (nothing is stored).
    """

    class Status(models.TextChoices):
        OK = "ok"
        ERROR = "error"
        UNKNOWN = "unknown"

    class Environment(models.TextChoices):
        PROD = "prod"
        STAGING = "staging"
        DEV = "dev"
        OTHER = "other"

    id = models.CharField(primary_key=True, max_length=64, default=new_cluster_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="clusters",
    )
    name = models.CharField(max_length=200)
    endpoints = models.JSONField(default=list)
    username = models.CharField(max_length=255, blank=True, default="")
    password_cipher = models.BinaryField(blank=True, default=b"")
    ca_cert = models.TextField(blank=True, default="")
    insecure_skip_verify = models.BooleanField(default=False)
    labels = models.JSONField(default=dict, blank=True)
    monitored = models.BooleanField(default=False)
    sort_order = models.IntegerField(default=0)
    last_status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["sort_order", "created_at"]
        indexes = [models.Index(fields=["owner", "sort_order"], name="cluster_owner_sort")]

    def __str__(self) -> str:
        return f"{self.name} ({','.join(self.endpoints)})"

    @property
    def is_default(self) -> bool:
        return self.pk == DEFAULT_CLUSTER_ID

    @property
    def endpoint(self) -> str:
        """The first endpoint: a tab has exactly one."""
        return self.endpoints[0] if self.endpoints else ""

    @property
    def environment(self) -> str:
        return (self.labels or {}).get("environment", self.Environment.OTHER)

    def to_dict(self) -> dict:
        """The record of `/api/clusters`: never the password or the CA bundle itself."""
        has_password, has_ca_cert = bool(self.password_cipher), bool(self.ca_cert)
        if self.is_default:  # its credentials and TLS files are the environment's
            has_password = bool(settings.ETCD_PASSWORD)
            has_ca_cert = bool(settings.ETCD_TLS_CA_CERT)
        return {
            "id": self.pk,
            "name": self.name,
            "endpoints": list(self.endpoints),
            "username": self.username,
            "has_password": has_password,
            "insecure_skip_verify": self.insecure_skip_verify,
            "has_ca_cert": has_ca_cert,
            "labels": dict(self.labels or {}),
            "monitored": self.monitored,
            # The owner must be loaded with the row (selectors use select_related).
            "owner": self.owner.get_username() if self.owner_id else None,
            "created_at": _unix(self.created_at),
        }

    def to_tab_dict(self) -> dict:
        """The reference's TabResponse, plus our two TLS fields; never the cipher or the owner."""
        return {
            "id": self.pk,
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
