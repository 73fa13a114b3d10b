"""Writes of the KV tabs (reference §4.6): create, update, delete, reorder, connection tests
(of a stored tab or of a dialog's fields), resolving `?tab_id=` for the KV routes, and the
tabs' health (after each KV request, and the periodic liveness probe). Every write is audited
here; how a tab's cluster is reached and tested is `clusters.connection`.

Each tab is one remote etcd cluster of one user. Refusals are domain errors carrying the
reference's tab codes (`KV_TAB_*`); another user's tab id behaves exactly like an unknown one.
"""

import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import SECRET_MASK, Actor, audit_record, audited
from clusters.connection import (
    TEST_TIMEOUT,
    ConnectionTestFailed,
    ca_cert_validate,
    ca_files_prune,
    classify,
    connection_refusal,
    connection_test,
    connection_tried,
    connection_verified,
    credentials_validate,
    default_member_check,
    endpoint_check,
    endpoint_validate,
    error_text,
    failure_text,
    stored_config,
    tab_gateway,
    tab_gateway_forget,
)
from clusters.crypto import TabDecryptFailed, TabKeyMissing, password_encrypt
from clusters.models import KvClusterTab
from etcdgateway import EtcdAuthFailed, EtcdError, EtcdTimeout, EtcdUnavailable
from etcdgateway.egress import EndpointUnresolvable
from etcdmonitor_site.errors import (
    Conflict,
    DomainError,
    InternalFailure,
    InvalidInput,
    NotFound,
)

logger = logging.getLogger(__name__)

DEFAULT_TAB_ID = "default"
MAX_TABS_PER_USER = 10
PROBE_TIMEOUT = 10.0
PROBE_WORKERS = 8
FAILURES_BEFORE_ERROR = 2
MASK = SECRET_MASK  # what a given password shows as in the audit params

Status = KvClusterTab.Status


def not_found() -> NotFound:
    return NotFound("tab not found", code="KV_TAB_NOT_FOUND")


def default_protected() -> InvalidInput:
    return InvalidInput(
        "the default tab cannot be changed or closed", code="KV_TAB_DEFAULT_PROTECTED"
    )


def key_missing(exc: Exception) -> InternalFailure:
    return InternalFailure(
        f"tab credentials unavailable: {exc}; re-enter the password", code="KV_TAB_KEK_MISSING"
    )


# --- reads that resolve ids ----------------------------------------------------------------------


def tab_for_user(*, actor: Actor, tab_id: str, route: str) -> KvClusterTab:
    """The actor's tab `tab_id`, or 404 KV_TAB_NOT_FOUND. Another user's id answers exactly like
    an unknown one and is audited as `kv_tab_cross_user_attempt`."""
    if tab_id == DEFAULT_TAB_ID:
        raise default_protected()
    try:
        key = uuid.UUID(tab_id)
    except (ValueError, TypeError):
        raise not_found() from None
    tab = KvClusterTab.objects.filter(pk=key).first()
    if tab is None:
        raise not_found()
    if tab.owner_id != actor.user.pk:
        _audit_cross_user(actor=actor, ids=[str(key)], route=route)
        raise not_found()
    return tab


def _audit_cross_user(*, actor: Actor, ids: list[str], route: str) -> None:
    logger.warning("user %s tried another user's KV tab(s) %s", actor.username, ",".join(ids))
    audit_record(
        operation="kv_tab_cross_user_attempt",
        username=actor.username,
        target=",".join(ids),
        params=f"route={route}",
        result="forbidden",
        success=False,
        client_ip=actor.client_ip,
    )


# --- writes --------------------------------------------------------------------------------------


def _scheme(endpoint: str) -> str:
    return endpoint.split("://", 1)[0].lower() if "://" in endpoint else ""


