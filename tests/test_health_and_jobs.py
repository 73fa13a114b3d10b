"""/healthz, the Celery round trip through Redis, and the in-process scheduler."""

import os
import subprocess
import sys
import time

import pytest
from django.db import connection
from django.test import Client

from etcdgateway import EtcdUnavailable, cluster_gateway
from etcdmonitor_site import celery_app
from etcdmonitor_site.exceptions import api_exception_handler
from etcdmonitor_site.scheduler import InProcessScheduler, celery_task


@pytest.mark.django_db
def test_tests_run_on_postgresql():
    assert connection.vendor == "postgresql", "make test runs the suite against PostgreSQL"


@pytest.fixture(autouse=True)
def _no_health_cache(settings):
    settings.HEALTH_CACHE_SECONDS = 0


@pytest.mark.django_db
def test_healthz_reuses_its_result_for_the_cache_period(
    settings, etcd_cluster, django_assert_num_queries
):
    settings.EMBEDDED_MODE = True
    with django_assert_num_queries(1):
        first = Client().get("/healthz").content
    settings.HEALTH_CACHE_SECONDS = 60
    with django_assert_num_queries(0):
        assert Client().get("/healthz").content == first
    settings.HEALTH_CACHE_SECONDS = 0
    with django_assert_num_queries(1):
        Client().get("/healthz")


@pytest.mark.django_db
def test_healthz_reports_database_etcd_and_broker(settings, redis_url, etcd_cluster):
    settings.EMBEDDED_MODE = False
    settings.CELERY_BROKER_URL = redis_url

    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "etcd": True, "broker": True}


@pytest.mark.django_db
def test_healthz_in_embedded_mode_has_no_broker(settings):
    settings.EMBEDDED_MODE = True

    assert Client().get("/healthz").json()["broker"] is None


@pytest.mark.django_db
def test_healthz_says_etcd_false_when_every_member_is_down(settings, etcd_cluster_factory):
    cluster = etcd_cluster_factory()
    cluster.stop()
    settings.EMBEDDED_MODE = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "etcd": False, "broker": False}


def test_etcd_errors_become_json_with_their_status():
    response = api_exception_handler(EtcdUnavailable("all endpoints down"), {})

    assert response.status_code == 503
    assert response.data == {
        "error": "etcd unavailable: all endpoints down",
        "code": "etcd_unavailable",
    }


def test_unexpected_errors_become_a_bare_500_body():
    response = api_exception_handler(RuntimeError("secret detail"), {})

    assert response.status_code == 500
    assert response.data == {"error": "internal server error"}


def test_celery_task_round_trips_through_redis(redis_url, etcd_cluster):
    from celery.contrib.testing.worker import start_worker

    from monitoring.tasks import probe_etcd_endpoints

    celery_app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            result = probe_etcd_endpoints.delay().get(timeout=90)
    finally:
        celery_app.conf.update(task_always_eager=True)

    assert result == {url: True for url in etcd_cluster.client_urls}


@pytest.mark.django_db(transaction=True)
def test_a_job_beat_sends_stores_no_result_where_a_call_asking_for_one_does(redis_url, settings):
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    entry = settings.CELERY_BEAT_SCHEDULE["purge-alerts"]
    ran = set()

    def note(task_id, **_kwargs):
        ran.add(task_id)

    celery_app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    task_postrun.connect(note, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=60):
            periodic = celery_app.send_task(entry["task"], **entry["options"])  # as beat does
            asked = celery_app.send_task(entry["task"])
            assert asked.get(timeout=60) == 0
            deadline = time.monotonic() + 60
            while periodic.id not in ran and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        task_postrun.disconnect(note)
        celery_app.conf.update(task_always_eager=True)

    backend = celery_app.backend
    assert periodic.id in ran, "the periodic run ran"
    assert backend.get(backend.get_key_for_task(periodic.id)) is None
    assert backend.get(backend.get_key_for_task(asked.id)) is not None


def test_in_process_scheduler_runs_the_same_task_without_a_broker(etcd_cluster):
    health = cluster_gateway()._health
    seen = set()
    scheduler = InProcessScheduler(
        {"probe": {"task": "monitoring.tasks.probe_etcd_endpoints", "interval": 0.05}}
    )

    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            seen.add(health[etcd_cluster.client_urls[0]].checked_at)
            time.sleep(0.02)
    finally:
        scheduler.stop()

    assert len(seen) >= 3, "the probe job ran repeatedly, each run refreshing endpoint health"


def test_a_failing_job_does_not_stop_the_scheduler():
    scheduler = InProcessScheduler({"bad": {"task": "no.such.task", "interval": 1}})

    scheduler.run_once("bad")  # logged, not raised


def test_every_periodic_job_is_a_registered_celery_task_with_an_expiry(settings):
    for name, job in settings.PERIODIC_JOBS.items():
        task = celery_task(job["task"])
        assert task.name == job["task"], f"{name}: beat sends the name the worker knows"
        assert task.name in celery_app.tasks
        entry = settings.CELERY_BEAT_SCHEDULE[name]
        assert entry["options"]["expires"] < entry["schedule"]


