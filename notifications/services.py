"""Writes of the notifications app: channels (audited), the outbox and its delivery.

Delivery guarantee (`outbox_deliver`): at least once, and in practice once.
- `notices_enqueue` writes one outbox row per notice x enabled channel in the caller's
  transaction, so a notice the engine recorded is never lost.
- A delivery run claims one due row at a time in a short transaction (PostgreSQL:
  `SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers never wait for or take the same row;
  SQLite, where one transaction writes at a time: a conditional UPDATE). The claim sets
  `state=sending`, a new `claim_token`, `attempts + 1` and a lease (`claimed_until`,
  NOTIFICATIONS_LEASE_SECONDS, longer than any one send can take) and commits before the send.
- After the send the row is marked `sent` (or `pending` with a backoff, or `failed` after
  NOTIFICATIONS_MAX_ATTEMPTS) by an UPDATE that matches the claim token: a worker whose lease ran
  out can no longer change a row another worker has since claimed.
- A worker that dies (or restarts) with a row claimed leaves it `sending`; once the lease ends
  the row is due again and exactly one worker re-claims it. A row marked `sent` is never claimed
  again. The one window for a duplicate is a worker dying after the receiver took the message
  and before its UPDATE committed (milliseconds); receivers can drop such a duplicate by the
  stable `Idempotency-Key` header / email Message-ID of the row, or the alert's fingerprint.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from audit.services import Actor, audit_record, audited
from etcdmonitor_site import policy
from etcdmonitor_site.errors import Conflict, Forbidden, InvalidInput
from notifications import payloads, senders
from notifications.channels import (
    ALERTMANAGER_REPEAT_SECONDS,
    DEFAULT_REPEAT_SECONDS,
    config_checked,
    config_merged,
    secrets_decrypt,
    secrets_encrypt,
)
from notifications.models import Channel, ChannelAlertState, OutboxMessage
from notifications.notices import AlertNotice

logger = logging.getLogger(__name__)

State = OutboxMessage.State
OPEN_STATES = (State.PENDING, State.SENDING)
TEST_RULE = "etcdmonitor_test"


# --- channels -------------------------------------------------------------------------------------


def channel_writer_check(*, actor: Actor, operation: str, target: str = "") -> None:
    """Only admins (of every cluster: etcdmonitor_site.policy) change channels; a refusal is
    audited and raises Forbidden."""
    if policy.allows(user=actor.user, role=policy.ADMIN, cluster_id=None):
        return
    message = policy.denial_message(what=policy.CHANNELS, role=policy.ADMIN, cluster_id=None)
    audit_record(
        operation=operation,
        username=actor.username,
        target=target,
        result=message,
        success=False,
        client_ip=actor.client_ip,
    )
    raise Forbidden(message)


def _name_checked(name: str, *, exclude_id: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("name: is required")
    taken = Channel.objects.filter(name=name).exclude(pk=exclude_id).exists()
    if taken:
        raise Conflict(f"a channel named {name!r} already exists")
    return name


def channel_create(
    *, actor: Actor, name: str, kind: str, config: dict, enabled: bool = True
) -> Channel:
    """Add a channel; its URL / password are stored encrypted, the rest as given (checked)."""
    with audited("alert_channel_create", actor=actor, target=name) as action:
        if kind not in Channel.Kind.values:
            raise InvalidInput("kind: must be one of email, webhook, slack, alertmanager")
        shown, secrets = config_checked(kind, config)
        action.params = {"kind": kind, "config": shown, "enabled": enabled}
        now = timezone.now()
        with transaction.atomic():
            channel = Channel(
                name=_name_checked(name),
                kind=kind,
                config=shown,
                has_password=bool(secrets.get("password")),
                enabled=enabled,
                created_at=now,
                updated_at=now,
            )
            try:
                channel.save()
            except IntegrityError:
                raise Conflict(f"a channel named {name.strip()!r} already exists") from None
            # The blob is bound to the id, which exists only now.
            channel.secret_cipher = secrets_encrypt(secrets, channel_id=channel.pk)
            channel.save(update_fields=["secret_cipher"])
        action.target = f"channel {channel.pk} ({channel.name})"
    return channel


def channel_update(*, actor: Actor, channel: Channel, changes: dict) -> Channel:
    """Change `name`, `enabled` and/or `config` (merged into the stored config, see
    `channels.config_merged`). Disabling a channel drops its undelivered messages."""
    target = f"channel {channel.pk} ({channel.name})"
    with audited("alert_channel_update", actor=actor, target=target) as action:
        if "kind" in changes and changes["kind"] != channel.kind:
            raise InvalidInput("kind: cannot change; delete the channel and add a new one")
        fields = ["updated_at"]
        if "name" in changes:
            channel.name = _name_checked(changes["name"], exclude_id=channel.pk)
            fields.append("name")
        if "config" in changes:
            merged = config_merged(channel, changes["config"], secrets_decrypt(channel))
            shown, secrets = config_checked(channel.kind, merged)
            channel.config = shown
            channel.has_password = bool(secrets.get("password"))
            channel.secret_cipher = secrets_encrypt(secrets, channel_id=channel.pk)
            fields += ["config", "has_password", "secret_cipher"]
        if "enabled" in changes:
            channel.enabled = changes["enabled"]
            fields.append("enabled")
        action.params = {
            "changed": sorted(set(changes) & {"name", "config", "enabled"}),
            "config": channel.config,
            "enabled": channel.enabled,
        }
        channel.updated_at = timezone.now()
        with transaction.atomic():
            channel.save(update_fields=fields)
            if not channel.enabled:
                channel.outbox.filter(state=State.PENDING).update(
                    state=State.SUPERSEDED, last_error="channel disabled"
                )
    return channel


def channel_delete(*, actor: Actor, channel: Channel) -> None:
    """Delete a channel with its outbox rows and repeat-interval state."""
    target = f"channel {channel.pk} ({channel.name})"
    with audited("alert_channel_delete", actor=actor, target=target):
        channel.delete()


def _test_notices(now: float) -> list[AlertNotice]:
    base = {
        "alert_id": 0,
        "fingerprint": TEST_RULE,
        "rule": TEST_RULE,
        "severity": "info",
        "cluster_id": "etcdmonitor",
        "cluster_name": "etcdmonitor",
        "member_id": None,
        "summary": "Test notification from etcdmonitor",
        "description": "A test message sent from the channel's test action; nothing is wrong.",
        "values": {},
        "starts_at": now - 1,
        "runbook_url": "",
    }
    return [
        AlertNotice(**base, status="firing"),
        AlertNotice(**base, status="resolved", ends_at=now),
    ]


def channel_test(*, actor: Actor, channel: Channel) -> dict:
    """Send one firing and then one resolved `etcdmonitor_test` message now, bypassing the
    outbox: `{"ok": True, "sent": ["firing", "resolved"]}` or `{"ok": False, "error", "sent"}`
    (what was sent before the failure). Audited either way."""
    target = f"channel {channel.pk} ({channel.name})"
    sent: list[str] = []
    with audited("alert_channel_test", actor=actor, target=target) as action:
        key = f"test-{channel.pk}-{uuid.uuid4().hex[:12]}"
        for notice in _test_notices(time.time()):
            try:
                deliver(channel, notice, message_key=f"{key}-{notice.status}")
            except senders.DeliveryFailed as exc:
                action.success = False
                action.result = f"{notice.status}: {exc.reason}"
                return {
                    "ok": False,
                    "error": f"{notice.status} message: {exc.reason}",
                    "sent": sent,
                }
            sent.append(notice.status)
    return {"ok": True, "sent": sent}


# --- sending one notice ---------------------------------------------------------------------------


def deliver(channel: Channel, notice: AlertNotice, *, message_key: str) -> None:
    """Send `notice` to `channel` now (DeliveryFailed when the receiver did not take it)."""
    secrets = secrets_decrypt(channel)
    if channel.kind == Channel.Kind.EMAIL:
        subject, body = payloads.email_message(notice)
        senders.send_email(
            channel.config,
            secrets.get("password", ""),
            subject=subject,
            body=body,
            message_key=message_key,
        )
        return
    url = secrets.get("url", "")
    if channel.kind == Channel.Kind.WEBHOOK:
        body = payloads.webhook_payload(notice, receiver=channel.name)
    elif channel.kind == Channel.Kind.SLACK:
        body = payloads.slack_payload(notice)
    else:
        body = payloads.alertmanager_alerts(
            notice, repeat_seconds=channel.config.get("repeat_interval", 60)
        )
        url = url.rstrip("/") + "/api/v2/alerts"
    senders.post_json(url, body, idempotency_key=message_key)


# --- the outbox -----------------------------------------------------------------------------------


def _repeat_seconds(channel: Channel) -> int:
    default = (
        ALERTMANAGER_REPEAT_SECONDS
        if channel.kind == Channel.Kind.ALERTMANAGER
        else DEFAULT_REPEAT_SECONDS
    )
    return int(channel.config.get("repeat_interval", default))


def _is_due(state: ChannelAlertState | None, notice: AlertNotice, *, repeat: int, now) -> bool:
    """Tell the channel? Resolved: once, and only what it was told fired. Firing: when new to
    it, after a resolution, on a severity change, or once `repeat` seconds passed."""
    if notice.status == "resolved":
        return state is not None and state.last_status == "firing"
    if state is None or state.last_status != "firing":
        return True
    if state.last_severity != notice.severity:
        return True
    return (now - state.last_queued_at).total_seconds() >= repeat


def notices_enqueue(*, notices: list[AlertNotice], now: datetime | None = None) -> int:
    """Queue what each enabled channel must be told about `notices`; returns the rows written.

    The alerts engine calls this on every evaluation with a firing notice for every alert
    that fires (new, changed or unchanged) and a resolved notice when one resolves; the
    per-channel x fingerprint state decides what is sent (`_is_due`), so a still-firing alert
    is repeated every `repeat_interval` (default 4 h) and a resolved one sent once. A newer row
    of an alert replaces that alert's older rows still waiting for a retry on the channel
    (the receiver gets the current state, not a backlog). Runs in the caller's transaction
    when there is one.
    """
    if not notices:
        return 0
    now = now or timezone.now()
    written = 0
    fingerprints = sorted({notice.fingerprint for notice in notices})
    with transaction.atomic():
        for channel in Channel.objects.filter(enabled=True).order_by("pk"):
            repeat = _repeat_seconds(channel)
            states = {
                state.fingerprint: state
                for state in ChannelAlertState.objects.select_for_update()
                .filter(channel=channel, fingerprint__in=fingerprints)
                .order_by("fingerprint")
            }
            for notice in notices:
                state = states.get(notice.fingerprint)
                if not _is_due(state, notice, repeat=repeat, now=now):
                    continue
                OutboxMessage.objects.filter(
                    channel=channel, fingerprint=notice.fingerprint, state=State.PENDING
                ).update(state=State.SUPERSEDED, last_error="replaced by a newer notice")
                OutboxMessage.objects.create(
                    channel=channel,
                    fingerprint=notice.fingerprint,
                    alert_status=notice.status,
                    notice=notice.to_dict(),
                    next_attempt_at=now,
                    created_at=now,
                )
                written += 1
                if state is None:
                    state, _ = ChannelAlertState.objects.get_or_create(
                        channel=channel,
                        fingerprint=notice.fingerprint,
                        defaults={
                            "last_status": notice.status,
                            "last_severity": notice.severity,
                            "last_queued_at": now,
                        },
                    )
                    states[notice.fingerprint] = state
                state.last_status = notice.status
                state.last_severity = notice.severity
                state.last_queued_at = now
                state.save(update_fields=["last_status", "last_severity", "last_queued_at"])
    return written


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    sent: int = 0
    failed: int = 0  # failed this attempt (retried later or given up)
    given_up: int = 0
    errors: list[str] = field(default_factory=list)


def _due_rows(now):
    older_open = OutboxMessage.objects.filter(
        channel=OuterRef("channel"),
        fingerprint=OuterRef("fingerprint"),
        id__lt=OuterRef("id"),
        state__in=OPEN_STATES,
    )
    due = Q(state=State.PENDING, next_attempt_at__lte=now) | Q(
        state=State.SENDING, claimed_until__lt=now
    )
    # An alert's messages reach a channel in order: a row waits while an older one of the
    # same alert is still on its way.
    return (
        OutboxMessage.objects.filter(due, channel__enabled=True)
        .exclude(Exists(older_open))
        .order_by("id")
    )


def _claim_update(row_id: int, token: uuid.UUID, now, *, guard: Q | None = None) -> int:
    lease = timedelta(seconds=settings.NOTIFICATIONS_LEASE_SECONDS)
    rows = OutboxMessage.objects.filter(pk=row_id)
    if guard is not None:
        rows = rows.filter(guard)
    return rows.update(
        state=State.SENDING,
        claim_token=token,
        claimed_until=now + lease,
        attempts=F("attempts") + 1,
    )


def outbox_claim(*, now: datetime | None = None) -> tuple[OutboxMessage, uuid.UUID] | None:
    """Claim the oldest due row for this worker: `(row, token)`, or None when nothing is due."""
    now = now or timezone.now()
    token = uuid.uuid4()
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            row_id = (
                _due_rows(now)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", flat=True)
                .first()
            )
            if row_id is None:
                return None
            _claim_update(row_id, token, now)
    else:
        # SQLite: no row locks; the UPDATE re-checks that the row is still due, so of two
        # workers that picked the same row only one changes it.
        for row_id in _due_rows(now).values_list("id", flat=True)[:20]:
            due_again = Q(state=State.PENDING, next_attempt_at__lte=now) | Q(
                state=State.SENDING, claimed_until__lt=now
            )
            if _claim_update(row_id, token, now, guard=due_again) == 1:
                break
        else:
            return None
    return OutboxMessage.objects.select_related("channel").get(pk=row_id), token


def _backoff_seconds(attempts: int) -> float:
    base = settings.NOTIFICATIONS_RETRY_BASE_SECONDS
    return min(base * 2 ** max(0, attempts - 1), settings.NOTIFICATIONS_RETRY_MAX_SECONDS)


def outbox_complete(
    *, row: OutboxMessage, token: uuid.UUID, error: str = "", now: datetime | None = None
) -> bool:
    """Record the claimed row's outcome; False when the claim was lost (lease ran out and
    another worker took the row), in which case nothing changes."""
    now = now or timezone.now()
    mine = OutboxMessage.objects.filter(pk=row.pk, claim_token=token, state=State.SENDING)
    if not error:
        return bool(mine.update(state=State.SENT, sent_at=now, last_error="", claimed_until=None))
    if row.attempts >= settings.NOTIFICATIONS_MAX_ATTEMPTS:
        return bool(mine.update(state=State.FAILED, last_error=error, claimed_until=None))
    retry_at = now + timedelta(seconds=_backoff_seconds(row.attempts))
    return bool(
        mine.update(
            state=State.PENDING, next_attempt_at=retry_at, last_error=error, claimed_until=None
        )
    )


def outbox_deliver(*, limit: int = 200, now: datetime | None = None) -> DeliveryReport:
    """Periodic (NOTIFICATIONS_DELIVERY_INTERVAL): send due outbox rows, one claim at a time,
    until none is due or `limit` were tried; failures are retried with exponential backoff
    (NOTIFICATIONS_RETRY_BASE_SECONDS doubling up to NOTIFICATIONS_RETRY_MAX_SECONDS). See the
    module docstring for the guarantee."""
    report = DeliveryReport()
    for _ in range(limit):
        claimed = outbox_claim(now=now)
        if claimed is None:
            break
        row, token = claimed
        error = ""
        try:
            deliver(row.channel, row.alert_notice(), message_key=f"outbox-{row.pk}")
        except senders.DeliveryFailed as exc:
            error = exc.reason
        except Exception as exc:  # a bug or an undecryptable secret: retried like a failure
            logger.exception("delivering outbox row %s failed", row.pk)
            error = getattr(exc, "message", "") or "internal error"
        outbox_complete(row=row, token=token, error=error, now=now)
        if error:
            report.failed += 1
            report.given_up += row.attempts >= settings.NOTIFICATIONS_MAX_ATTEMPTS
            report.errors.append(f"channel {row.channel_id}: {error}")
            logger.warning(
                "notification to channel %s (%s) failed, attempt %s: %s",
                row.channel_id,
                row.channel.kind,
                row.attempts,
                error,
            )
        else:
            report.sent += 1
    return report


def outbox_purge(*, now: datetime | None = None) -> int:
    """Delete settled outbox rows (sent, failed, superseded) older than
    NOTIFICATIONS_RETENTION_DAYS; returns the rows deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.NOTIFICATIONS_RETENTION_DAYS)
    settled = (State.SENT, State.FAILED, State.SUPERSEDED)
    deleted, _ = OutboxMessage.objects.filter(state__in=settled, created_at__lt=cutoff).delete()
    return deleted
