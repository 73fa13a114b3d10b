"""Writes of the alerts app: the evaluation engine, rule settings, silences, acknowledgements,
the periodic HashKV consistency check and history retention.

`evaluate_cluster` moves each alert through pending → firing → resolved on what
`alerts.rules` finds, inside one transaction that holds the cluster's `ClusterEvaluation` row
(SELECT … FOR UPDATE SKIP LOCKED): a second evaluator of the same cluster, in any process,
skips instead of computing the same transitions twice. On PostgreSQL `evaluate_all` evaluates
the whole fleet in one such transaction whose reads do not grow with the number of clusters
(`_evaluate_round`), each cluster's writes in its own savepoint. Changes by people (rules,
silences, acknowledgements) are audited here, refusals included.
"""

import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from alerts import selectors
from alerts.models import (
    ACTIVE_STATES,
    SEVERITY_RANK,
    Alert,
    AlertEvent,
    AlertRule,
    AlertState,
    ClusterEvaluation,
    ConsistencyCheck,
    Severity,
    Silence,
    alert_fingerprint,
)
from alerts.rules import SPEC_BY_ID, SPECS, Finding
from alerts.transitions import AlertTransition
from audit.services import Actor, audited
from clusters.connection import cluster_gateway as record_gateway
from clusters.crypto import TabDecryptFailed, TabKeyMissing
from clusters.models import Cluster
from clusters.selectors import monitored_cluster_ids
from clusters.services import default_cluster_current, default_cluster_sync
from etcdgateway import EtcdError, cluster_gateway
from etcdmonitor_site import policy, rawsql
from etcdmonitor_site.errors import Conflict, DomainError, InvalidInput, NotFound
from monitoring.selectors import DEFAULT_CLUSTER
from notifications.notices import AlertNotice
from notifications.services import notices_enqueue

logger = logging.getLogger(__name__)

MAX_FOR_SECONDS = 7 * 86400
MAX_SILENCE_SECONDS = 366 * 86400
HASHKV_TIMEOUT = 30.0


# --- who may change alerting ----------------------------------------------------------------------


def _require(actor: Actor, role: str, operation: str, cluster_id: str | None = None) -> None:
    """The permission policy's own check (the API checked first): rules are the admins',
    silences the operators' of every cluster, an ack the operators' of the alert's cluster."""
    policy.require(user=actor.user, role=role, operation=operation, cluster_id=cluster_id)


# --- rules ----------------------------------------------------------------------------------------


def rules_ensure() -> dict[str, AlertRule]:
    """Every built-in rule has its row, with the defaults (a new rule in a release gets one)."""
    rows = selectors.rule_rows()
    missing = [spec for spec in SPECS if spec.id not in rows]
    if missing:
        AlertRule.objects.bulk_create(
            [
                AlertRule(
                    id=spec.id,
                    enabled=True,
                    for_seconds=spec.for_seconds,
                    thresholds=dict(spec.thresholds),
                )
                for spec in missing
            ],
            ignore_conflicts=True,  # another process may create them at the same moment
        )
        rows = selectors.rule_rows()
    return rows


def _for_seconds(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FOR_SECONDS:
        raise InvalidInput(f"{where}for_seconds must be an integer from 0 to {MAX_FOR_SECONDS}")
    return value


def _enabled(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}enabled must be a boolean")
    return value


def _thresholds(rule_id: str, value, where: str) -> dict:
    known = SPEC_BY_ID[rule_id].thresholds
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}thresholds must be an object")
    clean = {}
    for name, number in value.items():
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise InvalidInput(f"{where}thresholds: unknown threshold {name} (allowed: {allowed})")
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise InvalidInput(f"{where}thresholds.{name} must be a number >= 0")
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidInput(f"{where}thresholds.{name} must be finite")
        clean[name] = number
    return clean


def _override(rule_id: str, cluster_id, value) -> dict | None:
    where = f"cluster_overrides.{cluster_id}."
    if not isinstance(cluster_id, str) or not cluster_id or len(cluster_id) > 100:
        raise InvalidInput("cluster_overrides keys must be cluster ids")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"cluster_overrides.{cluster_id} must be an object or null")
    unknown = set(value) - {"enabled", "for_seconds", "thresholds"}
    if unknown:
        raise InvalidInput(f"{where}{sorted(unknown)[0]} is not a rule setting")
    clean = {}
    if "enabled" in value:
        clean["enabled"] = _enabled(value["enabled"], where)
    if "for_seconds" in value:
        clean["for_seconds"] = _for_seconds(value["for_seconds"], where)
    if "thresholds" in value:
        clean["thresholds"] = _thresholds(rule_id, value["thresholds"], where)
    return clean


