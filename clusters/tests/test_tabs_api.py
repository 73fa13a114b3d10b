"""The KV tab endpoints (reference §1.4) against a second, separate etcd cluster."""

import uuid

import pytest
from django.conf import settings as django_settings

from audit.models import AuditLog
from clusters.models import Cluster
from clusters.tests.conftest import add_tab, dead_url, remote_get

TAB_FIELDS = {
    "id", "name", "endpoint", "username", "has_password", "sort_order", "last_status",
    "last_error", "last_checked_at", "is_default", "insecure_skip_verify", "has_ca_cert",
    "created_at", "updated_at",
}  # fmt: skip


def audits(operation: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(operation=operation).order_by("id"))


def test_a_new_user_sees_only_the_default_tab(api_client):
    response = api_client.get("/api/kv/tabs")

    assert response.status_code == 200
    (default,) = response.json()["tabs"]
    assert set(default) == TAB_FIELDS
    assert default["id"] == "default" and default["is_default"] is True
    assert default["sort_order"] == -1 and default["last_status"] == "ok"
    assert default["endpoint"] == django_settings.ETCD_ENDPOINTS[0]


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/kv/tabs"),
        ("post", "/api/kv/tabs"),
        ("patch", f"/api/kv/tabs/{uuid.uuid4()}"),
        ("delete", f"/api/kv/tabs/{uuid.uuid4()}"),
        ("post", f"/api/kv/tabs/{uuid.uuid4()}/test"),
        ("put", "/api/kv/tabs/order"),
    ],
)
def test_every_tab_route_answers_401_without_a_session(client, db, method, path):
    response = getattr(client, method)(path, {}, content_type="application/json")

    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}