def _lock_owner(user) -> None:
    # Serialises one user's creates so that the limit and sort_order hold under concurrency.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def tab_create(
    *,
    actor: Actor,
    endpoint: str,
    name: str = "",
    username: str = "",
    password: str = "",
    ca_cert: str = "",
    insecure_skip_verify: bool = False,
) -> tuple[KvClusterTab, str]:
    """Validate (scheme, limit, live connection test, not the default cluster), encrypt the
    password and store the tab at the end of the user's order. Returns (tab, warning).

    A refusal is audited with a short result (`invalid_scheme`, `limit_exceeded`, ...) and the
    endpoint as given as its target; a created tab with its id."""
    scheme = _scheme(endpoint.strip())
    password_shown = MASK if password else ""
    with audited(
        "kv_tab_create",
        actor=actor,
        target=endpoint.strip()[:512],
        params=f"scheme={scheme} username={username} password={password_shown}",
        failures=(DomainError,),
    ) as action:
        try:
            endpoint = endpoint_validate(endpoint)
        except InvalidInput:
            action.result = "invalid_scheme"
            raise
        action.target = endpoint[:512]
        limit = Conflict(f"at most {MAX_TABS_PER_USER} tabs per user", code="KV_TAB_LIMIT_EXCEEDED")
        if KvClusterTab.objects.filter(owner=actor.user).count() >= MAX_TABS_PER_USER:
            action.result, action.params = "limit_exceeded", "per-user limit reached"
            raise limit
        try:
            ca_cert, members = connection_tried(
                endpoint=endpoint,
                username=username,
                password=password,
                ca_cert=ca_cert,
                insecure_skip_verify=insecure_skip_verify,
            )
        except InvalidInput as exc:
            action.result = f"{exc.extra.get('status', 'bad_request')}: {exc.message}"
            raise
        try:
            warning = default_member_check(endpoint, members)
        except Conflict as exc:
            action.result = "belongs_to_default"
            action.params = f"scheme={scheme} matched={exc.extra['matched_member_url']}"
            raise

        tab_id = uuid.uuid4()
        try:
            cipher = password_encrypt(password, tab_id=str(tab_id))
        except TabKeyMissing as exc:
            action.result = "encrypt_failed"
            raise InternalFailure(
                f"cannot encrypt the password: {exc}", code="ENCRYPT_FAILED"
            ) from None
        now = timezone.now()
        with transaction.atomic():
            _lock_owner(actor.user)
            owned = KvClusterTab.objects.filter(owner=actor.user)
            tab = None
            if owned.count() < MAX_TABS_PER_USER:
                tab = KvClusterTab.objects.create(
                    id=tab_id,
                    owner=actor.user,
                    name=(name.strip() or urlsplit(endpoint).hostname or endpoint)[:200],
                    endpoint=endpoint,
                    username=username,
                    password_cipher=cipher,
                    ca_cert=ca_cert,
                    insecure_skip_verify=insecure_skip_verify,
                    sort_order=(owned.aggregate(top=Max("sort_order"))["top"] or 0) + 1,
                    last_status=Status.OK,
                    last_checked_at=now,
                    created_at=now,
                    updated_at=now,
                )
        if tab is None:  # another request of this user took the last slot meanwhile
            action.result, action.params = "limit_exceeded", "per-user limit reached"
            raise limit
        action.target = str(tab.id)
        action.params = (
            f"scheme={scheme} endpoint={endpoint} username={username} password={password_shown}"
        )
    return tab, warning


CONNECTION_FIELDS = ("username", "password", "clear_password", "ca_cert", "insecure_skip_verify")
IDENTITY_FIELDS = ("username", "ca_cert", "insecure_skip_verify")