def rule_update(*, rule_id: str, changes: dict, actor: Actor) -> dict:
    """Change a rule's enabled, for_seconds, thresholds (merged into the current ones) and
    per-cluster overrides (each cluster's object replaces its previous one; null removes it).

    Admins only; audited as `alert_rule_update`, refusals included. Returns the rule.
    """
    with audited("alert_rule_update", actor=actor, target=rule_id, params=changes):
        _require(actor, policy.ADMIN, "alert_rule_update")
        rows = rules_ensure()
        row = rows.get(rule_id)
        if row is None:
            raise NotFound("alert rule not found")
        unknown = set(changes) - {"enabled", "for_seconds", "thresholds", "cluster_overrides"}
        if unknown:
            raise InvalidInput(f"{sorted(unknown)[0]} is not a rule setting")
        if not changes:
            raise InvalidInput("nothing to change")
        fields = ["updated_at", "updated_by"]
        if "enabled" in changes:
            row.enabled = _enabled(changes["enabled"], "")
            fields.append("enabled")
        if "for_seconds" in changes:
            row.for_seconds = _for_seconds(changes["for_seconds"], "")
            fields.append("for_seconds")
        if "thresholds" in changes:
            row.thresholds = {
                **SPEC_BY_ID[rule_id].thresholds,
                **(row.thresholds or {}),
                **_thresholds(rule_id, changes["thresholds"], ""),
            }
            fields.append("thresholds")
        if "cluster_overrides" in changes:
            given = changes["cluster_overrides"]
            if not isinstance(given, dict):
                raise InvalidInput("cluster_overrides must be an object")
            overrides = dict(row.cluster_overrides or {})
            for cluster_id, value in given.items():
                clean = _override(rule_id, cluster_id, value)
                if clean is None:
                    overrides.pop(cluster_id, None)
                else:
                    overrides[cluster_id] = clean
            row.cluster_overrides = overrides
            fields.append("cluster_overrides")
        row.updated_at = timezone.now()
        row.updated_by = actor.username
        row.save(update_fields=fields)
    return selectors.rule_to_dict(row)


# --- silences and acknowledgements ----------------------------------------------------------------

SILENCE_MATCHERS = ("rule", "cluster_id", "member_id", "severity")


def silence_create(
    *,
    matchers: dict,
    starts_at: datetime | None,
    ends_at: datetime,
    comment: str,
    actor: Actor,
) -> dict:
    """Silence the alerts matching every given matcher from starts_at (default now) to ends_at.

    At least one matcher; rule and severity must be known values. Operators only; audited as
    `alert_silence_create`.
    """
    params = {
        "matchers": matchers,
        "starts_at": int(starts_at.timestamp()) if starts_at else None,
        "ends_at": int(ends_at.timestamp()),
        "comment": comment,
    }
    with audited("alert_silence_create", actor=actor, params=params) as action:
        _require(actor, policy.OPERATOR, "alert_silence_create")
        now = timezone.now()
        unknown = set(matchers) - set(SILENCE_MATCHERS)
        if unknown:
            raise InvalidInput(f"matchers.{sorted(unknown)[0]} is not a matcher")
        clean = {}
        for name in SILENCE_MATCHERS:
            value = matchers.get(name)
            if value is None or value == "":
                continue
            if not isinstance(value, str) or len(value) > 100:
                raise InvalidInput(f"matchers.{name} must be a string")
            clean[name] = value
        if not clean:
            raise InvalidInput("a silence needs at least one matcher")
        if "rule" in clean and clean["rule"] not in SPEC_BY_ID:
            raise InvalidInput("matchers.rule is not a known rule")
        if "severity" in clean and clean["severity"] not in Severity.values:
            raise InvalidInput(f"matchers.severity must be one of {', '.join(Severity.values)}")
        starts_at = starts_at or now
        if ends_at <= starts_at or ends_at <= now:
            raise InvalidInput("ends_at must be in the future and after starts_at")
        if (ends_at - starts_at).total_seconds() > MAX_SILENCE_SECONDS:
            raise InvalidInput("a silence lasts at most 366 days")
        silence = Silence.objects.create(
            **clean,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            created_by=actor.username,
            created_at=now,
            creator=actor.user if getattr(actor.user, "pk", None) else None,
        )
        action.target = f"silence {silence.pk}"
    return selectors.silence_to_dict(silence, now=now)


