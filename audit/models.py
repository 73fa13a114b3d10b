"""The audit log: one row per audited action, in the table it has always had."""

from django.db import models


class AuditLog(models.Model):
    """One audited action: every mutation (KV write, ops action, login, password change), failures
    included. Fields match the reference's `ops_audit_log`, plus the client IP. Never holds a
    password or token."""

    timestamp = models.DateTimeField(db_index=True)
    username = models.CharField(max_length=150, blank=True, default="")
    operation = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=1024, blank=True, default="")
    params = models.TextField(blank=True, default="")
    result = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    success = models.BooleanField(default=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        # Created by accounts' first migration; the model moved here, its rows stayed put.
        db_table = "accounts_auditlog"
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["operation", "timestamp"], name="audit_op_ts")]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.username} {self.operation} {self.target}"

    def to_dict(self) -> dict:
        """The reference's audit entry shape (timestamp in Unix seconds)."""
        return {
            "id": self.id,
            "timestamp": int(self.timestamp.timestamp()),
            "username": self.username,
            "operation": self.operation,
            "target": self.target,
            "params": self.params,
            "result": self.result,
            "duration_ms": self.duration_ms,
            "success": self.success,
            "client_ip": self.client_ip,
        }