def test_a_worker_process_freezes_what_exists_at_start_and_collects_young_objects_less_often():
    # In a child process, as a prefork worker child: the hook changes process-wide state.
    script = (
        "import gc, django; django.setup()\n"
        "from celery.signals import worker_process_init\n"
        "from etcdmonitor_site.celery import WORKER_GC_THRESHOLD\n"
        "before = gc.get_freeze_count()\n"
        "worker_process_init.send(sender=None)\n"
        "print(before, gc.get_freeze_count(), gc.get_threshold()[0], WORKER_GC_THRESHOLD)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "etcdmonitor_site.settings"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    before, frozen, threshold, wanted = map(int, out)
    assert before == 0
    assert frozen > 10_000  # Django and the apps, out of every later collection
    assert threshold == wanted > 700


def test_beat_sleeps_until_each_job_is_due_instead_of_spinning(redis_url, tmp_path):
    """The configured beat scheduler, in a real beat service against Redis: a job every second
    is sent about each second, never early, with a few ticks per send (Celery's own scheduler ticks
    ~150 times in the last 10 ms before each due time, docs/PERFORMANCE.md)."""
    script = (
        "import sys, threading, time, django; django.setup()\n"
        "from celery.beat import Service\n"
        "from celery.utils.imports import symbol_by_name\n"
        "from etcdmonitor_site.celery import app\n"
        "app.conf.beat_schedule = {'every-second': {\n"
        "    'task': 'monitoring.tasks.probe_etcd_endpoints', 'schedule': 1.0,\n"
        "    'options': {'expires': 0.9}}}\n"
        "configured = symbol_by_name(app.conf.beat_scheduler)\n"
        "ticks, sent = [], []\n"
        "class Counting(configured):\n"
        "    def tick(self, *args, **kwargs):\n"
        "        ticks.append(time.monotonic())\n"
        "        return super().tick(*args, **kwargs)\n"
        "    def apply_entry(self, entry, producer=None):\n"
        "        sent.append(time.monotonic())\n"
        "        return super().apply_entry(entry, producer=producer)\n"
        "service = Service(app=app, scheduler_cls=Counting, schedule_filename=sys.argv[1])\n"
        "threading.Timer(8.5, service.stop).start()\n"
        "service.start()\n"
        "gaps = [b - a for a, b in zip(sent, sent[1:])]\n"
        "print(configured.__name__, len(ticks), len(sent), min(gaps))\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "etcdmonitor_site.settings",
        "CELERY_BROKER_URL": redis_url,
        "DJANGO_SECRET_KEY": "beat-test-" + "x" * 40,
    }
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "beat-schedule")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    scheduler, ticks, sent, shortest_gap = out.stdout.split()
    assert scheduler == "SteadyScheduler"
    assert int(sent) >= 4  # of 8 due times: a stalled machine (CI's, once for ~4 s) may lose some
    assert int(ticks) <= 3 * int(sent) + 5, (ticks, sent)
    assert float(shortest_gap) >= 0.95  # never sent before it is due


def _worker_backends(besides: frozenset[int] = frozenset()) -> list[tuple[int, object]]:
    """(pid, backend_start) of the other sessions on the test database, but `besides`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid"
        )
        return [row for row in cursor.fetchall() if row[0] not in besides]


@pytest.mark.django_db(transaction=True)
def test_a_worker_keeps_its_database_session_between_tasks_and_replaces_a_broken_one(
    redis_url, tmp_path
):
    """A real prefork worker: one PostgreSQL session serves task after task (Celery's Django
    fix-up would close it around each one), and a session the server ended is replaced before
    the next task's first query, which succeeds."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "etcdmonitor_site.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": redis_url,
        "DJANGO_SECRET_KEY": "worker-test-" + "x" * 40,
        "DATA_DIR": str(tmp_path),
    }
    # Sessions this test process holds already (another test's threads) are not the worker's.
    before = frozenset(pid for pid, _ in _worker_backends())
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "etcdmonitor_site", "worker", "-P", "prefork",
         "-c", "1", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"dbreuse-{os.getpid()}@%h"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    celery_app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    try:

        def purge() -> int:
            return celery_app.send_task("alerts.tasks.purge_alerts").get(timeout=60)

        assert purge() == 0
        first = _worker_backends(before)
        for _ in range(4):
            assert purge() == 0
        assert len(first) == 1, "the worker's session stays open between tasks"
        assert _worker_backends(before) == first, "and the same session served every task"

        time.sleep(1.5)  # past pgbackend's grace: the next task checks its session first
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first[0][0]])
        assert purge() == 0, "the task after the server ended the session still succeeds"
        replaced = _worker_backends(before)
        assert len(replaced) == 1 and replaced[0][0] != first[0][0]
    finally:
        celery_app.conf.update(task_always_eager=True)
        worker.terminate()
        worker.wait(timeout=30)
        log.close()


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_the_server_ended_while_idle_is_replaced_at_the_next_request():
    """What Django does around each request (close_old_connections before and after), with
    the server ending the idle session in between: the next request's first query checks the
    connection (it idled past the grace), finds it dead and connects again."""
    import psycopg
    from django.db import close_old_connections

    from etcdmonitor_site.pgbackend.base import HEALTH_CHECK_GRACE

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    close_old_connections()  # a request starts
    first = backend_pid()
    close_old_connections()  # and ends: the connection is kept
    time.sleep(HEALTH_CHECK_GRACE + 0.5)
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [first])

    close_old_connections()  # the next request starts
    assert backend_pid() != first