def tab_update(*, actor: Actor, tab: KvClusterTab, changes: dict) -> tuple[KvClusterTab, str]:
    """Apply a PATCH. A changed endpoint is re-validated like a create (scheme, connection test
    with the new or stored credentials, default-cluster check) and resets the status to ok.
    Credential or TLS changes alone reset it to unknown for the next probe. `password` "" keeps
    the stored one (reference); `clear_password: true` removes it. A change of endpoint, scheme,
    TLS fields or username drops the stored password unless `password` gives a new one (it
    must never reach another host). Returns (tab, warning). Only an applied PATCH is audited."""
    with audited("kv_tab_update", actor=actor, target=str(tab.id), failures=()) as action:
        fields, new_password, warning = _tab_changes(tab, changes)
        if fields:
            if any(key in fields for key in (*CONNECTION_FIELDS, "endpoint", "password_cipher")):
                tab_gateway_forget(tab)
            fields["updated_at"] = timezone.now()
            for field, value in fields.items():
                setattr(tab, field, value)
            tab.save(update_fields=list(fields))
            if "ca_cert" in fields:
                ca_files_prune()
        changed = sorted(f for f in fields if f not in ("updated_at", "last_checked_at"))
        password_shown = "(cleared)" if new_password == "" else MASK if new_password else ""
        action.params = f"fields={','.join(changed)} password={password_shown}"
    return tab, warning


def _tab_changes(tab: KvClusterTab, changes: dict) -> tuple[dict, str | None, str]:
    """(the fields a PATCH changes, the new password or None to keep it, warning), after
    validating them and, for a new endpoint, testing the connection."""
    fields: dict = {}
    warning = ""
    if "name" in changes and changes["name"].strip():
        fields["name"] = changes["name"].strip()[:200]
    for field in ("username", "insecure_skip_verify"):
        if field in changes and changes[field] != getattr(tab, field):
            fields[field] = changes[field]
    if "ca_cert" in changes:
        ca_cert = ca_cert_validate(changes["ca_cert"])
        if ca_cert != tab.ca_cert:
            fields["ca_cert"] = ca_cert
    new_password = None
    if changes.get("clear_password"):
        new_password = ""
    elif changes.get("password"):
        new_password = changes["password"]

    endpoint = changes.get("endpoint")
    if endpoint is not None:
        endpoint = endpoint_validate(endpoint)
    moved = endpoint is not None and endpoint != tab.endpoint
    # The stored password was given for one host, user and TLS identity: a PATCH that changes
    # any of them (the scheme is part of the endpoint) must not send it anywhere else, so it
    # is dropped unless this request brings a password of its own.
    identity_changed = moved or any(key in fields for key in IDENTITY_FIELDS)
    if new_password is None and identity_changed and tab.password_cipher:
        new_password = ""
    credentials_validate(
        fields.get("username", tab.username),
        new_password if new_password is not None else bool(tab.password_cipher),
    )
    if moved:
        overrides = {
            key: fields[key]
            for key in ("username", "ca_cert", "insecure_skip_verify")
            if key in fields
        }
        if new_password is not None:
            overrides["password"] = new_password
        try:
            config = stored_config(
                tab, endpoint=endpoint, timeout=TEST_TIMEOUT, transient_ca=True, **overrides
            )
        except (TabKeyMissing, TabDecryptFailed) as exc:
            raise key_missing(exc) from None
        except EndpointUnresolvable:
            raise connection_refusal(ConnectionTestFailed("unresolvable")) from None
        warning = default_member_check(endpoint, connection_verified(config))
        fields.update(
            endpoint=endpoint,
            last_status=Status.OK,
            last_error="",
            failure_count=0,
            last_checked_at=timezone.now(),
        )
    elif any(key in fields for key in CONNECTION_FIELDS) or new_password is not None:
        fields.update(last_status=Status.UNKNOWN, last_error="", failure_count=0)

    if new_password is not None:
        try:
            fields["password_cipher"] = password_encrypt(new_password, tab_id=str(tab.id))
        except TabKeyMissing as exc:
            raise key_missing(exc) from None
    return fields, new_password, warning


def tab_delete(*, actor: Actor, tab: KvClusterTab) -> None:
    """Remove the tab (its encrypted password goes with the row); audited once it is gone."""
    with audited(
        "kv_tab_delete",
        actor=actor,
        target=str(tab.id),
        params=f"endpoint={tab.endpoint}",
        failures=(),
    ):
        tab_gateway_forget(tab)
        tab.delete()
        ca_files_prune()