def silence_expire(*, silence_id: int, actor: Actor) -> dict:
    """End a silence now (the record stays, as `expired`). Operators only; audited."""
    with audited("alert_silence_expire", actor=actor, target=f"silence {silence_id}"):
        _require(actor, policy.OPERATOR, "alert_silence_expire")
        now = timezone.now()
        with transaction.atomic():
            silence = Silence.objects.select_for_update().filter(pk=silence_id).first()
            if silence is None:
                raise NotFound("silence not found")
            if silence.ends_at <= now:
                raise Conflict("silence already expired")
            silence.ends_at = now
            if silence.starts_at > now:
                silence.starts_at = now
            silence.save(update_fields=["ends_at", "starts_at"])
    return selectors.silence_to_dict(silence, now=now)


def alert_acknowledge(*, alert_id: int, actor: Actor) -> dict:
    """Mark an active alert acknowledged by the actor (again: keeps the first). Operators of
    its cluster only; audited as `alert_ack`. A resolved alert cannot be acknowledged (409)."""
    with audited("alert_ack", actor=actor, target=f"alert {alert_id}") as action:
        now = timezone.now()
        with transaction.atomic():
            alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
            if alert is None:
                _require(actor, policy.OPERATOR, "alert_ack")
                raise NotFound("alert not found")
            _require(actor, policy.OPERATOR, "alert_ack", alert.cluster_id)
            action.params = {"rule": alert.rule, "cluster_id": alert.cluster_id}
            if not alert.is_active:
                raise Conflict("alert already resolved")
            if alert.acknowledged_at is None:
                alert.acknowledged_by = actor.username
                alert.acknowledged_at = now
                alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
                AlertEvent.objects.create(
                    alert=alert,
                    at=now,
                    kind=AlertEvent.Kind.ACKNOWLEDGED,
                    severity=alert.severity,
                    values={},
                    username=actor.username,
                )
            else:
                action.result = f"already acknowledged by {alert.acknowledged_by}"
    return selectors.alert_detail(alert, now=now)


# --- the engine -----------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    """Outcome of one cluster's evaluation (the task's return value)."""

    cluster_id: str
    skipped: bool = False
    transitions: list[AlertTransition] = field(default_factory=list)
    duration_ms: float = 0.0


def _transition(alert: Alert, status: str, *, silenced: bool, update: bool = False):
    spec = SPEC_BY_ID.get(alert.rule)
    return AlertTransition(
        alert_id=alert.pk,
        fingerprint=alert.fingerprint,
        rule=alert.rule,
        severity=alert.severity,
        status=status,
        cluster_id=alert.cluster_id,
        member_id=alert.member_id,
        summary=alert.summary,
        description=alert.description,
        values=dict(alert.values),
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        runbook_url=spec.runbook_url if spec else "",
        silenced=silenced,
        update=update,
    )


