"""Redis and PostgreSQL failures against real processes.

Both use PRIVATE servers on free ports (the shared ones other suites use are never stopped):
Redis behind a real web + Celery worker + beat deployment, PostgreSQL behind `runmonitor`.
"""

import time

import pytest

from tests.system.conftest import (
    COLLECTOR_INTERVAL,
    collected_since,
    sample_counts,
    wait_until,
)

pytestmark = pytest.mark.system

TWO_INTERVALS = 2 * COLLECTOR_INTERVAL + 4
# After Redis returns, the worker and beat first have to notice and reconnect (kombu's retry
# backoff), so this bound is wider than two intervals; the measured time is printed.
BROKER_RECONNECT = 60


def _stored_data_is_served(http) -> None:
    members = http.get("/api/members")
    assert members.status_code == 200 and len(members.json()["members"]) == 3
    assert http.get("/api/status").status_code == 200
    ranged = http.get("/api/range", params={"metrics": "collector_up", "range": "10m"})
    assert ranged.status_code == 200, ranged.text
    assert ranged.json()["metrics"]["collector_up"], "stored points are served"


def test_web_serves_stored_data_without_redis_and_collection_resumes(
    etcd_cluster_factory, monitor, own_database, private_redis
):
    cluster = etcd_cluster_factory(point_settings=False)
    server = monitor(cluster.endpoints, database_url=own_database(), broker_url=private_redis.url)
    http = server.client(server.login())
    started = int(time.time())
    wait_until(lambda: collected_since(http, started), timeout=60, what="a Celery collection")
    mark = int(time.time())
    wait_until(lambda: collected_since(http, mark), timeout=TWO_INTERVALS + 1, what="2nd cycle")
    assert http.get("/healthz").json()["broker"] is True
    before = sample_counts(http)

    private_redis.stop()
    stopped_at = int(time.time())

    wait_until(lambda: http.get("/healthz").json()["broker"] is False, timeout=5, what="broker")
    time.sleep(2 * COLLECTOR_INTERVAL)
    _stored_data_is_served(http)
    assert all(sample_counts(http)[m] >= n for m, n in before.items()), "nothing is lost"
    assert server.alive() == {"web": True, "worker": True, "beat": True}

    private_redis.start()  # same port
    back_at = time.monotonic()
    wait_until(
        lambda: (
            collected_since(http, stopped_at + 2 * COLLECTOR_INTERVAL)
            and http.get("/healthz").json()["broker"]
        ),
        timeout=BROKER_RECONNECT,
        what="collection after Redis returned",
    )
    print(f"\ncollection resumed {time.monotonic() - back_at:.1f}s after Redis returned")
    assert collected_since(http, stopped_at)
    assert all(sample_counts(http)[m] > n for m, n in before.items())
    assert server.alive() == {"web": True, "worker": True, "beat": True}


def test_a_postgres_restart_fails_requests_cleanly_then_serves_again(
    etcd_cluster_factory, monitor, private_postgres
):
    cluster = etcd_cluster_factory(point_settings=False)
    server = monitor(cluster.endpoints, database_url=private_postgres.url)
    token = server.login()
    http = server.client(token, timeout=15)
    mark = int(time.time())
    wait_until(lambda: collected_since(http, mark), timeout=30, what="a collection")
    before = sample_counts(http)

    private_postgres.stop()

    # /healthz may answer from its 1 s cache (HEALTH_CACHE_SECONDS) for a moment.
    wait_until(
        lambda: (
            http.get("/healthz").json()
            == {"status": "ok", "database": False, "etcd": True, "broker": None}
        ),
        timeout=5,
        what="healthz database false",
    )
    for method, path in [
        ("GET", "/api/status"),
        ("GET", "/api/members"),
        ("GET", "/api/auth/status"),
        ("POST", "/api/auth/login"),
        ("GET", "/api/kv/v3/keys"),
    ]:
        response = http.request(method, path, json={"username": "admin", "password": "x"})
        assert response.status_code == 503, (path, response.status_code, response.text)
        assert response.json() == {"error": "database unavailable", "code": "database_unavailable"}
        assert "Traceback" not in response.text
    assert server.alive() == {"web": True}

    private_postgres.start()
    restarted_at = int(time.time())

    # Persistent connections died with the server: the very first requests must not see them.
    statuses = [http.get("/api/status").status_code for _ in range(20)]
    assert statuses == [200] * 20
    wait_until(lambda: http.get("/healthz").json()["database"] is True, timeout=5, what="db")
    wait_until(lambda: collected_since(http, restarted_at), timeout=TWO_INTERVALS, what="cycle")
    assert all(sample_counts(http)[m] >= n for m, n in before.items())
    _stored_data_is_served(http)
    assert server.alive() == {"web": True}
