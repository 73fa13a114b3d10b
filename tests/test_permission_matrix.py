"""The permission matrix: every route, method and role, enumerated from the URL resolver.

A route added without a rule in `etcdmonitor_site.policy.RULES` fails
`test_every_route_and_method_has_a_rule` (and is refused to everyone at run time). Each API
route and method is then called for real by nobody, a viewer, an operator, an admin, a user
who is admin of one cluster only (`c1`) and viewer elsewhere, and an operator whose keys on `c1`
are narrowed to prefixes (a KV scope: the route rules are the role's, the scope narrows keys
after them, kvmanager.scopes); a refusal must be the policy's
403 in the route's error dialect with an audit row under the attempted operation, an allowed
call anything but that refusal. Allowed calls name a cluster that has no record (`c1`) and
carry no valid body, so nothing reaches etcd and nothing changes.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import AccountProfile
from accounts.services import session_create
from audit.models import AuditLog
from etcdmonitor_site import policy

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_ROUTE_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<\w+>[^)]*\)")
CLUSTER = "c1"  # a cluster id no record has: allowed calls end in 404 or 400
_SAMPLES = {"int": "999999", "str": CLUSTER, "path": "a/b"}

# The users of the matrix's columns: their role map (None: nobody signed in).
COLUMNS = {
    "anonymous": None,
    "viewer": {"*": "viewer"},
    "operator": {"*": "operator"},
    "admin": {"*": "admin"},
    "admin-of-c1": {"*": "viewer", CLUSTER: "admin"},
    "prefix-scoped": {"*": "operator"},
}
# The columns' KV prefix scopes (none: every key).
KV_SCOPES = {"prefix-scoped": {CLUSTER: {"read": ["/app/"], "write": ["/app/config/"]}}}
RANK = {"viewer": 0, "operator": 1, "admin": 2}


def _sample(pattern) -> str:
    text = str(pattern)
    if hasattr(pattern, "_route"):
        return _ROUTE_CONVERTER.sub(lambda m: _SAMPLES[m["converter"] or "str"], text)
    text = text.removeprefix("^").removesuffix("$").removesuffix("\\Z")
    text = _REGEX_GROUP.sub("999999", text)
    return text.replace("\\.", ".").replace("\\-", "-")


def _methods(name: str, callback) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:
        return sorted(method.upper() for method in actions)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is not None and hasattr(view_class, "http_method_names"):
        return [m.upper() for m in HTTP_METHODS if hasattr(view_class, m)]
    # A plain view: the methods its rules declare (test_plain_views_serve_only_... checks that
    # it answers 405 to the others); none declared: GET, which then has no rule.
    return sorted(m for n, m in policy.RULES if n == name) or ["GET"]


def _routes(resolver=None, prefix: str = "", namespace: str = ""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        path = prefix + _sample(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _routes(pattern, path, inner)
        elif isinstance(pattern, URLPattern):
            # An unnamed route has no rule, except inside the admin site (its catch-all).
            name = f"{namespace}{pattern.name or ''}" if namespace or pattern.name else ""
            for method in _methods(name, pattern.callback):
                yield name, "/" + path, method, pattern.callback


ROUTES = sorted({(name, method): (path, cb) for name, path, method, cb in _routes()}.items())
API_ROUTES = [
    (name, method, path)
    for (name, method), (path, _) in ROUTES
    if policy.rule_for(name, method) is not None and policy.rule_for(name, method).via_drf
]


def test_every_route_and_method_has_a_rule():
    """A new route (or a new method on one) without a rule fails here first."""
    missing = [
        (name or path, method)
        for (name, method), (path, _) in ROUTES
        if not name or policy.rule_for(name, method) is None
    ]

    assert missing == []
    assert len(API_ROUTES) >= 60


def test_every_rule_names_a_route_that_exists():
    served = {key for key, _ in ROUTES}

    assert sorted(set(policy.RULES) - served) == []


def test_every_api_view_enforces_the_policy():
    """Views that set their own permission classes keep the policy among them."""
    unguarded = []
    for (name, method), (_, callback) in ROUTES:
        view_class = getattr(callback, "cls", None)
        if view_class is None or not policy.rule_for(name, method).via_drf:
            continue
        initkwargs = getattr(callback, "initkwargs", {})
        classes = initkwargs.get("permission_classes", view_class.permission_classes)
        if policy.RoutePolicy not in classes:
            unguarded.append((name, method))

    assert unguarded == []


# The roles the issue names, checked against the table (the matrix then checks the table
# against the running API): what each role may do first.
ISSUE_ROLES = {
    ("members", "GET"): "viewer",
    ("status", "GET"): "viewer",
    ("metrics-range", "GET"): "viewer",
    ("alerts", "GET"): "viewer",
    ("kv-v3-keys", "GET"): "viewer",
    ("kv-v3-get", "GET"): "viewer",
    ("kv-v2-get", "GET"): "viewer",
    ("kv-v3-put", "PUT"): "operator",
    ("kv-v3-delete", "POST"): "operator",
    ("kv-v2-put", "PUT"): "operator",
    ("kv-v2-delete", "POST"): "operator",
    ("ops-snapshot", "GET"): "operator",
    ("ops-hashkv", "POST"): "operator",
    ("ops-alarms", "GET"): "operator",
    ("alert-silences", "POST"): "operator",
    ("alert-silence", "DELETE"): "operator",
    ("alert-ack", "POST"): "operator",
    ("ops-defragment", "POST"): "admin",
    ("ops-compact", "POST"): "admin",
    ("ops-move-leader", "POST"): "admin",
    ("ops-alarm-disarm", "POST"): "admin",
    ("clusters", "POST"): "admin",
    ("cluster", "PATCH"): "admin",
    ("cluster", "DELETE"): "admin",
    ("alert-channels", "POST"): "admin",
    ("alert-channel", "PATCH"): "admin",
    ("alert-rule", "PATCH"): "admin",
    ("users-list", "GET"): "admin",
    ("users-detail", "PATCH"): "admin",
}
ETCD_CHANGES = {
    ("kv-v3-put", "PUT"),
    ("kv-v3-delete", "POST"),
    ("kv-v2-put", "PUT"),
    ("kv-v2-delete", "POST"),
    ("ops-defragment", "POST"),
    ("ops-compact", "POST"),
    ("ops-move-leader", "POST"),
    ("ops-alarm-disarm", "POST"),
    ("kv-v3-revert", "POST"),
    ("kv-v3-restore", "POST"),
}


def test_the_table_gives_each_operation_the_issues_role():
    assert {key: policy.RULES[key].role for key in ISSUE_ROLES} == ISSUE_ROLES
    assert {key for key, rule in policy.RULES.items() if rule.mutates_etcd} == ETCD_CHANGES


@pytest.fixture
def clients(db):
    """A fresh signed-in client per column (None for anonymous); each call gets its own
    session, so a logout in the matrix ends only its own."""
    users = {}
    for column, roles in COLUMNS.items():
        if roles is None:
            continue
        user = get_user_model().objects.create_user(username=f"m-{column}", password="x" * 12)
        AccountProfile.objects.create(user=user, roles=roles, kv_scopes=KV_SCOPES.get(column, {}))
        users[column] = user

    def make(column: str) -> APIClient:
        client = APIClient()
        if column in users:
            token, _ = session_create(user=users[column])
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


def _held(column: str, rule: policy.Rule) -> str:
    """The role the column's user holds where the rule looks (independent of the policy)."""
    roles = COLUMNS[column]
    if rule.scope == policy.GLOBAL or callable(rule.scope):  # an ack of no alert: "*"
        return roles["*"]
    return roles.get(CLUSTER, roles["*"])