def test_create_tests_the_connection_and_stores_the_tab_last(api_client, remote_url):
    response = api_client.post("/api/kv/tabs", {"endpoint": remote_url + "/"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert "warning" not in body
    tab = body["tab"]
    assert set(tab) == TAB_FIELDS
    assert tab["endpoint"] == remote_url and tab["name"] == "127.0.0.1"
    assert tab["has_password"] is False and tab["last_status"] == "ok"
    assert tab["is_default"] is False and tab["sort_order"] == 1
    assert tab["insecure_skip_verify"] is False and tab["has_ca_cert"] is False
    assert Cluster.objects.get(pk=tab["id"]).owner == api_client.user
    (entry,) = audits("kv_tab_create")
    assert entry.success and entry.target == tab["id"] and entry.result == "ok"
    assert entry.params == f"scheme=http endpoint={remote_url} username= password="
    listed = api_client.get("/api/kv/tabs").json()["tabs"]
    assert [t["id"] for t in listed] == ["default", tab["id"]]


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://127.0.0.1:2379",
        "127.0.0.1:2379",
        "http://",
        "http://127.0.0.1:1,http://127.0.0.1:2",
        "http://127.0.0.1:2379/v3/kv",
        "http://user:pw@127.0.0.1:2379",
        "http://127.0.0.1:99999",
    ],
)
def test_create_refuses_anything_but_one_http_or_https_url(api_client, endpoint):
    response = api_client.post("/api/kv/tabs", {"endpoint": endpoint}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "KV_TAB_INVALID_SCHEME"
    (entry,) = audits("kv_tab_create")
    assert not entry.success and entry.result == "invalid_scheme"
    assert not Cluster.objects.exclude(pk="default").exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"endpoint": ""},
        {"endpoint": "   "},
        {"endpoint": 5},
        {"endpoint": "http://x", "name": 1},
    ],
)
def test_create_with_a_missing_or_mistyped_field_is_bad_request(api_client, body):
    response = api_client.post("/api/kv/tabs", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"


def test_create_with_a_body_that_is_not_an_object_is_bad_request(api_client):
    for raw in ("[1]", "{not json"):
        response = api_client.post("/api/kv/tabs", raw, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["code"] == "BAD_REQUEST"


def test_unreachable_endpoint_is_a_400_so_the_dashboard_does_not_log_out(api_client):
    url = dead_url()

    response = api_client.post("/api/kv/tabs", {"endpoint": url}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "KV_TAB_UNREACHABLE" and body["status"] == "unreachable"
    (entry,) = audits("kv_tab_create")
    assert entry.target == url and entry.result.startswith("unreachable: ")
    assert not Cluster.objects.exclude(pk="default").exists()


def test_eleventh_tab_of_a_user_is_refused_while_others_still_can_add(
    api_client, bob_client, remote_url
):
    for _ in range(10):
        add_tab(api_client, remote_url)

    response = api_client.post("/api/kv/tabs", {"endpoint": remote_url}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "KV_TAB_LIMIT_EXCEEDED"
    assert audits("kv_tab_create")[-1].result == "limit_exceeded"
    assert Cluster.objects.filter(owner=api_client.user).count() == 10
    assert [t["sort_order"] for t in api_client.get("/api/kv/tabs").json()["tabs"]] == [
        -1,
        *range(1, 11),
    ]
    add_tab(bob_client, remote_url)


def test_a_member_of_the_default_cluster_is_refused_as_a_duplicate(api_client, etcd_cluster):
    member = etcd_cluster.client_urls[1]

    response = api_client.post(
        "/api/kv/tabs", {"endpoint": member.upper().replace("HTTP", "http") + "//"}, format="json"
    )

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "KV_TAB_BELONGS_TO_DEFAULT"
    assert body["matched_member_url"] == member
    assert "default" in body["message"]
    entry = audits("kv_tab_create")[-1]
    assert entry.result == "belongs_to_default" and f"matched={member}" in entry.params


def test_default_members_missing_from_the_configured_endpoints_are_caught_too(
    api_client, etcd_cluster, settings
):
    settings.ETCD_ENDPOINTS = etcd_cluster.client_urls[:1]

    response = api_client.post(
        "/api/kv/tabs", {"endpoint": etcd_cluster.client_urls[2]}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["matched_member_url"] == etcd_cluster.client_urls[2]


def test_unavailable_default_member_list_creates_the_tab_with_a_warning(
    api_client, remote_url, settings
):
    settings.ETCD_ENDPOINTS = [dead_url()]

    response = api_client.post("/api/kv/tabs", {"endpoint": remote_url}, format="json")

    assert response.status_code == 201
    assert response.json()["warning"] == "degraded_member_check"


def test_patch_renames_without_touching_the_connection(api_client, remote_url):
    tab = add_tab(api_client, remote_url)

    response = api_client.patch(f"/api/kv/tabs/{tab['id']}", {"name": "staging"}, format="json")

    assert response.status_code == 200
    patched = response.json()["tab"]
    assert patched["name"] == "staging" and patched["has_password"] is False
    assert patched["last_status"] == "ok"
    (entry,) = audits("kv_tab_update")
    assert entry.target == tab["id"] and entry.params == "fields=name password="


def test_patch_keeps_the_password_when_empty_and_clears_it_on_request(api_client, remote_url):
    tab = add_tab(api_client, remote_url)
    path = f"/api/kv/tabs/{tab['id']}"
    api_client.patch(path, {"username": "u", "password": "pw-1"}, format="json")

    assert api_client.patch(path, {"password": ""}, format="json").json()["tab"]["has_password"]
    cleared = api_client.patch(path, {"clear_password": True}, format="json").json()["tab"]

    assert cleared["has_password"] is False
    assert bytes(Cluster.objects.get(pk=tab["id"]).password_cipher) == b""
    assert "password=(cleared)" in audits("kv_tab_update")[-1].params
    changed = api_client.patch(path, {"password": "pw-2"}, format="json").json()["tab"]
    assert changed["has_password"] is True
    assert "pw-2" not in audits("kv_tab_update")[-1].params


def test_patch_of_the_endpoint_is_validated_like_a_create(api_client, remote_url, etcd_cluster):
    tab = add_tab(api_client, remote_url)
    path = f"/api/kv/tabs/{tab['id']}"

    bad_scheme = api_client.patch(path, {"endpoint": "ftp://x"}, format="json")
    unreachable = api_client.patch(path, {"endpoint": dead_url()}, format="json")
    duplicate = api_client.patch(path, {"endpoint": etcd_cluster.client_urls[0]}, format="json")

    assert (bad_scheme.status_code, bad_scheme.json()["code"]) == (400, "KV_TAB_INVALID_SCHEME")
    assert (unreachable.status_code, unreachable.json()["code"]) == (400, "KV_TAB_UNREACHABLE")
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "KV_TAB_BELONGS_TO_DEFAULT")
    assert Cluster.objects.get(pk=tab["id"]).endpoint == remote_url
    moved = remote_url.replace("127.0.0.1", "localhost")
    ok = api_client.patch(path, {"endpoint": moved}, format="json")
    assert ok.status_code == 200
    assert ok.json()["tab"]["endpoint"] == moved and ok.json()["tab"]["last_status"] == "ok"


def test_the_default_tab_cannot_be_edited_closed_or_tested(api_client):
    for response in (
        api_client.patch("/api/kv/tabs/default", {"name": "x"}, format="json"),
        api_client.delete("/api/kv/tabs/default"),
        api_client.post("/api/kv/tabs/default/test", {}, format="json"),
    ):
        assert response.status_code == 400
        assert response.json()["code"] == "KV_TAB_DEFAULT_PROTECTED"


@pytest.mark.parametrize("tab_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_tab_ids_are_404_tab_not_found(api_client, tab_id):
    for response in (
        api_client.patch(f"/api/kv/tabs/{tab_id}", {"name": "x"}, format="json"),
        api_client.delete(f"/api/kv/tabs/{tab_id}"),
        api_client.post(f"/api/kv/tabs/{tab_id}/test", {}, format="json"),
        api_client.get(f"/api/kv/v3/keys?tab_id={tab_id}"),
        api_client.get(f"/api/kv/v2/keys?tab_id={tab_id}"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "KV_TAB_NOT_FOUND"
        assert response.json()["error"] == "tab not found"
    assert not audits("kv_tab_cross_user_attempt")


def test_another_users_tab_behaves_like_an_unknown_one_and_is_audited(
    api_client, bob_client, remote_url
):
    theirs = add_tab(bob_client, remote_url, name="bobs")
    unknown = str(uuid.uuid4())

    def attempts(tab_id):
        return [
            api_client.patch(f"/api/kv/tabs/{tab_id}", {"name": "mine"}, format="json"),
            api_client.delete(f"/api/kv/tabs/{tab_id}"),
            api_client.post(f"/api/kv/tabs/{tab_id}/test", {}, format="json"),
            api_client.get(f"/api/kv/v3/get?key=/x&tab_id={tab_id}"),
            api_client.put(f"/api/kv/v3/put?tab_id={tab_id}", {"key": "/x"}, format="json"),
        ]

    for foreign, missing in zip(attempts(theirs["id"]), attempts(unknown), strict=True):
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
    entries = audits("kv_tab_cross_user_attempt")
    assert len(entries) == 5
    assert {e.target for e in entries} == {theirs["id"]}
    assert all(not e.success and e.result == "forbidden" for e in entries)
    assert entries[0].username == "admin" and entries[0].params.startswith("route=/api/kv/tabs/")
    assert entries[3].params == "route=/api/kv/v3/get"
    assert [t["id"] for t in api_client.get("/api/kv/tabs").json()["tabs"]] == ["default"]
    assert Cluster.objects.get(pk=theirs["id"]).name == "bobs"
    assert not audits("put")


def test_delete_closes_the_tab(api_client, remote_url):
    tab = add_tab(api_client, remote_url)

    response = api_client.delete(f"/api/kv/tabs/{tab['id']}")

    assert response.status_code == 204
    assert not Cluster.objects.exclude(pk="default").exists()
    (entry,) = audits("kv_tab_delete")
    assert entry.target == tab["id"] and entry.success
    assert api_client.delete(f"/api/kv/tabs/{tab['id']}").status_code == 404


def _cached_gateway_endpoints() -> list[tuple[str, ...]]:
    from etcdgateway import _gateways

    return [config.endpoints for config in _gateways]


def test_a_closed_or_reconfigured_tab_leaves_no_cached_gateway(api_client, remote_url):
    tab = add_tab(api_client, remote_url)["id"]
    api_client.post(f"/api/kv/v3/connect?tab_id={tab}")
    assert (remote_url,) in _cached_gateway_endpoints()

    api_client.patch(f"/api/kv/tabs/{tab}", {"insecure_skip_verify": True}, format="json")
    assert (remote_url,) not in _cached_gateway_endpoints(), "the old configuration's gateway"
    api_client.post(f"/api/kv/v3/connect?tab_id={tab}")
    assert (remote_url,) in _cached_gateway_endpoints()

    assert api_client.delete(f"/api/kv/tabs/{tab}").status_code == 204
    assert (remote_url,) not in _cached_gateway_endpoints()


def test_reorder_stores_the_new_order(api_client, remote_url):
    first, second, third = (add_tab(api_client, remote_url, name=n)["id"] for n in "abc")

    response = api_client.put(
        "/api/kv/tabs/order", {"ids": ["default", third, first, second]}, format="json"
    )

    assert response.status_code == 200 and response.json() == {"ok": True}
    listed = api_client.get("/api/kv/tabs").json()["tabs"]
    assert [t["name"] for t in listed] == ["default", "c", "a", "b"]
    (entry,) = audits("kv_tab_reorder")
    assert entry.params == f"ids=default,{third},{first},{second}"


def test_reorder_refuses_bad_id_lists(api_client, bob_client, remote_url):
    first, second = (add_tab(api_client, remote_url)["id"] for _ in range(2))
    theirs = add_tab(bob_client, remote_url)["id"]

    def order(ids):
        response = api_client.put("/api/kv/tabs/order", {"ids": ids}, format="json")
        return response.status_code, response.json()["code"]

    assert order([first, "default", second]) == (400, "KV_TAB_DEFAULT_FIRST_REQUIRED")
    assert order(["default", first]) == (409, "KV_TAB_ORDER_MISMATCH")
    assert order(["default", first, first]) == (400, "KV_TAB_ORDER_DUPLICATE")
    assert order(["default", first, "default"]) == (400, "KV_TAB_ORDER_DUPLICATE")
    assert order(["default", first, str(uuid.uuid4())]) == (400, "KV_TAB_NOT_FOUND")
    assert not audits("kv_tab_cross_user_attempt")
    assert order(["default", first, theirs]) == (400, "KV_TAB_NOT_FOUND")
    (entry,) = audits("kv_tab_cross_user_attempt")
    assert entry.target == theirs and entry.params == "route=/api/kv/tabs/order"
    assert order([]) == (400, "BAD_REQUEST")
    assert not audits("kv_tab_reorder")
    assert list(
        Cluster.objects.filter(owner=api_client.user).values_list("sort_order", flat=True)
    ) == [1, 2]


def test_test_route_checks_the_stored_connection(api_client, remote_url):
    tab = add_tab(api_client, remote_url)

    assert api_client.post(f"/api/kv/tabs/{tab['id']}/test").json() == {"status": "ok"}
    Cluster.objects.filter(pk=tab["id"]).update(endpoints=[dead_url()])
    response = api_client.post(f"/api/kv/tabs/{tab['id']}/test", {}, format="json")

    assert response.status_code == 400
    assert response.json()["status"] == "unreachable" and response.json()["error"]


def test_v3_routes_on_a_tab_read_and_write_the_tabs_cluster_only(
    api_client, remote_url, kv_prefix, etcd
):
    tab = add_tab(api_client, remote_url)["id"]
    key = f"{kv_prefix}on-tab"

    put = api_client.put(f"/api/kv/v3/put?tab_id={tab}", {"key": key, "value": "v1"}, format="json")

    assert put.status_code == 200 and put.json()["node"]["value"] == "v1"
    assert remote_get(remote_url, key) == b"v1"
    assert etcd.get(key)[0] is None, "the default cluster is untouched"
    got = api_client.get(f"/api/kv/v3/get?key={key}&tab_id={tab}").json()["node"]
    assert got["value"] == "v1"
    assert api_client.get(f"/api/kv/v3/get?key={key}&tab_id=default").status_code == 404
    info = api_client.post(f"/api/kv/v3/connect?tab_id={tab}").json()
    assert info["name"] == "m1" and info["version"].startswith("3.")
    keys = api_client.get(f"/api/kv/v3/keys?tab_id={tab}")
    assert key.encode() in b"".join(keys.streaming_content)
    deleted = api_client.post(f"/api/kv/v3/delete?tab_id={tab}", {"key": key}, format="json")
    assert deleted.status_code == 200
    assert remote_get(remote_url, key) is None
    put_entry, delete_entry = audits("put")[-1], audits("delete")[-1]
    assert put_entry.target == f"[tab={tab}] {key}" and f'"tab_id": "{tab}"' in put_entry.params
    assert delete_entry.target == f"[tab={tab}] {key}"


def test_v2_routes_on_a_tab_use_the_tabs_cluster(api_client, remote_url, kv_prefix):
    tab = add_tab(api_client, remote_url)["id"]
    key = f"{kv_prefix}v2-on-tab"

    put = api_client.put(f"/api/kv/v2/put?tab_id={tab}", {"key": key, "value": "x"}, format="json")

    assert put.status_code == 200
    assert api_client.get(f"/api/kv/v2/get?key={key}&tab_id={tab}").json()["node"]["value"] == "x"
    assert api_client.get(f"/api/kv/v2/get?key={key}").status_code == 404
    assert api_client.post(f"/api/kv/v2/connect?tab_id={tab}").status_code == 200
    assert api_client.get(f"/api/kv/v2/separator?tab_id={tab}").json() == {"separator": "/"}
    response = api_client.post(f"/api/kv/v2/delete?tab_id={tab}", {"key": key}, format="json")
    assert response.status_code == 200
    assert audits("delete")[-1].target == f"[tab={tab}] {key}"


def test_kv_errors_on_a_dead_tab_mark_it_error_and_success_marks_it_ok(api_client, remote_url):
    tab = add_tab(api_client, remote_url)["id"]
    Cluster.objects.filter(pk=tab).update(endpoints=[dead_url()])

    response = api_client.get(f"/api/kv/v3/keys?tab_id={tab}")

    assert response.status_code == 503
    row = Cluster.objects.get(pk=tab)
    assert row.last_status == "error" and row.last_error.startswith("unreachable: ")
    Cluster.objects.filter(pk=tab).update(endpoints=[remote_url])
    assert api_client.get(f"/api/kv/v3/keys?tab_id={tab}").status_code == 200
    assert Cluster.objects.get(pk=tab).last_status == "ok"


# --- POST /api/kv/tabs/test: the add dialog's fields, before a tab exists -----------------------


def _test_fields(client, **body):
    return client.post("/api/kv/tabs/test", body, format="json")


def test_testing_fields_reaches_the_cluster_and_stores_nothing(api_client, remote_url):
    response = _test_fields(api_client, endpoint=remote_url + "/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "members": 1}
    assert not Cluster.objects.exclude(pk="default").exists()
    assert not AuditLog.objects.filter(operation__startswith="kv_tab_").exists()
    assert [t["id"] for t in api_client.get("/api/kv/tabs").json()["tabs"]] == ["default"]


def test_testing_fields_counts_every_member_of_the_cluster(api_client, etcd_cluster, settings):
    settings.ETCD_ENDPOINTS = [dead_url()]  # so the configured cluster is not "the default"

    response = _test_fields(api_client, endpoint=etcd_cluster.client_urls[0])

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "members": len(etcd_cluster.client_urls),
        "warning": "degraded_member_check",
    }


def test_testing_an_unreachable_endpoint_is_a_400_like_a_create(api_client):
    response = _test_fields(api_client, endpoint=dead_url())

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "unreachable" and body["code"] == "KV_TAB_UNREACHABLE"
    assert body["error"].startswith("connection test failed: ")
    assert not Cluster.objects.exclude(pk="default").exists() and not AuditLog.objects.exists()


def test_testing_wrong_or_missing_credentials_is_auth_failed_not_401(api_client, auth_cluster):
    url = auth_cluster.client_urls[0]

    missing = _test_fields(api_client, endpoint=url)
    wrong = _test_fields(api_client, endpoint=url, username="root", password="wrong-pw")
    right = _test_fields(api_client, endpoint=url, username="root", password="rootpw")

    for response in (missing, wrong):
        assert response.status_code == 400, "never 401: the dashboard session is fine"
        assert response.json()["status"] == "auth_failed"
        assert response.json()["code"] == "KV_TAB_AUTH_FAILED"
    assert "wrong-pw" not in wrong.content.decode()
    assert (right.status_code, right.json()) == (200, {"status": "ok", "members": 1})
    assert not Cluster.objects.exclude(pk="default").exists() and not AuditLog.objects.exists()


@pytest.mark.parametrize(
    "body, code",
    [
        ({"endpoint": "ftp://127.0.0.1:2379"}, "KV_TAB_INVALID_SCHEME"),
        ({"endpoint": "http://127.0.0.1:1,http://127.0.0.1:2"}, "KV_TAB_INVALID_SCHEME"),
        ({}, "BAD_REQUEST"),
        ({"endpoint": "  "}, "BAD_REQUEST"),
        ({"endpoint": "http://127.0.0.1:2379", "insecure_skip_verify": "yes"}, "BAD_REQUEST"),
        ({"endpoint": "http://127.0.0.1:2379", "password": "pw"}, "BAD_REQUEST"),
        ({"endpoint": "https://127.0.0.1:2379", "ca_cert": "not a pem"}, "BAD_REQUEST"),
    ],
)
def test_testing_bad_fields_is_refused_with_the_codes_of_a_create(api_client, body, code):
    response = _test_fields(api_client, **body)

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not AuditLog.objects.exists()


def test_testing_a_member_of_the_default_cluster_is_refused_like_a_create(api_client, etcd_cluster):
    response = _test_fields(api_client, endpoint=etcd_cluster.client_urls[1])

    assert response.status_code == 409
    assert response.json()["code"] == "KV_TAB_BELONGS_TO_DEFAULT"
    assert response.json()["matched_member_url"] == etcd_cluster.client_urls[1]


def test_testing_fields_ignores_the_tab_limit(api_client, remote_url):
    for _ in range(10):
        add_tab(api_client, remote_url)

    assert _test_fields(api_client, endpoint=remote_url).status_code == 200
    assert Cluster.objects.exclude(pk="default").count() == 10


def test_testing_fields_needs_a_session_and_is_never_taken_for_a_tab_id(client, db, api_client):
    anonymous = client.post(
        "/api/kv/tabs/test", {"endpoint": dead_url()}, content_type="application/json"
    )

    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "not authenticated"}
    assert api_client.patch("/api/kv/tabs/test", {}, format="json").status_code == 405
    assert api_client.delete("/api/kv/tabs/test").status_code == 405


def test_a_create_refused_for_its_credentials_or_ca_is_audited_as_failed(api_client, remote_url):
    no_user = api_client.post(
        "/api/kv/tabs", {"endpoint": remote_url, "password": "pw-1"}, format="json"
    )
    bad_ca = api_client.post(
        "/api/kv/tabs", {"endpoint": remote_url, "ca_cert": "not a PEM"}, format="json"
    )

    assert no_user.status_code == 400 and bad_ca.status_code == 400
    entries = audits("kv_tab_create")
    assert len(entries) == 2 and not any(entry.success for entry in entries)
    assert all(entry.result.startswith("bad_request") for entry in entries)
    assert "pw-1" not in " ".join(entry.params for entry in entries)
    assert not Cluster.objects.exclude(pk="default").exists()