def connection_fields_test(*, endpoint: str, **connection) -> tuple[int, str]:
    """Try a tab's connection fields before the tab exists: the checks of a create (scheme,
    credentials, CA bundle, live test, not the default cluster) without the limit, storing
    or auditing anything. `connection` holds `username`, `password`, `ca_cert` and
    `insecure_skip_verify` (TabConnectionSerializer's fields). Returns (member count, warning);
    failures raise like a create's.

    Not audited, like testing a stored tab: nothing changes. The endpoint is the user's own
    choice, the same outbound exposure a create already gives.
    """
    endpoint = endpoint_validate(endpoint)
    _, members = connection_tried(endpoint=endpoint, **connection)
    return len(members), default_member_check(endpoint, members)


def tab_test(
    *, tab: KvClusterTab, username: str | None = None, password: str | None = None
) -> tuple[str, str]:
    """Try the tab's cluster with the given or stored credentials: (status, error message)."""
    overrides = {}
    if username is not None:
        overrides["username"] = username
    if password:
        overrides["password"] = password
    try:
        config = stored_config(tab, timeout=TEST_TIMEOUT, **overrides)
    except (TabKeyMissing, TabDecryptFailed) as exc:
        raise key_missing(exc) from None
    except EndpointUnresolvable:
        failure = ConnectionTestFailed("unresolvable")
        return failure.status, failure.message
    try:
        connection_test(config)
    except ConnectionTestFailed as exc:
        return exc.status, exc.message
    return "ok", ""


def tabs_reorder(*, actor: Actor, ids: list[str], route: str) -> None:
    """Store the user's tab order: `ids` starts with "default", names each of the user's tabs
    exactly once (duplicates are refused, unlike the reference), in one transaction. Only a
    stored order is audited (an id of another user's tab is audited as a cross-user attempt)."""
    with audited(
        "kv_tab_reorder",
        actor=actor,
        target=str(actor.user.pk),
        params=f"ids={','.join(ids)}",
        failures=(),
    ):
        if not ids or ids[0] != DEFAULT_TAB_ID:
            raise InvalidInput(
                "the default tab must come first", code="KV_TAB_DEFAULT_FIRST_REQUIRED"
            )
        rest = [str(i) for i in ids[1:]]
        if len(set(rest)) != len(rest) or DEFAULT_TAB_ID in rest:
            raise InvalidInput("each tab may appear only once", code="KV_TAB_ORDER_DUPLICATE")
        with transaction.atomic():
            tabs = {
                str(tab.id): tab
                for tab in KvClusterTab.objects.select_for_update().filter(owner=actor.user)
            }
            if len(rest) != len(tabs):
                raise Conflict(
                    f"expected {len(tabs)} tab ids after default, got {len(rest)}",
                    code="KV_TAB_ORDER_MISMATCH",
                )
            unknown = [i for i in rest if i not in tabs]
            if not unknown:
                for position, tab_id in enumerate(rest, start=1):
                    tabs[tab_id].sort_order = position
                KvClusterTab.objects.bulk_update(tabs.values(), ["sort_order"])
        if unknown:  # audited outside the transaction, which a raise would roll back
            foreign = _foreign_ids(unknown, owner=actor.user)
            if foreign:
                _audit_cross_user(actor=actor, ids=foreign, route=route)
            raise InvalidInput("tab not found", code="KV_TAB_NOT_FOUND")


def _foreign_ids(ids: list[str], *, owner) -> list[str]:
    keys = []
    for value in ids:
        try:
            keys.append(uuid.UUID(value))
        except ValueError:
            continue
    found = (
        KvClusterTab.objects.filter(pk__in=keys).exclude(owner=owner).values_list("pk", flat=True)
    )
    return sorted(str(pk) for pk in found)


# --- health --------------------------------------------------------------------------------------