def expected_allowed(column: str, rule: policy.Rule) -> bool:
    if rule.role == policy.PUBLIC:
        return True
    if COLUMNS[column] is None:
        return False
    if rule.role == policy.SIGNED_IN:
        return True
    return RANK[_held(column, rule)] >= RANK[rule.role]


def _call(client, method: str, path: str):
    if method == "GET":
        return client.get(path, {"cluster_id": CLUSTER})
    return getattr(client, method.lower())(
        f"{path}?cluster_id={CLUSTER}", {"cluster_id": CLUSTER}, format="json"
    )


def _body(response) -> dict:
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        return data
    try:
        return response.json()
    except (ValueError, TypeError):
        return {}


def _is_policy_denial(response) -> bool:
    error = _body(response).get("error", "")
    return response.status_code == 403 and str(error).startswith("permission denied")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method", "path"), API_ROUTES, ids=lambda v: str(v))
def test_matrix(name, method, path, clients, settings):
    settings.OPS_ENABLED = True
    rule = policy.rule_for(name, method)
    outcomes = {}
    for column in COLUMNS:
        response = _call(clients(column), method, path)
        body = _body(response)
        allowed = expected_allowed(column, rule)
        if COLUMNS[column] is None and not allowed:
            outcomes[column] = (response.status_code, body) == (
                401,
                {"error": "not authenticated"},
            )
        elif allowed:
            outcomes[column] = response.status_code != 401 and not _is_policy_denial(response)
        else:
            outcomes[column] = _denied_as_the_policy_says(name, rule, response, column)
    assert outcomes == dict.fromkeys(COLUMNS, True)