class _Round:
    """The state changes of one evaluation of one cluster."""

    def __init__(
        self,
        cluster_id: str,
        now: datetime,
        silences: list[Silence],
        before_write=lambda: None,
    ):
        self.cluster_id = cluster_id
        self.now = now
        self.silences = silences
        # Called before every write (a batched round opens the cluster's savepoint there).
        self.before_write = before_write
        self.transitions: list[AlertTransition] = []
        self.active: list[Alert] = []  # pending or firing when the round began
        self.opened: list[Alert] = []

    def firing(self) -> list[Alert]:
        """The cluster's firing alerts after this round, newest first (what a query would
        return; the round holds the cluster's lock, so nobody else changed them)."""
        alerts = [a for a in [*self.active, *self.opened] if a.state == AlertState.FIRING]
        return sorted(alerts, key=lambda a: (a.pending_at, a.pk), reverse=True)

    def _silenced(self, alert: Alert) -> bool:
        return selectors.is_silenced(
            self.silences,
            rule=alert.rule,
            cluster_id=alert.cluster_id,
            member_id=alert.member_id,
            severity=alert.severity,
        )

    def _event(self, alert: Alert, kind: str) -> None:
        self.before_write()
        AlertEvent.objects.create(
            alert=alert, at=self.now, kind=kind, severity=alert.severity, values=alert.values
        )

    def open(self, rule_id: str, finding: Finding, for_seconds: int) -> None:
        # A condition the rule proves older than this round (finding.since) has served that
        # much of its for_seconds already: a restart or a gap that dropped the pending alert
        # does not start the count again.
        pending_at = min(finding.since, self.now) if finding.since else self.now
        alert = Alert(
            rule=rule_id,
            cluster_id=self.cluster_id,
            member_id=finding.member_id,
            fingerprint=alert_fingerprint(rule_id, self.cluster_id, finding.member_id),
            severity=finding.severity,
            state=AlertState.PENDING,
            values=finding.values,
            summary=finding.summary[:500],
            description=finding.description,
            pending_at=pending_at,
            updated_at=self.now,
        )
        self.before_write()
        alert.save()
        self.opened.append(alert)
        self._event(alert, AlertEvent.Kind.PENDING)
        if (self.now - pending_at).total_seconds() >= for_seconds:
            self.fire(alert)

    def fire(self, alert: Alert) -> None:
        self.before_write()
        alert.state = AlertState.FIRING
        alert.starts_at = self.now
        alert.updated_at = self.now
        alert.save(update_fields=["state", "starts_at", "updated_at"])
        self._event(alert, AlertEvent.Kind.FIRING)
        self.transitions.append(_transition(alert, "firing", silenced=self._silenced(alert)))

    def hold(self, alert: Alert, finding: Finding, for_seconds: int) -> None:
        """The condition still holds: refresh the values, rise in severity, or start firing."""
        fields = []
        rises = SEVERITY_RANK[finding.severity] > SEVERITY_RANK[alert.severity]
        # A firing alert never lowers its severity: a notification said "critical" and the
        # condition has not ended. While pending nothing was said yet.
        may_change = rises or alert.state == AlertState.PENDING
        if may_change and finding.severity != alert.severity:
            alert.severity = finding.severity
            fields.append("severity")
        same = may_change or alert.severity == finding.severity
        if same and alert.summary != finding.summary[:500]:
            alert.summary = finding.summary[:500]
            alert.description = finding.description
            fields += ["summary", "description"]
        if alert.values != finding.values:
            alert.values = finding.values
            fields.append("values")
        if fields:
            alert.updated_at = self.now
            self.before_write()
            alert.save(update_fields=[*fields, "updated_at"])
        if alert.state == AlertState.PENDING:
            if (self.now - alert.pending_at).total_seconds() >= for_seconds:
                self.fire(alert)
        elif rises:
            self._event(alert, AlertEvent.Kind.ESCALATED)
            self.transitions.append(
                _transition(alert, "firing", silenced=self._silenced(alert), update=True)
            )

    def clear(self, alert: Alert) -> None:
        """The condition ended (or cannot be proven any more while pending)."""
        self.before_write()
        if alert.state == AlertState.PENDING:
            alert.delete()  # never fired, never told: it leaves no history
            return
        alert.state = AlertState.RESOLVED
        alert.ends_at = self.now
        alert.updated_at = self.now
        alert.save(update_fields=["state", "ends_at", "updated_at"])
        self._event(alert, AlertEvent.Kind.RESOLVED)
        self.transitions.append(_transition(alert, "resolved", silenced=self._silenced(alert)))