def tab_mark_used(*, tab: KvClusterTab, error: Exception | None) -> None:
    """After a KV request on a tab: success proves it healthy; a connection or credential
    failure marks it `error` at once (other errors, e.g. a missing key, say nothing)."""
    now = timezone.now()
    if error is None:
        if tab.last_status != Status.OK or tab.failure_count:
            KvClusterTab.objects.filter(pk=tab.pk).update(
                last_status=Status.OK, last_error="", failure_count=0, last_checked_at=now
            )
        return
    # A key outside the user's etcd role is the user's business, not the tab's health.
    if not isinstance(error, EtcdUnavailable | EtcdTimeout | EtcdAuthFailed):
        return
    status = classify(error)
    KvClusterTab.objects.filter(pk=tab.pk).update(
        last_status=Status.ERROR,
        last_error=f"{status}: {failure_text(error)}"[:2000],
        last_checked_at=now,
    )


@contextlib.contextmanager
def tab_usage(*, tab: KvClusterTab):
    """Around a KV request on a tab: marks the tab by what the request found (tab_mark_used);
    an error that is not etcd's (bad input, a value too large) says nothing about the tab."""
    try:
        yield
    except EtcdError as exc:
        tab_mark_used(tab=tab, error=exc)
        raise
    tab_mark_used(tab=tab, error=None)


def _probe_one(tab: KvClusterTab, timeout: float) -> tuple[str, str] | None:
    """None when the tab's endpoint answered Status, else (class, message). No database use:
    this runs in the probe's worker threads."""
    try:
        gateway = tab_gateway(tab)
        client = gateway.client_for(gateway.config.endpoints[0], timeout=timeout)
        endpoint_check(client, timeout=timeout)
    except InvalidInput as exc:  # the endpoint is no longer allowed (link-local, allowlist)
        return "unreachable", exc.message
    except (TabKeyMissing, TabDecryptFailed) as exc:
        return classify(exc), error_text(exc)
    except EtcdError as exc:
        return classify(exc), failure_text(exc)
    except Exception as exc:  # one broken tab must not stop the round
        logger.exception("probe of KV tab %s failed unexpectedly", tab.pk)
        return "unknown_error", type(exc).__name__
    return None


def tabs_probe(*, workers: int = PROBE_WORKERS, timeout: float = PROBE_TIMEOUT) -> dict:
    """One liveness round over every tab of every user: one query to load them, Status on each
    concurrently (at most `workers` at a time, `timeout` each), one bulk update. A tab turns
    `error` only after FAILURES_BEFORE_ERROR consecutive failures; one success clears it."""
    tabs = list(
        KvClusterTab.objects.only(
            "id",
            "endpoint",
            "username",
            "password_cipher",
            "ca_cert",
            "insecure_skip_verify",
            "last_status",
            "last_error",
            "failure_count",
        )
    )
    if not tabs:
        return {"probed": 0, "ok": 0, "failing": 0, "error": 0}
    with ThreadPoolExecutor(max_workers=min(workers, len(tabs))) as pool:
        results = list(pool.map(lambda tab: _probe_one(tab, timeout), tabs))
    now = timezone.now()
    counts = {"probed": len(tabs), "ok": 0, "failing": 0, "error": 0}
    for tab, failure in zip(tabs, results, strict=True):
        tab.last_checked_at = now
        if failure is None:
            tab.last_status, tab.last_error, tab.failure_count = Status.OK, "", 0
            counts["ok"] += 1
            continue
        tab.failure_count += 1
        if tab.failure_count >= FAILURES_BEFORE_ERROR:
            if tab.last_status != Status.ERROR:
                logger.warning("KV tab %s (%s) is failing: %s", tab.pk, tab.endpoint, failure[1])
            tab.last_status = Status.ERROR
            tab.last_error = f"{failure[0]}: {failure[1]}"[:2000]
            counts["error"] += 1
        else:
            counts["failing"] += 1
    KvClusterTab.objects.bulk_update(
        tabs, ["last_status", "last_error", "last_checked_at", "failure_count"], batch_size=500
    )
    return counts