def _denied_as_the_policy_says(name, rule, response, column) -> bool:
    body = _body(response)
    if not _is_policy_denial(response):
        return False
    code = {"kv-": "permission_denied"}.get(name[:3], "")
    if name.startswith(("kv-tab", "cluster")):
        code = "FORBIDDEN"
    expected = {"error": body["error"]}
    if code:
        expected["code"] = code
    if name.startswith(("kv-v3", "kv-v2")):
        expected["message"] = body["error"]
    entry = AuditLog.objects.filter(operation=rule.operation, username=f"m-{column}").last()
    return (
        body == expected
        and f"needs the {rule.role} role" in body["error"]
        and entry is not None
        and not entry.success
        and entry.result == body["error"]
    )


def test_the_matrix_calls_every_api_rule():
    """Every API rule is a column of calls above (none is only declared); the matrix's size,
    quoted in issue 21's closing note, is len(API_ROUTES) x len(COLUMNS)."""
    declared = {key for key, rule in policy.RULES.items() if rule.via_drf}

    assert {(name, method) for name, method, _ in API_ROUTES} == declared


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "path"),
    [(n, p) for (n, m), (p, _) in ROUTES if m == "GET" and n.startswith("dashboard")],
)
def test_pages_send_nobody_to_sign_in(name, path):
    """The plain Django pages enforce their rule themselves: signed-in pages redirect."""
    response = APIClient().get(path)

    assert (response.status_code, response["Location"]) == (302, "/login")


PLAIN_VIEWS = sorted(
    {
        (name, path)
        for (name, _), (path, callback) in ROUTES
        if not hasattr(callback, "cls") and not name.startswith(policy.ADMIN_SITE_NAMESPACE + ":")
    }
)


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), PLAIN_VIEWS)
def test_plain_views_serve_only_the_methods_their_rules_declare(name, path, admin_user, client):
    """So the rules of the plain views cover every method they answer."""
    client.force_login(admin_user)
    declared = {m for n, m in policy.RULES if n == name}
    others = [m for m in ("POST", "PUT", "PATCH", "DELETE") if m not in declared]

    statuses = {m: getattr(client, m.lower())(path).status_code for m in others}

    assert statuses == dict.fromkeys(others, 405)


