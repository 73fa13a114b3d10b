"""Models of the notifications app: channels, the outbox, and what each channel last got per
alert (for the repeat interval)."""

from django.db import models

from notifications.notices import AlertNotice

SECRET_SHOWN = "***"  # noqa: S105 - how a stored secret is shown, not a secret


class Channel(models.Model):
    """Where notifications go: an email recipient list, a JSON webhook (Alertmanager's webhook
    payload), a Slack-compatible webhook, or a Prometheus Alertmanager.

    `config` holds what may be shown: every field of the channel's settings with the URL in its
    masked form (`notifications.masking.url_masked`) and no password. The real URL and the SMTP
    password live only in `secret_cipher`, AES-256-GCM with the project's key and the channel id
    as associated data (`notifications.masking.secrets_encrypt`).
    """

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"
        SLACK = "slack"
        ALERTMANAGER = "alertmanager"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(default=dict)
    secret_cipher = models.BinaryField(blank=True, default=b"")
    has_password = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def to_dict(self) -> dict:
        """The API's channel: config with the URL masked and the password as "***" (or "")."""
        config = dict(self.config)
        if self.kind == self.Kind.EMAIL:
            config["password"] = SECRET_SHOWN if self.has_password else ""
        return {
            "id": self.pk,
            "name": self.name,
            "kind": self.kind,
            "config": config,
            "enabled": self.enabled,
        }


class OutboxMessage(models.Model):
    """One notice to deliver to one channel, kept until sent (or given up) so that nothing is
    lost when a worker stops.

    A delivery run claims a due row by setting `state=sending`, a fresh `claim_token` and a
    lease (`claimed_until`); only the holder of the token may mark it sent or failed. A row
    whose lease ran out (its worker died) is due again (see `services.outbox_deliver`).
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"  # gave up after NOTIFICATIONS_MAX_ATTEMPTS
        SUPERSEDED = "superseded"  # a newer notice of the same alert replaced it unsent

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="outbox")
    fingerprint = models.CharField(max_length=128)
    alert_status = models.CharField(max_length=16)  # the notice's "firing" / "resolved"
    notice = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="outbox_due"),
            models.Index(fields=["channel", "fingerprint"], name="outbox_channel_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_status} {self.fingerprint} → {self.channel_id} ({self.state})"

    def alert_notice(self) -> AlertNotice:
        return AlertNotice.from_dict(self.notice)


class ChannelAlertState(models.Model):
    """What a channel was last given for one alert (fingerprint): the repeat interval's memory.

    A firing alert is queued again only when it is new to the channel, its severity changed, it
    had resolved, or `repeat_interval` passed since `last_queued_at`; a resolved one once.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="alert_states")
    fingerprint = models.CharField(max_length=128)
    last_status = models.CharField(max_length=16)
    last_severity = models.CharField(max_length=16)
    last_queued_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "fingerprint"], name="channel_alert_once")
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint} on {self.channel_id}: {self.last_status}"
