"""Who may call which route: the one permission policy of the API (issue 21).

Every route, named by its URL name and HTTP method, has a `Rule`: the least role it needs and
the operation name a denial is audited under. `RoutePolicy`, the default DRF permission class,
looks the request's rule up and enforces it; a route without a rule is refused to everyone
(and fails the permission-matrix test, tests/test_permission_matrix.py).

Roles (accounts.selectors.role_for): viewer ⊂ operator ⊂ admin, per cluster. A rule's `scope`
says which cluster's role counts: the one the request names (`cluster_id`, see
etcdmonitor_site.api.cluster_id_param), one taken from the URL, or `GLOBAL` for the product's
own settings (users, cluster records, channels, rules), which need the role on every cluster
("*") — or, for admin, a user the Django admin already trusts (staff, superuser).

`READ_ONLY=true` refuses every rule marked `mutates_etcd` to everyone, admins included.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from rest_framework.permissions import BasePermission

from accounts.models import Role
from accounts.selectors import role_allows, users_admin
from accounts.validators import ANY_CLUSTER
from audit.services import Actor, audit_record
from etcdmonitor_site.api import cluster_id_param
from etcdmonitor_site.errors import Forbidden

PUBLIC = "public"  # no session needed (sign-in, health)
SIGNED_IN = "signed_in"  # any session: the user's own things (layout, logout, own tabs' order)
VIEWER, OPERATOR, ADMIN = Role.VIEWER.value, Role.OPERATOR.value, Role.ADMIN.value
STAFF = "staff"  # the Django admin site: its own login and model permissions
LEVELS = (PUBLIC, SIGNED_IN, VIEWER, OPERATOR, ADMIN, STAFF)

PARAM = "param"  # the cluster the request names (query, or body on writes); none = "default"
GLOBAL = "global"  # the product's own settings: the role on every cluster ("*")
DEFAULT_CLUSTER_ID = "default"

READ_ONLY_MESSAGE = "read-only mode: changes to etcd clusters are disabled (READ_ONLY=true)"
NO_RULE_MESSAGE = "permission denied: this route has no permission rule"


@dataclass(frozen=True)
class Rule:
    """The least role a route and method need, on which cluster, and how a denial is named.

    `operation` is the audit log's name of what was attempted (the service's own name for
    writes); `what` words the denial ("permission denied: <what> needs the <role> role");
    `scope` is PARAM, GLOBAL, "kwarg:<name>" (a URL parameter) or a function of (request,
    view) returning a cluster id; `mutates_etcd` marks what READ_ONLY refuses.
    """

    role: str
    operation: str
    scope: str | Callable = PARAM
    mutates_etcd: bool = False
    what: str = ""
    via_drf: bool = True  # False: a plain Django view enforces its own rule (pages, /metrics)

    @property
    def cluster_scoped(self) -> bool:
        return self.role in (VIEWER, OPERATOR, ADMIN) and self.scope != GLOBAL


def _alert_cluster(request, view) -> str:
    """The cluster of the alert an ack names ("*" when there is no such alert: the view's 404
    follows for whoever may ack on every cluster)."""
    from alerts.models import Alert

    pk = view.kwargs.get("pk")
    found = Alert.objects.filter(pk=pk).values_list("cluster_id", flat=True).first()
    return found or ANY_CLUSTER


def _kv(name: str, *, writes: dict[str, tuple[str, str]]) -> dict:
    """The rules of one KV family (v3 or v2): reads are the viewer's, writes the operator's."""
    reads = {
        (f"kv-{name}-connect", "GET"): "kv_connect",
        (f"kv-{name}-connect", "POST"): "kv_connect",
        (f"kv-{name}-separator", "GET"): "kv_separator",
        (f"kv-{name}-keys", "GET"): "kv_keys",
        (f"kv-{name}-getpath", "GET"): "kv_getpath",
        (f"kv-{name}-get", "GET"): "kv_get",
        (f"kv-{name}-list", "GET"): "kv_list",
        (f"kv-{name}-count", "GET"): "kv_count",
    }
    rules = {key: Rule(VIEWER, operation) for key, operation in reads.items()}
    for route, (method, operation) in writes.items():
        rules[(f"kv-{name}-{route}", method)] = Rule(OPERATOR, operation, mutates_etcd=True)
    return rules


USERS = "managing users"
CLUSTERS = "changing clusters"
CHANNELS = "changing notification channels"

RULES: dict[tuple[str, str], Rule] = {
    # --- sign-in (accounts) ---
    ("auth-login", "POST"): Rule(PUBLIC, "login"),
    ("auth-change-password", "POST"): Rule(PUBLIC, "change_password"),
    ("auth-status", "GET"): Rule(PUBLIC, "auth_status"),
    ("auth-logout", "POST"): Rule(SIGNED_IN, "logout"),
    ("users-list", "GET"): Rule(ADMIN, "user_list", GLOBAL, what=USERS),
    ("users-list", "POST"): Rule(ADMIN, "user_create", GLOBAL, what=USERS),
    ("users-detail", "GET"): Rule(ADMIN, "user_get", GLOBAL, what=USERS),
    ("users-detail", "PATCH"): Rule(ADMIN, "user_update", GLOBAL, what=USERS),
    ("users-detail", "DELETE"): Rule(ADMIN, "user_delete", GLOBAL, what=USERS),
    # --- monitoring: metrics and health ---
    ("members", "GET"): Rule(VIEWER, "members_list"),
    ("metrics-current", "GET"): Rule(VIEWER, "metrics_current"),
    ("metrics-range", "GET"): Rule(VIEWER, "metrics_range"),
    ("status", "GET"): Rule(VIEWER, "status"),
    # Everyone is at least a viewer everywhere; the list holds only the clusters one may see.
    ("fleet", "GET"): Rule(SIGNED_IN, "fleet_list"),
    ("debug", "GET"): Rule(VIEWER, "debug"),  # and loopback or staff (the view's own check)
    ("user-panel-config", "GET"): Rule(SIGNED_IN, "panel_config_get"),
    ("user-panel-config", "PUT"): Rule(SIGNED_IN, "panel_config_save"),
    # --- keys: names and values are the viewer's; writes the operator's ---
    **_kv("v3", writes={"put": ("PUT", "put"), "delete": ("POST", "delete")}),
    ("kv-v3-watch", "GET"): Rule(VIEWER, "kv_watch"),
    ("kv-v3-history", "GET"): Rule(VIEWER, "kv_history"),
    ("kv-v3-deleted", "GET"): Rule(VIEWER, "kv_deleted"),
    ("kv-v3-revert", "POST"): Rule(OPERATOR, "revert", mutates_etcd=True),
    ("kv-v3-restore", "POST"): Rule(OPERATOR, "restore", mutates_etcd=True),
    ("kv-v3-search", "GET"): Rule(VIEWER, "kv_search"),
    **_kv("v2", writes={"put": ("PUT", "put"), "delete": ("POST", "delete")}),
    # --- cluster records: everyone reads what they may see; admins change them ---
    ("clusters", "GET"): Rule(SIGNED_IN, "cluster_list"),
    ("clusters", "POST"): Rule(ADMIN, "cluster_create", GLOBAL, what=CLUSTERS),
    ("cluster", "GET"): Rule(SIGNED_IN, "cluster_get"),
    ("cluster", "PATCH"): Rule(ADMIN, "cluster_update", GLOBAL, what=CLUSTERS),
    ("cluster", "DELETE"): Rule(ADMIN, "cluster_delete", GLOBAL, what=CLUSTERS),
    # --- a user's own clusters (KV tabs): adding one makes the server connect anywhere ---
    ("kv-tabs", "GET"): Rule(SIGNED_IN, "kv_tab_list"),
    ("kv-tabs", "POST"): Rule(OPERATOR, "kv_tab_create", GLOBAL),
    ("kv-tabs-order", "PUT"): Rule(SIGNED_IN, "kv_tab_reorder"),
    ("kv-tabs-test", "POST"): Rule(OPERATOR, "kv_tab_test", GLOBAL),
    ("kv-tab", "PATCH"): Rule(OPERATOR, "kv_tab_update", "kwarg:tab_id"),
    ("kv-tab", "DELETE"): Rule(SIGNED_IN, "kv_tab_delete"),
    ("kv-tab-test", "POST"): Rule(VIEWER, "kv_tab_test", "kwarg:tab_id"),
    # --- maintenance ---
    ("ops-defragment", "POST"): Rule(ADMIN, "defragment", mutates_etcd=True),
    ("ops-snapshot", "GET"): Rule(OPERATOR, "snapshot"),
    ("ops-alarms", "GET"): Rule(OPERATOR, "alarms_list", what="the alarm list"),
    ("ops-alarm-disarm", "POST"): Rule(ADMIN, "alarm_disarm", mutates_etcd=True),
    ("ops-move-leader", "POST"): Rule(ADMIN, "move_leader", mutates_etcd=True),
    ("ops-hashkv", "POST"): Rule(OPERATOR, "hashkv"),
    ("ops-compact", "POST"): Rule(ADMIN, "compact", mutates_etcd=True),
    ("ops-compact-revision", "GET"): Rule(VIEWER, "compact_revision"),
    # Who did what from where, on every cluster: the operators' (it is not per cluster).
    ("ops-audit-logs", "GET"): Rule(OPERATOR, "audit_log_list", GLOBAL, what="the audit log"),
    # --- alerting ---
    ("alerts", "GET"): Rule(VIEWER, "alert_list"),
    ("alert", "GET"): Rule(VIEWER, "alert_get"),
    ("alert-ack", "POST"): Rule(OPERATOR, "alert_ack", _alert_cluster),
    ("alert-rules", "GET"): Rule(VIEWER, "alert_rule_list"),
    ("alert-rule", "PATCH"): Rule(ADMIN, "alert_rule_update", GLOBAL, what="changing alert rules"),
    ("alert-silences", "GET"): Rule(VIEWER, "alert_silence_list"),
    # A silence's matchers may span clusters: creating or expiring one is global.
    ("alert-silences", "POST"): Rule(OPERATOR, "alert_silence_create", GLOBAL),
    ("alert-silence", "DELETE"): Rule(OPERATOR, "alert_silence_expire", GLOBAL),
    ("alert-channels", "GET"): Rule(VIEWER, "alert_channel_list"),
    ("alert-channels", "POST"): Rule(ADMIN, "alert_channel_create", GLOBAL, what=CHANNELS),
    ("alert-channel", "PATCH"): Rule(ADMIN, "alert_channel_update", GLOBAL, what=CHANNELS),
    ("alert-channel", "DELETE"): Rule(ADMIN, "alert_channel_delete", GLOBAL, what=CHANNELS),
    ("alert-channel-test", "POST"): Rule(ADMIN, "alert_channel_test", GLOBAL, what=CHANNELS),
    # --- the schema and the plain Django views (each enforces its rule itself) ---
    ("api-schema", "GET"): Rule(SIGNED_IN, "api_schema"),
    ("dashboard", "GET"): Rule(SIGNED_IN, "page", via_drf=False),
    ("dashboard-kv", "GET"): Rule(SIGNED_IN, "page", via_drf=False),
    ("dashboard-ops", "GET"): Rule(SIGNED_IN, "page", via_drf=False),
    ("dashboard-users", "GET"): Rule(SIGNED_IN, "page", via_drf=False),
    ("dashboard-fleet", "GET"): Rule(SIGNED_IN, "page", via_drf=False),
    ("dashboard-alerts", "GET"): Rule(SIGNED_IN, "page", via_drf=False),
    ("login", "GET"): Rule(PUBLIC, "page", via_drf=False),
    ("change-password", "GET"): Rule(PUBLIC, "page", via_drf=False),
    ("healthz", "GET"): Rule(PUBLIC, "healthz", via_drf=False),
    ("metrics", "GET"): Rule(PUBLIC, "metrics", via_drf=False),  # METRICS_TOKEN or loopback
    # The audit log admin's old address redirects, whatever the method, to the admin site.
    **{
        ("admin-auditlog-moved", method): Rule(STAFF, "page", via_drf=False)
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    },
}

# Every route of the Django admin site (URL namespace "admin"): staff, by Django's own checks.
ADMIN_SITE_NAMESPACE = "admin"


def rule_for(view_name: str, method: str) -> Rule | None:
    """The rule of a route (its URL name, namespaced "admin:…" for the admin site) and method;
    HEAD is GET's. None: the route has no rule and is refused."""
    method = "GET" if method == "HEAD" else method
    if view_name.startswith(ADMIN_SITE_NAMESPACE + ":"):
        return Rule(STAFF, "page", via_drf=False)
    return RULES.get((view_name, method))