@pytest.mark.django_db
def test_the_admin_site_refuses_a_non_staff_admin(clients, client):
    """The Django admin keeps its own rule (staff): an admin by role alone is not let in."""
    user = get_user_model().objects.get(username="m-admin")
    client.force_login(user)

    response = client.get("/admin/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), sorted(ETCD_CHANGES))
def test_read_only_refuses_every_etcd_change_even_to_a_superuser(
    name, method, api_client, settings
):
    settings.READ_ONLY = True
    settings.OPS_ENABLED = True
    path = next(p for (n, m), (p, _) in ROUTES if (n, m) == (name, method))

    response = _call(api_client, method, path)

    assert (response.status_code, _body(response)["error"]) == (403, policy.READ_ONLY_MESSAGE)
    entry = AuditLog.objects.get(success=False, username="admin")
    assert (entry.operation, entry.result) == (
        policy.RULES[(name, method)].operation,
        policy.READ_ONLY_MESSAGE,
    )


@pytest.mark.django_db
def test_read_only_leaves_the_products_own_settings_writable(api_client, settings):
    """Users, silences, channels, rules, layouts, cluster records and tabs: no READ_ONLY
    refusal (the calls carry no valid body, so they end in 400 or 404 instead)."""
    settings.READ_ONLY = True
    settings.OPS_ENABLED = True
    created = api_client.post(
        "/api/users",
        {"username": "newbie", "password": "steady-lantern-9", "roles": {"*": "viewer"}},
        format="json",
    )
    writes = [(n, m, p) for n, m, p in API_ROUTES if m != "GET" and (n, m) not in ETCD_CHANGES]

    refused = {
        (name, method)
        for name, method, path in writes
        if _body(_call(api_client, method, path)).get("error") == policy.READ_ONLY_MESSAGE
    }

    assert created.status_code == 201
    assert len(writes) >= 20 and refused == set()


# Every KV route but the live watch (a stream: kvmanager/tests/test_scopes.py reads it).
KV_ROUTES = [
    (name, method, path)
    for name, method, path in API_ROUTES
    if name.startswith(("kv-v3-", "kv-v2-")) and name != "kv-v3-watch"
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method", "path"), KV_ROUTES, ids=lambda v: str(v))
def test_the_prefix_scoped_column_on_a_real_cluster(name, method, path, kv_prefix):
    """The matrix's prefix-scoped user, now on the configured cluster (where its scope holds),
    aims every KV route at a key outside its prefixes: no route shows a value or another key
    from outside, every etcd change and every v2 route (but the separator) is refused 403
    `permission_denied`, audited, etcd untouched."""
    from etcdgateway import cluster_gateway

    secret = f"{kv_prefix}secret/k"
    cluster_gateway().put(secret.encode(), b"top-secret-value", ttl=None)
    cluster_gateway().put(f"{kv_prefix}hidden/other".encode(), b"top-secret-value", ttl=None)
    cluster_gateway().put(f"{kv_prefix}app/config/a".encode(), b"visible", ttl=None)
    user = get_user_model().objects.create_user(username="m-scoped", password="x" * 12)
    AccountProfile.objects.create(
        user=user,
        roles={"*": "operator"},
        kv_scopes={"default": {"read": [f"{kv_prefix}app/"], "write": [f"{kv_prefix}app/config/"]}},
    )
    client = APIClient()
    client.force_authenticate(user=user)
    params = {"key": secret, "prefix": f"{kv_prefix}secret/", "q": "secret"}
    body = {"key": secret, "value": "changed", "revision": 1, "dir": True}
    if method == "GET":
        response = client.get(path, params)
    else:
        response = getattr(client, method.lower())(path, body, format="json")
    text = (
        b"".join(response.streaming_content) if response.streaming else response.content
    ).decode()

    assert "top-secret-value" not in text and "hidden" not in text
    assert cluster_gateway().get(secret.encode()).value == b"top-secret-value"
    v2_refused = name.startswith("kv-v2-") and name != "kv-v2-separator"
    if policy.RULES[(name, method)].mutates_etcd or v2_refused:
        assert response.status_code == 403, text
        assert response.json()["code"] == "permission_denied"
        entry = AuditLog.objects.filter(username="m-scoped").last()
        assert entry is not None and not entry.success
        assert entry.operation == policy.RULES[(name, method)].operation
    else:
        assert response.status_code in (200, 404), text


def test_the_prefix_scoped_column_covers_every_kv_route():
    assert len(KV_ROUTES) >= 20
    assert {n for n, _, _ in KV_ROUTES} == {
        n for (n, _) in policy.RULES if n.startswith(("kv-v3-", "kv-v2-")) and n != "kv-v3-watch"
    }