def _evaluate(
    cluster_id: str,
    inputs: selectors.RoundInputs,
    reads: selectors.RoundReads | None = None,
    before_write=lambda: None,
) -> _Round:
    """The cluster's round: its view and active alerts from `reads` when the round read them
    for many clusters at once, else read here."""
    now = inputs.now
    if reads is None:
        view = selectors.cluster_view(cluster_id=cluster_id, now=now, inputs=inputs)
        found = Alert.objects.filter(cluster_id=cluster_id, state__in=ACTIVE_STATES)
    else:
        view, found = reads.view(cluster_id), reads.active[cluster_id]
    active: dict[tuple[str, str], Alert] = {(a.rule, a.member_id or ""): a for a in found}
    work = _Round(cluster_id, now, inputs.silences, before_write)
    work.active = list(active.values())
    for spec in SPECS:
        rule = selectors.round_rule(inputs, spec.id, cluster_id)
        mine = {key: a for key, a in active.items() if key[0] == spec.id}
        if not rule.enabled or view is None:
            for alert in mine.values():
                work.clear(alert)
            continue
        if spec.check is None:
            continue
        findings = spec.check(view, rule)
        if findings is None:
            # Nothing can be told this round: firing alerts stay, pending ones are dropped
            # (their for_seconds must be proven without a gap).
            for alert in mine.values():
                if alert.state == AlertState.PENDING:
                    work.clear(alert)
            continue
        seen = set()
        for finding in findings:
            key = (spec.id, finding.member_id or "")
            seen.add(key)
            alert = mine.get(key)
            if finding.active is None:
                if alert is not None and alert.state == AlertState.PENDING:
                    work.clear(alert)
            elif finding.active:
                if alert is None:
                    work.open(spec.id, finding, rule.for_seconds)
                else:
                    work.hold(alert, finding, rule.for_seconds)
            elif alert is not None:
                work.clear(alert)
        # A key the check no longer mentions is gone (a member that left the cluster).
        for key, alert in mine.items():
            if key not in seen:
                work.clear(alert)
    return work


def _notice(item: Alert | AlertTransition, status: str, cluster_name: str) -> AlertNotice:
    spec = SPEC_BY_ID.get(item.rule)
    return AlertNotice(
        alert_id=item.pk if isinstance(item, Alert) else item.alert_id,
        fingerprint=item.fingerprint,
        rule=item.rule,
        severity=item.severity,
        status=status,
        cluster_id=item.cluster_id,
        cluster_name=cluster_name,
        member_id=item.member_id,
        summary=item.summary,
        description=item.description,
        values=dict(item.values),
        starts_at=item.starts_at.timestamp() if item.starts_at else 0.0,
        ends_at=item.ends_at.timestamp() if item.ends_at else None,
        runbook_url=spec.runbook_url if spec else "",
    )


def _notify(work: _Round, inputs: selectors.RoundInputs, before_write=lambda: None) -> None:
    """Hand notifications every firing alert (they decide what is new, changed or due for a
    repeat) and every resolution; silenced ones send nothing. Runs inside the evaluation's
    transaction, so an alert's state and its outbox rows commit together."""
    cluster_id, now, transitions = work.cluster_id, work.now, work.transitions

    def silenced(item) -> bool:
        return selectors.is_silenced(
            inputs.silences,
            rule=item.rule,
            cluster_id=item.cluster_id,
            member_id=item.member_id,
            severity=item.severity,
        )

    name = inputs.names.get(cluster_id) or cluster_id
    notices = [_notice(alert, "firing", name) for alert in work.firing() if not silenced(alert)]
    notices += [
        _notice(t, "resolved", name)
        for t in transitions
        if t.status == "resolved" and not t.silenced and t.starts_at is not None
    ]
    if notices:
        before_write()
        notices_enqueue(notices=notices, now=now)


def _round_inputs(now: datetime | None) -> selectors.RoundInputs:
    return selectors.round_inputs(now=now or timezone.now(), rules=rules_ensure())


def _evaluation_lock(cluster_id: str) -> ClusterEvaluation | None:
    """The cluster's evaluation row, locked for this transaction; None when another
    evaluator holds it. The row is made on the cluster's first evaluation."""
    for _ in range(2):
        state = (
            ClusterEvaluation.objects.select_for_update(skip_locked=True)
            .filter(cluster_id=cluster_id)
            .first()
        )
        if state is not None:
            return state
        with transaction.atomic():  # a savepoint: a concurrent create only loses this try
            _, created = ClusterEvaluation.objects.get_or_create(cluster_id=cluster_id)
        if not created:
            return None  # it exists, so another evaluator holds it
    return None