def _signed_in(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and user.is_active


def allows(*, user, role: str, cluster_id: str | None) -> bool:
    """Whether `user` holds `role` on cluster `cluster_id` (None: on the product as a whole,
    i.e. on every cluster "*"; a users admin — staff, superuser, "*": admin — holds it)."""
    if role == PUBLIC:
        return True
    if not _signed_in(user):
        return False
    if role == SIGNED_IN:
        return True
    if role == STAFF:
        return bool(user.is_staff)
    if cluster_id is None:
        return users_admin(user) or role_allows(user=user, cluster_id=ANY_CLUSTER, role=role)
    return role_allows(user=user, cluster_id=cluster_id, role=role)


def require(*, user, role: str, operation: str, cluster_id: str | None = None) -> None:
    """Raise Forbidden unless `user` holds `role`: the check a service makes itself for callers
    that do not come through the API's permission class (the caller's audit records it)."""
    if not allows(user=user, role=role, cluster_id=cluster_id):
        raise Forbidden(denial_message(what=operation, role=role, cluster_id=cluster_id))


def denial_message(*, what: str, role: str, cluster_id: str | None) -> str:
    where = f" on cluster {cluster_id}" if cluster_id is not None else ""
    return f"permission denied: {what} needs the {role} role{where}"


def denial_audit(
    *, actor: Actor, operation: str, cluster_id: str | None, result: str, params=""
) -> None:
    audit_record(
        operation=operation,
        username=actor.username,
        target=f"cluster {cluster_id}" if cluster_id is not None else "",
        params=params,
        result=result,
        success=False,
        client_ip=actor.client_ip,
    )


def _view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else ""


def _cluster_of(rule: Rule, request, view) -> str | None:
    """The cluster whose role decides, per the rule's scope (None: the whole product)."""
    if rule.scope == GLOBAL:
        return None
    if callable(rule.scope):
        return rule.scope(request, view)
    if rule.scope.startswith("kwarg:"):
        return str(view.kwargs.get(rule.scope.removeprefix("kwarg:"), ""))
    dialect = getattr(view, "error_dialect", None)
    _, cluster_id = cluster_id_param(
        request,
        names=getattr(view, "cluster_id_names", ("cluster_id",)),
        code=getattr(dialect, "validation_code", ""),
    )
    return cluster_id or DEFAULT_CLUSTER_ID


def _route_is_public(view_name: str) -> bool:
    return any(rule.role == PUBLIC for (name, _), rule in RULES.items() if name == view_name)


class RoutePolicy(BasePermission):
    """The default permission class of every API view: the route's `Rule`, enforced.

    No session → 401 (DRF's NotAuthenticated, via `False`); a session without the role, a
    route without a rule, or an etcd change under READ_ONLY → 403 `{"error": …}` in the
    route's error dialect (its `forbidden_code`), audited under the attempted operation.
    """

    def has_permission(self, request, view) -> bool:
        method = request.method.upper()
        view_name = _view_name(request._request)
        if method == "OPTIONS" or getattr(view, method.lower(), None) is None:
            # Metadata, or a method the route does not serve (DRF answers 405): a session is
            # enough, as before; a public route's 405 needs none.
            return _route_is_public(view_name) or _signed_in(request.user)
        rule = rule_for(view_name, method)
        if rule is None:
            self._deny(request, view, operation=view_name or "unknown", message=NO_RULE_MESSAGE)
        if rule.role == PUBLIC:
            return True
        if not _signed_in(request.user):
            return False
        if rule.role == SIGNED_IN:
            return True  # the user's own things: no cluster to look up, nothing of etcd's
        cluster_id = _cluster_of(rule, request, view)
        if not allows(user=request.user, role=rule.role, cluster_id=cluster_id):
            message = denial_message(
                what=rule.what or rule.operation, role=rule.role, cluster_id=cluster_id
            )
            self._deny(request, view, operation=rule.operation, message=message, cluster=cluster_id)
        if rule.mutates_etcd and settings.READ_ONLY:
            self._deny(
                request,
                view,
                operation=rule.operation,
                message=READ_ONLY_MESSAGE,
                cluster=cluster_id,
            )
        return True

    @staticmethod
    def _deny(request, view, *, operation: str, message: str, cluster: str | None = None):
        denial_audit(
            actor=Actor.from_request(request),
            operation=operation,
            cluster_id=cluster,
            result=message,
            params={"method": request.method, "path": request.path[:300]},
        )
        dialect = getattr(view, "error_dialect", None)
        raise Forbidden(message, code=getattr(dialect, "forbidden_code", ""))
