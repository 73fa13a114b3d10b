"""Writes of the KV tabs (reference §4.6): create, update, delete, reorder, connection tests
(of a stored tab or of a dialog's fields), resolving `?tab_id=` for the KV routes, and the
tabs' health (after each KV request, and the periodic liveness probe). Every write is audited
here; how a tab's cluster is reached and tested is `clusters.connection`.

Each tab is one remote etcd cluster of one user. Refusals are domain errors carrying the
reference's tab codes (`KV_TAB_*`); another user's tab id behaves exactly like an unknown one.
"""

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from django.conf import settings
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
    cluster_gateway,
    connection_test,
    connection_tried,
    credentials_validate,
    default_member_check,
    endpoint_check,
    endpoint_validate,
    endpoints_validate,
    error_text,
    failure_text,
    stored_config,
    tab_gateway,
    tab_gateway_forget,
)
from clusters.crypto import TabDecryptFailed, TabKeyMissing, password_decrypt, password_encrypt
from clusters.models import DEFAULT_CLUSTER_ID, Cluster, new_cluster_id
from etcdgateway import (
    ClusterGateway,
    EtcdAuthFailed,
    EtcdError,
    EtcdTimeout,
    EtcdUnavailable,
    normalise_endpoint,
)
from etcdgateway import cluster_gateway as shared_gateway
from etcdgateway.egress import EndpointUnresolvable
from etcdmonitor_site import policy
from etcdmonitor_site.errors import (
    Conflict,
    DomainError,
    Forbidden,
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

Status = Cluster.Status


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


def tab_for_user(*, actor: Actor, tab_id: str, route: str) -> Cluster:
    """The actor's tab (own cluster) `tab_id`, or 404 KV_TAB_NOT_FOUND. Another user's id
    answers exactly like an unknown one and is audited as `kv_tab_cross_user_attempt`; a shared
    cluster is no tab."""
    if tab_id == DEFAULT_TAB_ID:
        raise default_protected()
    tab = _owned_or_shared(actor=actor, cluster_id=tab_id, route=route)
    if tab is None or tab.owner_id is None:
        raise not_found()
    return tab


def _owned_or_shared(*, actor: Actor, cluster_id: str, route: str) -> Cluster | None:
    """The record `cluster_id` when it is shared or the actor's own; None when it is unknown or
    (audited as a cross-user attempt) another user's."""
    if not isinstance(cluster_id, str) or not 0 < len(cluster_id) <= 64:
        return None
    cluster = Cluster.objects.select_related("owner").filter(pk=cluster_id).first()
    if cluster is None:
        return None
    if cluster.owner_id is not None and cluster.owner_id != getattr(actor.user, "pk", None):
        _audit_cross_user(actor=actor, ids=[cluster.pk], route=route)
        return None
    return cluster


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
) -> tuple[Cluster, str]:
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
        if Cluster.objects.filter(owner=actor.user).count() >= MAX_TABS_PER_USER:
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

        tab_id = new_cluster_id()
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
            owned = Cluster.objects.filter(owner=actor.user)
            tab = None
            if owned.count() < MAX_TABS_PER_USER:
                tab = Cluster.objects.create(
                    id=tab_id,
                    owner=actor.user,
                    name=(name.strip() or urlsplit(endpoint).hostname or endpoint)[:200],
                    endpoints=[endpoint],
                    labels={"environment": Cluster.Environment.OTHER},
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


def tab_update(*, actor: Actor, tab: Cluster, changes: dict) -> tuple[Cluster, str]:
    """Apply a PATCH. A changed endpoint is re-validated like a create (scheme, connection test
    with the new or stored credentials, default-cluster check) and resets the status to ok.
    Credential or TLS changes alone reset it to unknown for the next probe. `password` "" keeps
    the stored one (reference); `clear_password: true` removes it. A change of endpoint, scheme,
    TLS fields or username drops the stored password unless `password` gives a new one (it
    must never reach another host). Returns (tab, warning). Only an applied PATCH is audited."""
    with audited("kv_tab_update", actor=actor, target=str(tab.id), failures=()) as action:
        fields, new_password, warning = _tab_changes(tab, changes)
        if fields:
            if any(key in fields for key in (*CONNECTION_FIELDS, "endpoints", "password_cipher")):
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


def _tab_changes(tab: Cluster, changes: dict) -> tuple[dict, str | None, str]:
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

    endpoints = None
    if changes.get("endpoints") is not None:  # a record's list (the clusters API)
        endpoints = endpoints_validate(changes["endpoints"])
    elif changes.get("endpoint") is not None:  # a tab's one endpoint
        endpoints = [endpoint_validate(changes["endpoint"])]
    moved = endpoints is not None and endpoints != list(tab.endpoints)
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
        if new_password is not None:
            password = new_password
        else:  # identity unchanged and no stored password: nothing to decrypt but an empty blob
            try:
                password = password_decrypt(tab.password_cipher, tab_id=str(tab.pk))
            except (TabKeyMissing, TabDecryptFailed) as exc:
                raise key_missing(exc) from None
        _, members = connection_tried(
            endpoints=endpoints,
            username=fields.get("username", tab.username),
            password=password,
            ca_cert=fields.get("ca_cert", tab.ca_cert),
            insecure_skip_verify=fields.get("insecure_skip_verify", tab.insecure_skip_verify),
        )
        for url in endpoints:
            warning = default_member_check(url, members) or warning
        fields.update(
            endpoints=endpoints,
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


def tab_delete(*, actor: Actor, tab: Cluster) -> None:
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
    *, tab: Cluster, username: str | None = None, password: str | None = None
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
                for tab in Cluster.objects.select_for_update().filter(owner=actor.user)
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
                Cluster.objects.bulk_update(tabs.values(), ["sort_order"])
        if unknown:  # audited outside the transaction, which a raise would roll back
            foreign = _foreign_ids(unknown, owner=actor.user)
            if foreign:
                _audit_cross_user(actor=actor, ids=foreign, route=route)
            raise InvalidInput("tab not found", code="KV_TAB_NOT_FOUND")


def _foreign_ids(ids: list[str], *, owner) -> list[str]:
    found = (
        Cluster.objects.filter(pk__in=ids)
        .exclude(owner=owner)
        .exclude(owner=None)
        .values_list("pk", flat=True)
    )
    return sorted(found)


# --- health --------------------------------------------------------------------------------------


def tab_mark_used(*, tab: Cluster, error: Exception | None) -> None:
    """After a KV request on a tab: success proves it healthy; a connection or credential
    failure marks it `error` at once (other errors, e.g. a missing key, say nothing)."""
    now = timezone.now()
    if error is None:
        if tab.last_status != Status.OK or tab.failure_count:
            Cluster.objects.filter(pk=tab.pk).update(
                last_status=Status.OK, last_error="", failure_count=0, last_checked_at=now
            )
        return
    # A key outside the user's etcd role is the user's business, not the tab's health.
    if not isinstance(error, EtcdUnavailable | EtcdTimeout | EtcdAuthFailed):
        return
    status = classify(error)
    Cluster.objects.filter(pk=tab.pk).update(
        last_status=Status.ERROR,
        last_error=f"{status}: {failure_text(error)}"[:2000],
        last_checked_at=now,
    )


@contextlib.contextmanager
def tab_usage(*, tab: Cluster):
    """Around a KV request on a tab: marks the tab by what the request found (tab_mark_used);
    an error that is not etcd's (bad input, a value too large) says nothing about the tab."""
    try:
        yield
    except EtcdError as exc:
        tab_mark_used(tab=tab, error=exc)
        raise
    tab_mark_used(tab=tab, error=None)


def _probe_one(tab: Cluster, timeout: float) -> tuple[str, str] | None:
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
        # Tabs only (users' own clusters): shared ones are the monitoring's to probe.
        Cluster.objects.exclude(owner=None).only(
            "id",
            "endpoints",
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
    Cluster.objects.bulk_update(
        tabs, ["last_status", "last_error", "last_checked_at", "failure_count"], batch_size=500
    )
    return counts


# --- cluster records (/api/clusters) and the cluster a KV or ops request acts on --------------

MAX_LABELS = 32
SYSTEM = Actor(username="system")


def cluster_not_found() -> NotFound:
    return NotFound("cluster not found", code="CLUSTER_NOT_FOUND")


def cluster_read_only() -> Forbidden:
    return Forbidden(
        "the default cluster is configured by the environment (ETCD_ENDPOINTS) and is read-only",
        code="CLUSTER_READ_ONLY",
    )


def cluster_for_route(*, actor: Actor, cluster_id: str, route: str) -> Cluster | None:
    """The cluster a KV or ops request names: None for the default (absent or "default"; no
    query: it is the settings' cluster), else a shared record or the actor's own. Unknown ids
    and other users' own clusters are the same 404 CLUSTER_NOT_FOUND (the latter audited as a
    cross-user attempt)."""
    if cluster_id in ("", DEFAULT_CLUSTER_ID):
        return None
    cluster = _owned_or_shared(actor=actor, cluster_id=cluster_id, route=route)
    if cluster is None:
        raise cluster_not_found()
    return cluster


def labels_validate(labels) -> dict:
    """Labels are an object of short strings; `environment` is one of prod/staging/dev/other
    (other when absent), because the dashboard colours a cluster by it."""
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise InvalidInput(
            f"labels must be an object of at most {MAX_LABELS} labels", code="BAD_REQUEST"
        )
    clean = {}
    for name, value in labels.items():
        if not (isinstance(name, str) and 0 < len(name) <= 63 and name.strip() == name):
            raise InvalidInput(f"label name {name!r} is not allowed", code="BAD_REQUEST")
        if not isinstance(value, str) or len(value) > 255:
            raise InvalidInput(f"labels.{name} must be a string", code="BAD_REQUEST")
        clean[name] = value
    environment = clean.setdefault("environment", Cluster.Environment.OTHER)
    if environment not in Cluster.Environment.values:
        raise InvalidInput(
            f"labels.environment must be one of {', '.join(Cluster.Environment.values)}",
            code="BAD_REQUEST",
        )
    return clean


def _staff_only(actor: Actor) -> None:
    """Cluster records are the admins' (of every cluster; etcdmonitor_site.policy, which the
    API asks first): a service's own check for callers that do not come through it."""
    if not policy.allows(user=actor.user, role=policy.ADMIN, cluster_id=None):
        raise Forbidden(
            policy.denial_message(what=policy.CLUSTERS, role=policy.ADMIN, cluster_id=None),
            code="FORBIDDEN",
        )


def cluster_create(
    *,
    actor: Actor,
    endpoints: list[str] | str,
    name: str = "",
    username: str = "",
    password: str = "",
    ca_cert: str = "",
    insecure_skip_verify: bool = False,
    labels: dict | None = None,
    monitored: bool = False,
) -> Cluster:
    """Register a shared cluster (staff only): validate the endpoints (a list or one
    comma-separated string), labels and credentials, test every endpoint (400 with the
    reason: unreachable, bad scheme, auth failed), refuse the default cluster under another
    name, encrypt the password like a tab's and store the record. Audited as `cluster_create`
    (refusals included, with a short result)."""
    shown = ",".join(endpoints) if isinstance(endpoints, list) else str(endpoints)
    password_shown = MASK if password else ""
    with audited(
        "cluster_create",
        actor=actor,
        target=shown[:512],
        params=f"username={username} password={password_shown} monitored={monitored}",
        failures=(DomainError,),
    ) as action:
        try:
            _staff_only(actor)
        except Forbidden:
            action.result = "forbidden"
            raise
        try:
            endpoints = endpoints_validate(endpoints)
        except InvalidInput:
            action.result = "invalid_scheme"
            raise
        labels = labels_validate({} if labels is None else labels)
        action.target = ",".join(endpoints)[:512]
        try:
            ca_cert, members = connection_tried(
                endpoints=endpoints,
                username=username,
                password=password,
                ca_cert=ca_cert,
                insecure_skip_verify=insecure_skip_verify,
            )
        except InvalidInput as exc:
            action.result = f"{exc.extra.get('status', 'bad_request')}: {exc.message}"
            raise
        try:
            for url in endpoints:
                default_member_check(url, members)
        except Conflict:
            action.result = "belongs_to_default"
            raise
        cluster_id = new_cluster_id()
        try:
            cipher = password_encrypt(password, tab_id=cluster_id)
        except TabKeyMissing as exc:
            action.result = "encrypt_failed"
            raise InternalFailure(
                f"cannot encrypt the password: {exc}", code="ENCRYPT_FAILED"
            ) from None
        now = timezone.now()
        cluster = Cluster.objects.create(
            id=cluster_id,
            owner=None,
            name=(name.strip() or urlsplit(endpoints[0]).hostname or endpoints[0])[:200],
            endpoints=endpoints,
            username=username,
            password_cipher=cipher,
            ca_cert=ca_cert,
            insecure_skip_verify=insecure_skip_verify,
            labels=labels,
            monitored=monitored,
            last_status=Status.OK,
            last_checked_at=now,
            created_at=now,
            updated_at=now,
        )
        action.target = cluster.pk
        action.params = (
            f"endpoints={','.join(endpoints)} username={username} password={password_shown} "
            f"environment={labels['environment']} monitored={monitored}"
        )
    return cluster


def cluster_update(*, actor: Actor, cluster: Cluster, changes: dict) -> Cluster:
    """Apply a PATCH of `/api/clusters/{id}` (staff only; the default is read-only): the tab
    rules (`tab_update`: a new endpoint list is tested first, a changed identity drops the
    stored password unless one is given) plus `labels` (replaced whole) and `monitored`.
    Audited as `cluster_update`, refusals included."""
    with audited(
        "cluster_update", actor=actor, target=cluster.pk, failures=(DomainError,)
    ) as action:
        try:
            _staff_only(actor)
            if cluster.is_default:
                raise cluster_read_only()
        except Forbidden as exc:
            action.result = "forbidden" if exc.code == "FORBIDDEN" else "read_only"
            raise
        fields, new_password, _ = _tab_changes(cluster, changes)
        if "labels" in changes:
            labels = labels_validate(changes["labels"])
            if labels != cluster.labels:
                fields["labels"] = labels
        if "monitored" in changes and changes["monitored"] != cluster.monitored:
            fields["monitored"] = changes["monitored"]
        if fields:
            if any(key in fields for key in (*CONNECTION_FIELDS, "endpoints", "password_cipher")):
                tab_gateway_forget(cluster)
            fields["updated_at"] = timezone.now()
            for field, value in fields.items():
                setattr(cluster, field, value)
            cluster.save(update_fields=list(fields))
            if "ca_cert" in fields:
                ca_files_prune()
        changed = sorted(f for f in fields if f not in ("updated_at", "last_checked_at"))
        password_shown = "(cleared)" if new_password == "" else MASK if new_password else ""
        action.params = f"fields={','.join(changed)} password={password_shown}"
    return cluster


def cluster_delete(*, actor: Actor, cluster: Cluster) -> None:
    """Remove a record (staff only; the default is read-only); audited as `cluster_delete`."""
    with audited(
        "cluster_delete",
        actor=actor,
        target=cluster.pk,
        params=f"endpoints={','.join(cluster.endpoints)}",
        failures=(DomainError,),
    ) as action:
        try:
            _staff_only(actor)
            if cluster.is_default:
                raise cluster_read_only()
        except Forbidden as exc:
            action.result = "forbidden" if exc.code == "FORBIDDEN" else "read_only"
            raise
        tab_gateway_forget(cluster)
        cluster.delete()
        ca_files_prune()


def _default_fields() -> dict:
    return {
        "name": settings.ETCD_CLUSTER_NAME[:200] or DEFAULT_CLUSTER_ID,
        "endpoints": list(dict.fromkeys(normalise_endpoint(u) for u in settings.ETCD_ENDPOINTS)),
        "username": settings.ETCD_USERNAME,
        "insecure_skip_verify": settings.ETCD_TLS_INSECURE_SKIP_VERIFY,
        "labels": {"environment": settings.ETCD_CLUSTER_ENVIRONMENT},
        "monitored": True,  # the deployment has always monitored its configured cluster
    }


def default_cluster_current(cluster: Cluster | None) -> bool:
    """Whether the record `default` as read (None: there is none) matches the environment, so
    `default_cluster_sync` would change nothing (the alert round reads it with its own query)."""
    return cluster is not None and all(
        getattr(cluster, k) == v for k, v in _default_fields().items()
    )


def default_cluster_sync() -> Cluster:
    """Create or update the record `default` from the environment (ETCD_ENDPOINTS,
    ETCD_USERNAME, ETCD_TLS_INSECURE_SKIP_VERIFY, ETCD_CLUSTER_NAME / _ENVIRONMENT). Run after
    `migrate` and before anything lists records; one primary-key read when nothing changed.

    Its secrets stay in the environment (nothing is encrypted into the row): its gateway is the
    settings' own. Logged, not audited: nobody acted, the deployment's configuration changed.
    """
    wanted = _default_fields()
    cluster = Cluster.objects.filter(pk=DEFAULT_CLUSTER_ID).first()
    if default_cluster_current(cluster):
        return cluster
    now = timezone.now()
    cluster, created = Cluster.objects.update_or_create(
        pk=DEFAULT_CLUSTER_ID,
        defaults={**wanted, "owner": None, "updated_at": now},
        create_defaults={
            **wanted,
            "owner": None,
            "last_status": Status.UNKNOWN,
            "created_at": now,
            "updated_at": now,
        },
    )
    logger.info(
        "%s the default cluster record from the environment: %s",
        "created" if created else "updated",
        ",".join(wanted["endpoints"]),
    )
    return cluster


def cluster_for_viewer(*, actor: Actor, cluster_id: str, route: str) -> Cluster:
    """The record `/api/clusters/{id}` names, if the actor may see it: the default (brought up
    to date with the environment), a shared one or the actor's own; else 404
    CLUSTER_NOT_FOUND, also for another user's own cluster (audited as a cross-user attempt)."""
    if cluster_id == DEFAULT_CLUSTER_ID:
        return default_cluster_sync()
    cluster = _owned_or_shared(actor=actor, cluster_id=cluster_id, route=route)
    if cluster is None:
        raise cluster_not_found()
    return cluster


def route_cluster(
    *, actor: Actor, cluster_id: str, route: str
) -> tuple[Cluster | None, ClusterGateway]:
    """What a KV or ops request acts on: (None, the settings' gateway) for the default, or the
    record (`cluster_for_route`'s rules) and its gateway. Stored credentials that no longer
    decrypt are our failure (500 INTERNAL), never the client's."""
    cluster = cluster_for_route(actor=actor, cluster_id=cluster_id, route=route)
    if cluster is None:
        return None, shared_gateway()
    try:
        return cluster, cluster_gateway(cluster)
    except (TabKeyMissing, TabDecryptFailed) as exc:
        raise InternalFailure(f"cluster credentials unavailable: {exc}", code="INTERNAL") from None