def evaluate_cluster(
    *,
    cluster_id: str,
    now: datetime | None = None,
    inputs: selectors.RoundInputs | None = None,
) -> EvaluationReport:
    """Evaluate every enabled rule on one cluster; returns the transitions it caused.

    `inputs` are the round's shared reads (rules, silences, names, latest samples; see
    `evaluate_all`); without them this evaluation reads its own at `now`.

    Runs in one transaction holding the cluster's evaluation row: a concurrent evaluation of
    the same cluster (another worker, a second scheduler) finds it locked and is skipped, and
    a later one sees this one's alerts, so no transition is ever produced twice.
    """
    inputs = inputs or _round_inputs(now)
    if connection.vendor == "postgresql":
        return _evaluate_round([cluster_id], inputs)[0]
    started = time.monotonic()
    now = inputs.now
    report = EvaluationReport(cluster_id=cluster_id)
    try:
        with transaction.atomic():
            state = _evaluation_lock(cluster_id)
            if state is None:
                report.skipped = True
                return report
            work = _evaluate(cluster_id, inputs)
            report.transitions = work.transitions
            _notify(work, inputs)
            report.duration_ms = (time.monotonic() - started) * 1000
            state.evaluated_at = now
            state.duration_ms = report.duration_ms
            state.evaluations += 1
            state.save(update_fields=["evaluated_at", "duration_ms", "evaluations"])
    except IntegrityError:
        # Only an evaluator that bypassed the lock can hit the one-active-alert constraint;
        # the next round starts from what it wrote.
        logger.warning("alert evaluation of %s raced another writer; skipped", cluster_id)
        report.skipped = True
        report.transitions = []
    _log_transitions(report)
    return report


def _log_transitions(report: EvaluationReport) -> None:
    for transition in report.transitions:
        logger.info(
            "alert %s %s%s: %s (%s, cluster %s%s)",
            transition.rule,
            transition.status,
            " (update)" if transition.update else "",
            transition.summary,
            transition.severity,
            transition.cluster_id,
            ", silenced" if transition.silenced else "",
        )


class _Savepoint:
    """A cluster's savepoint in a batched round, opened before its first write only (most
    clusters write nothing in most rounds, and a savepoint costs two statements)."""

    def __init__(self, stack: ExitStack):
        self.stack = stack
        self.opened = False

    def open(self) -> None:
        if not self.opened:
            self.stack.enter_context(transaction.atomic())
            self.opened = True


def _evaluate_round(
    cluster_ids: list[str], inputs: selectors.RoundInputs
) -> list[EvaluationReport]:
    """Evaluate the clusters in one transaction whose reads do not grow with their number
    (PostgreSQL; see selectors.RoundReads), with `evaluate_cluster`'s guarantees.

    The transaction first locks the evaluation rows it can (SKIP LOCKED: a cluster another
    evaluator holds is skipped, as before), then reads the locked clusters' active alerts, so
    no transition is produced twice. Each cluster writes inside its own savepoint: an
    IntegrityError rolls back that cluster's round alone, and every alert's state and its
    outbox rows commit together with the others at the end.
    """
    reports = {cid: EvaluationReport(cluster_id=cid) for cid in cluster_ids}
    done: list[tuple[str, float]] = []
    now = inputs.now
    with transaction.atomic():
        started = time.monotonic()
        locked = _evaluation_locks(cluster_ids)
        reads = selectors.RoundReads(
            cluster_ids=[cid for cid in cluster_ids if cid in locked], inputs=inputs
        )
        for cluster_id in cluster_ids:
            report = reports[cluster_id]
            if cluster_id not in locked:
                report.skipped = True
                continue
            try:
                with ExitStack() as stack:
                    savepoint = _Savepoint(stack)
                    work = _evaluate(cluster_id, inputs, reads, savepoint.open)
                    _notify(work, inputs, savepoint.open)
            except IntegrityError:
                # Only an evaluator that bypassed the lock can hit the one-active-alert
                # constraint; the next round starts from what it wrote.
                logger.warning("alert evaluation of %s raced another writer; skipped", cluster_id)
                report.skipped = True
                started = time.monotonic()
                continue
            report.transitions = work.transitions
            # The shared reads are counted in the first cluster's time.
            report.duration_ms = (time.monotonic() - started) * 1000
            done.append((cluster_id, report.duration_ms))
            started = time.monotonic()
        if done:
            with connection.cursor() as cursor:
                cursor.execute(
                    _bookkeeping_sql(),
                    [
                        now,
                        rawsql.array_literal(cid for cid, _ in done),
                        rawsql.array_literal(ms for _, ms in done),
                    ],
                )
    for report in reports.values():
        _log_transitions(report)
    return [reports[cid] for cid in cluster_ids]


