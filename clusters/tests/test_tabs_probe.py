"""The KV tab liveness probe: two strikes before `error`, classified, one query to load."""

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters import services
from clusters.crypto import password_encrypt
from clusters.models import Cluster
from clusters.tests.conftest import add_tab, dead_url
from etcdmonitor_site.scheduler import celery_task


def state(tab_id: str) -> tuple[str, int, str]:
    row = Cluster.objects.get(pk=tab_id)
    return row.last_status, row.failure_count, row.last_error


def test_a_stopped_member_turns_error_on_the_second_failure_and_recovers(
    api_client, etcd_cluster_factory
):
    cluster = etcd_cluster_factory(size=1, point_settings=False)
    member = cluster.members[0]
    tab = add_tab(api_client, member.client_url)["id"]
    assert services.tabs_probe()["ok"] == 1
    cluster.kill_member(member)

    first = services.tabs_probe()
    after_first = state(tab)
    second = services.tabs_probe()
    after_second = state(tab)

    assert first == {"probed": 1, "ok": 0, "failing": 1, "error": 0}
    assert after_first == ("ok", 1, "")
    assert second["error"] == 1
    assert after_second[:2] == ("error", 2)
    assert after_second[2].startswith("unreachable: ")
    listed = api_client.get("/api/kv/tabs").json()["tabs"][1]
    assert listed["last_status"] == "error" and listed["last_error"] == after_second[2]

    cluster.start_member(member)
    cluster.wait_healthy([member])
    assert services.tabs_probe()["ok"] == 1
    assert state(tab) == ("ok", 0, "")


def test_one_success_between_failures_resets_the_count(api_client, remote_url):
    tab = add_tab(api_client, remote_url)["id"]
    Cluster.objects.filter(pk=tab).update(endpoints=[dead_url()])
    services.tabs_probe()
    Cluster.objects.filter(pk=tab).update(endpoints=[remote_url])
    services.tabs_probe()
    Cluster.objects.filter(pk=tab).update(endpoints=[dead_url()])

    services.tabs_probe()

    assert state(tab)[:2] == ("ok", 1)


def test_wrong_credentials_are_classified_auth_failed(api_client, auth_cluster):
    tab = add_tab(api_client, auth_cluster.client_urls[0], username="root", password="rootpw")
    wrong = password_encrypt("not-rootpw", tab_id=tab["id"])
    Cluster.objects.filter(pk=tab["id"]).update(password_cipher=wrong)

    services.tabs_probe()
    services.tabs_probe()

    status, failures, error = state(tab["id"])
    assert (status, failures) == ("error", 2)
    assert error.startswith("auth_failed: ") and "not-rootpw" not in error


def test_undecryptable_credentials_count_as_auth_failed(api_client, remote_url):
    tab = add_tab(api_client, remote_url)["id"]
    Cluster.objects.filter(pk=tab).update(username="u", password_cipher=b"x" * 40)

    services.tabs_probe()
    services.tabs_probe()

    assert state(tab)[0] == "error" and state(tab)[2].startswith("auth_failed: ")


def test_a_round_costs_the_same_queries_for_any_number_of_tabs(api_client, bob_client, remote_url):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            result = services.tabs_probe()
        assert result["ok"] == result["probed"]
        return len(captured)

    add_tab(api_client, remote_url)
    few = queries()
    for client in (api_client, bob_client, bob_client, bob_client):
        add_tab(client, remote_url)

    assert queries() == few == 2  # one SELECT of every tab, one bulk UPDATE


def test_the_probe_is_a_periodic_celery_task_every_30_seconds(api_client, remote_url):
    tab = add_tab(api_client, remote_url)["id"]
    Cluster.objects.filter(pk=tab).update(last_status="unknown")
    job = settings.PERIODIC_JOBS["probe-kv-tabs"]

    # Looked up by name, as beat and the embedded scheduler do. Called directly: .apply() would
    # cache Celery's disabled result backend for this thread, which breaks the later tests that
    # run a real worker against Redis.
    result = celery_task(job["task"])()

    assert job["interval"] == 30
    assert result == {"probed": 1, "ok": 1, "failing": 0, "error": 0}
    assert state(tab)[0] == "ok"