def _evaluation_locks(cluster_ids: list[str]) -> set[str]:
    """The clusters whose evaluation rows this transaction locked (one statement; rows are
    made on a cluster's first evaluation, through `_evaluation_lock`)."""
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(), [rawsql.array_literal(cluster_ids)])
        locked = {row[0] for row in cursor.fetchall()}
        missing = [cid for cid in cluster_ids if cid not in locked]
        if missing:
            # Rows that exist are held by another evaluator; only the others are new.
            cursor.execute(_exists_sql(), [rawsql.array_literal(missing)])
            held = {row[0] for row in cursor.fetchall()}
            locked |= {
                cid for cid in missing if cid not in held and _evaluation_lock(cid) is not None
            }
    return locked


@functools.cache
def _lock_sql() -> str:
    table, key = rawsql.table(ClusterEvaluation), rawsql.column(ClusterEvaluation, "cluster_id")
    return (
        f"SELECT {key} FROM {table} WHERE {key} = ANY(%s::text[]) "  # noqa: S608
        "FOR UPDATE SKIP LOCKED"
    )


@functools.cache
def _exists_sql() -> str:
    table, key = rawsql.table(ClusterEvaluation), rawsql.column(ClusterEvaluation, "cluster_id")
    return f"SELECT {key} FROM {table} WHERE {key} = ANY(%s::text[])"  # noqa: S608


@functools.cache
def _bookkeeping_sql() -> str:
    c = functools.partial(rawsql.column, ClusterEvaluation)
    return (
        f"UPDATE {rawsql.table(ClusterEvaluation)} e SET {c('evaluated_at')} = %s, "  # noqa: S608
        f"{c('duration_ms')} = v.ms, {c('evaluations')} = e.{c('evaluations')} + 1 "
        "FROM unnest(%s::text[], %s::float8[]) AS v(cluster_id, ms) "
        f"WHERE e.{c('cluster_id')} = v.cluster_id"
    )


def evaluate_all(*, now: datetime | None = None) -> list[EvaluationReport]:
    """Evaluate every monitored cluster, and the clusters no longer monitored that still have
    active alerts (to resolve them), at one `now` with the round's shared reads (on
    PostgreSQL in one batched transaction, see `_evaluate_round`)."""
    if connection.vendor != "postgresql":
        inputs = _round_inputs(now)
        return [evaluate_cluster(cluster_id=cid, inputs=inputs) for cid in selectors.cluster_ids()]
    now = now or timezone.now()
    start = selectors.fleet_round(now=now)
    if not default_cluster_current(start.default):
        default_cluster_sync()  # what monitored_cluster_ids() does before listing
        start = selectors.fleet_round(now=now)
    if len(start.inputs.rules) < len(SPECS):
        start.inputs.rules = rules_ensure()
    return _evaluate_round(start.cluster_ids, start.inputs) if start.cluster_ids else []


# --- the HashKV consistency check -----------------------------------------------------------------


def hashkv_verdict(results: list[dict], members: int) -> tuple[str, str]:
    """(outcome, detail) of one HashKV round at one revision; `results` holds each member's
    answer ({"member_id", "hash", "revision", "compact_revision"}) or {"member_id", "error"}.

    Only a complete round can prove anything: every member answered, at the same revision and
    the same compact revision (a compaction applied on some members but not yet on others
    changes the hash legitimately). Then equal hashes are consistent, different ones a mismatch.
    """
    failed = [r for r in results if "error" in r]
    if failed or len(results) < members or not results:
        names = ", ".join(f"{r['member_id']}: {r['error']}" for r in failed)
        return ConsistencyCheck.Outcome.INCONCLUSIVE, f"not every member answered ({names})"
    if len({r["revision"] for r in results}) > 1:
        return ConsistencyCheck.Outcome.INCONCLUSIVE, "members answered at different revisions"
    if len({r["compact_revision"] for r in results}) > 1:
        return ConsistencyCheck.Outcome.INCONCLUSIVE, "a compaction was in flight"
    if len({r["hash"] for r in results}) == 1:
        return ConsistencyCheck.Outcome.CONSISTENT, "all members agree"
    hashes = ", ".join(f"{r['member_id']}={r['hash']}" for r in results)
    return ConsistencyCheck.Outcome.MISMATCH, f"hashes {hashes}"


def _hashkv_round(gateway) -> tuple[int | None, list[dict], int]:
    """(revision, answers, member count) of HashKV at the cluster's current revision."""
    members = gateway.members()
    revision = gateway.status().revision

    def one(member) -> dict:
        try:
            answer = gateway.member_client(member, timeout=HASHKV_TIMEOUT).hashkv(revision)
        except EtcdError as exc:
            return {"member_id": member.id_str, "error": exc.message}
        return {
            "member_id": member.id_str,
            "hash": answer.hash,
            "revision": answer.revision,
            "compact_revision": answer.compact_revision,
        }

    with ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        return revision, list(pool.map(one, members)), len(members)


def consistency_check(*, cluster_id: str = DEFAULT_CLUSTER) -> ConsistencyCheck | None:
    """One HashKV round on every member of the cluster; a mismatch is confirmed by a second
    round at a newer revision before it is recorded (a read: not audited). Returns the record;
    None when `cluster_id` is no monitored cluster record.

    The default cluster is reached through the settings' gateway, any other through its
    record's (a record whose gateway cannot be built is recorded inconclusive, with why).
    """
    now = timezone.now()
    if cluster_id == DEFAULT_CLUSTER:
        gateway = cluster_gateway()
    else:
        record = Cluster.objects.filter(pk=cluster_id, monitored=True).first()
        if record is None:
            return None
        try:
            gateway = record_gateway(record)
        except (TabKeyMissing, TabDecryptFailed, DomainError, EtcdError) as exc:
            return ConsistencyCheck.objects.create(
                cluster_id=cluster_id,
                checked_at=now,
                revision=None,
                outcome=ConsistencyCheck.Outcome.INCONCLUSIVE,
                detail=f"the cluster cannot be reached: {getattr(exc, 'message', exc)}"[:2000],
                results=[],
            )
    try:
        revision, results, count = _hashkv_round(gateway)
        outcome, detail = hashkv_verdict(results, count)
        if outcome == ConsistencyCheck.Outcome.MISMATCH:
            revision, results, count = _hashkv_round(gateway)
            outcome, detail = hashkv_verdict(results, count)
    except EtcdError as exc:
        revision, results = None, []
        outcome, detail = ConsistencyCheck.Outcome.INCONCLUSIVE, exc.message
    if outcome == ConsistencyCheck.Outcome.MISMATCH:
        logger.error("HashKV mismatch on %s at revision %s: %s", cluster_id, revision, detail)
    return ConsistencyCheck.objects.create(
        cluster_id=cluster_id,
        checked_at=now,
        revision=revision,
        outcome=outcome,
        detail=detail[:2000],
        results=results,
    )


def consistency_check_all() -> list[ConsistencyCheck]:
    """A HashKV round on every monitored cluster, a few clusters at a time (each round has its
    own timeouts, so a dead cluster holds only its own worker)."""
    ids = monitored_cluster_ids()

    def one(cluster_id: str):
        try:
            return consistency_check(cluster_id=cluster_id)
        finally:
            if threading.current_thread() is not main_thread:
                connections.close_all()

    main_thread = threading.current_thread()
    if len(ids) <= 1:
        return [c for c in map(one, ids) if c is not None]
    with ThreadPoolExecutor(max_workers=min(len(ids), settings.MONITOR_CLUSTER_WORKERS)) as pool:
        return [c for c in pool.map(one, ids) if c is not None]


# --- retention ------------------------------------------------------------------------------------


def alerts_purge(*, now: datetime | None = None) -> int:
    """Delete resolved alerts, expired silences and consistency checks older than
    ALERT_RETENTION_DAYS, in batches; returns the alerts deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.ALERT_RETENTION_DAYS)
    total = 0
    while True:
        batch = list(
            Alert.objects.filter(state=AlertState.RESOLVED, ends_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:5000]
        )
        if not batch:
            break
        AlertEvent.objects.filter(alert_id__in=batch).delete()
        Alert.objects.filter(pk__in=batch).delete()
        total += len(batch)
    Silence.objects.filter(ends_at__lt=cutoff).delete()
    ConsistencyCheck.objects.filter(checked_at__lt=cutoff).delete()
    return total
