"""The change journal against real etcd (a private single-member cluster per test) and the real
database: order and values, deletes with the deleted value, exclusions, oversized values,
resume after the worker process is killed, and the gap marker after a compaction.

Tests run the worker in a thread or as the real `manage.py journal` process; both see the
committed rows (transactional tests), nothing is mocked.
"""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from etcdgateway import EtcdError, WatchEvent, cluster_gateway
from journal import services
from journal.models import JournalCursor, JournalEvent, JournalGap
from journal.selectors import journal_events, journal_gaps, journal_position, journal_stale
from journal.services import JournalPolicy
from journal.worker import ClusterJournal, current_revision
from tests.etcdctl import etcdctl

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
KEEP_ALL = JournalPolicy(max_value_bytes=65536, exclude_prefixes=())


@pytest.fixture
def cluster(etcd_cluster_factory):
    """A private cluster: the journal sees every change in it, and it may be compacted."""
    return etcd_cluster_factory(size=1)


def _wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _caught_up(revision: int, timeout: float = 20.0) -> None:
    def reached():
        cursor = journal_position(cluster_id="default")
        return cursor is not None and cursor.revision >= revision

    _wait_for(reached, timeout, f"the journal to reach revision {revision}")


def _started() -> int:
    """Wait until the worker has its cursor; the revision it starts after."""
    return _wait_for(lambda: journal_position(cluster_id="default"), what="the cursor").revision


@contextmanager
def worker_thread(policy: JournalPolicy = KEEP_ALL, **options):
    stop = threading.Event()
    worker = ClusterJournal(cluster_id="default", stop=stop, policy=policy, **options)
    # A daemon: should it ever fail to stop, the assertion below says so and the suite still ends.
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()


def _journal_process(cluster, tmp_path, name: str, *extra: str) -> subprocess.Popen:
    """The real `manage.py journal`, on the test database and the private cluster."""
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "ETCD_ENDPOINTS": ",".join(cluster.client_urls),
        "DATA_DIR": str(tmp_path / "data"),
        "JOURNAL_MAX_VALUE_BYTES": "65536",
        "JOURNAL_EXCLUDE_PREFIXES": "",
    }
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "journal", *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def _stored() -> list[tuple]:
    return [
        (e.revision, bytes(e.key), e.kind, None if e.value is None else bytes(e.value))
        for e in journal_events(cluster_id="default")
    ]


def test_a_first_start_begins_at_etcds_current_revision(cluster):
    gateway = cluster_gateway()
    gateway.put(b"/before", b"old", ttl=None)
    now = current_revision(gateway)

    with worker_thread():
        assert _started() == now
        revision = gateway.put(b"/after", b"new", ttl=None)
        _caught_up(revision)

    assert _stored() == [(revision, b"/after", "put", b"new")]


def test_events_are_stored_in_revision_order_with_values_hashes_and_leases(cluster):
    gateway = cluster_gateway()
    with worker_thread():
        _started()
        first = gateway.put(b"/app/a", b"1", ttl=None)
        gateway.put_all([(b"/app/b", b"2"), (b"/app/c", b"3")])  # one revision, two keys
        txn = current_revision(gateway)
        leased = gateway.put(b"/app/a", b"\xff\x00binary", ttl=600)
        _caught_up(leased)

    assert _stored() == [
        (first, b"/app/a", "put", b"1"),
        (txn, b"/app/b", "put", b"2"),
        (txn, b"/app/c", "put", b"3"),
        (leased, b"/app/a", "put", b"\xff\x00binary"),
    ]
    binary = JournalEvent.objects.get(revision=leased)
    assert binary.value_size == 8
    assert bytes(binary.value_sha256) == hashlib.sha256(b"\xff\x00binary").digest()
    assert binary.lease == gateway.get(b"/app/a").lease != 0
    assert JournalEvent.objects.get(revision=first).lease == 0


def test_a_delete_stores_the_value_it_deleted(cluster):
    gateway = cluster_gateway()
    with worker_thread():
        _started()
        gateway.put(b"/cfg/x", b"keep me", ttl=None)
        gateway.put(b"/cfg/y", b"me too", ttl=None)
        gateway.delete(b"/cfg", prefix=b"/cfg/")  # one revision deleting both
        deleted_at = current_revision(gateway)
        _caught_up(deleted_at)

    deletes = list(JournalEvent.objects.filter(kind="delete").order_by("key"))
    assert [(d.revision, bytes(d.key)) for d in deletes] == [
        (deleted_at, b"/cfg/x"),
        (deleted_at, b"/cfg/y"),
    ]
    x = deletes[0]
    assert bytes(x.prev_value) == b"keep me" and x.prev_value_size == 7
    assert bytes(x.prev_value_sha256) == hashlib.sha256(b"keep me").digest()
    assert x.value is None and x.value_size == 0


def test_excluded_prefixes_are_not_stored_but_the_cursor_passes_them(cluster):
    gateway = cluster_gateway()
    policy = JournalPolicy(
        max_value_bytes=65536, exclude_prefixes=(b"/registry/events/", b"/noise")
    )
    with worker_thread(policy):
        _started()
        kept = gateway.put(b"/registry/pods/p1", b"pod", ttl=None)
        gateway.put(b"/registry/events/e1", b"event", ttl=None)
        gateway.put(b"/noise-1", b"x", ttl=None)
        last = gateway.put(b"/registry/eventsX", b"not under the prefix", ttl=None)
        gateway.put(b"/registry/events/e2", b"event", ttl=None)
        excluded_last = current_revision(gateway)
        _caught_up(excluded_last)

    assert [(r, k) for r, k, _, _ in _stored()] == [
        (kept, b"/registry/pods/p1"),
        (last, b"/registry/eventsX"),
    ]
    assert journal_position(cluster_id="default").revision == excluded_last


def test_the_exclude_setting_is_comma_separated(tmp_path):
    probe = (
        "import django; django.setup(); from journal.services import JournalPolicy; "
        "print(JournalPolicy.from_settings())"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "etcdmonitor_site.settings",
        "DATA_DIR": str(tmp_path),
        "JOURNAL_EXCLUDE_PREFIXES": "/registry/events/,/scratch/",
        "JOURNAL_MAX_VALUE_BYTES": "10",
    }

    shown = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout

    expected = JournalPolicy(
        max_value_bytes=10, exclude_prefixes=(b"/registry/events/", b"/scratch/")
    )
    assert shown.strip() == repr(expected)


def test_values_over_the_limit_are_kept_as_size_and_hash(cluster):
    gateway = cluster_gateway()
    at_limit, over = os.urandom(1024), os.urandom(1025)
    with worker_thread(JournalPolicy(max_value_bytes=1024, exclude_prefixes=())):
        _started()
        small = gateway.put(b"/v/at-limit", at_limit, ttl=None)
        big = gateway.put(b"/v/over", over, ttl=None)
        gateway.delete(b"/v/over")
        deleted = current_revision(gateway)
        _caught_up(deleted)

    kept = JournalEvent.objects.get(revision=small)
    assert bytes(kept.value) == at_limit and kept.value_size == 1024
    dropped = JournalEvent.objects.get(revision=big)
    assert dropped.value is None and dropped.value_size == 1025
    assert bytes(dropped.value_sha256) == hashlib.sha256(over).digest()
    gone = JournalEvent.objects.get(revision=deleted)
    assert gone.prev_value is None and gone.prev_value_size == 1025
    assert bytes(gone.prev_value_sha256) == hashlib.sha256(over).digest()


def test_the_journal_resumes_after_its_process_is_killed_without_loss_or_duplicates(
    cluster, tmp_path
):
    gateway = cluster_gateway()
    first = _journal_process(cluster, tmp_path, "journal-1")
    try:
        start = _started()
        written: list[int] = []
        stop_writing = threading.Event()

        def writer():
            n = 0
            while not stop_writing.is_set() or n < 400:
                written.append(gateway.put(f"/load/k{n % 50}".encode(), b"v%d" % n, ttl=None))
                n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        _wait_for(lambda: JournalEvent.objects.count() > 100, what="some events stored")
        first.send_signal(signal.SIGKILL)  # mid-stream, mid-batch: no chance to clean up
        first.wait(timeout=10)
        stored_at_kill = JournalEvent.objects.count()
        time.sleep(0.5)  # etcd moves on while no journal runs
        second = _journal_process(cluster, tmp_path, "journal-2")
        try:
            stop_writing.set()
            thread.join(timeout=60)
            _caught_up(written[-1], timeout=60)
        finally:
            second.terminate()
            assert second.wait(timeout=15) == 0  # SIGTERM is a clean stop
    finally:
        if first.poll() is None:
            first.kill()

    revisions = list(JournalEvent.objects.order_by("revision").values_list("revision", flat=True))
    assert stored_at_kill < len(revisions)  # the second process stored the rest
    assert revisions == sorted(set(written)) == list(range(start + 1, written[-1] + 1))
    assert not JournalGap.objects.exists()


def test_a_compaction_while_the_worker_was_stopped_is_a_gap_marker_then_a_resync(cluster):
    gateway = cluster_gateway()
    with worker_thread():
        _started()
        seen = gateway.put(b"/c/k", b"seen", ttl=None)
        _caught_up(seen)
    missed_from = gateway.put(b"/c/k", b"missed-1", ttl=None)
    gateway.put(b"/c/other", b"missed-2", ttl=None)
    compacted_at = gateway.put(b"/c/k", b"kept by etcd", ttl=None)
    gateway.compact(compacted_at, physical=True)  # revisions below compacted_at are gone

    with worker_thread():
        after = gateway.put(b"/c/k", b"after restart", ttl=None)
        _caught_up(after)

    gaps = [gap.to_pair() for gap in journal_gaps(cluster_id="default")]
    assert gaps == [[missed_from, compacted_at - 1]]
    # etcd still replays the compaction revision itself: the resync starts there.
    assert _stored() == [
        (seen, b"/c/k", "put", b"seen"),
        (compacted_at, b"/c/k", "put", b"kept by etcd"),
        (after, b"/c/k", "put", b"after restart"),
    ]


def test_events_the_cursor_covers_are_never_stored_twice(cluster):
    gateway = cluster_gateway()
    with worker_thread():
        _started()
        revision = gateway.put(b"/twice", b"v", ttl=None)
        _caught_up(revision)
    replay = [WatchEvent("put", b"/twice", revision, b"v", 0, None)]  # as a reconnect resends

    stored = services.journal_events_store(
        cluster_id="default", events=replay, etcd_revision=revision, policy=KEEP_ALL
    )

    assert stored == 0 and JournalEvent.objects.filter(revision=revision).count() == 1


def test_purge_keeps_only_the_retention_window(settings):
    settings.JOURNAL_RETENTION_DAYS = 30
    now = timezone.now()
    for days, revision in ((31, 1), (29, 2)):
        JournalEvent.objects.create(
            cluster_id="default",
            revision=revision,
            key=b"/k",
            kind="put",
            value=b"v",
            value_size=1,
            value_sha256=hashlib.sha256(b"v").digest(),
            observed_at=now - timedelta(days=days),
        )
    JournalGap.objects.create(
        cluster_id="default", from_revision=5, to_revision=9, detected_at=now - timedelta(days=40)
    )

    assert services.journal_purge(now=now) == 2

    assert list(JournalEvent.objects.values_list("revision", flat=True)) == [2]
    assert not JournalGap.objects.exists()


def test_the_health_check_fails_until_the_journal_follows(cluster):
    with pytest.raises(CommandError, match="not following: default"):
        call_command("journal", "--health", "60")
    with worker_thread():
        _started()
        call_command("journal", "--health", "60")
    JournalCursor.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    with pytest.raises(CommandError):
        call_command("journal", "--health", "60")


def test_an_idle_journal_keeps_noting_that_it_follows(cluster):
    """Nothing changes in etcd: the progress replies alone keep the cursor fresh, so the health
    check passes."""
    with worker_thread(progress_after=0.5):
        _started()
        JournalCursor.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
        _wait_for(
            lambda: not journal_stale(cluster_ids=["default"], max_age=timedelta(seconds=60)),
            what="a progress note",
        )


def test_a_hung_member_under_the_watch_is_left_for_another_without_loss(etcd_cluster_factory):
    cluster = etcd_cluster_factory(size=3)
    with worker_thread(progress_after=1.0) as worker:
        _started()
        before = cluster_gateway().put(b"/hang/k", b"before", ttl=None)
        _caught_up(before)
        hung = next(m for m in cluster.members if m.client_url == worker.endpoint)
        cluster.pause_member(hung)  # keeps its sockets open, never answers: a silent stream
        try:
            other = next(m for m in cluster.members if m is not hung)
            writer = cluster_gateway().client_for(other.client_url)
            # If the hung member led, the others elect a new leader first.
            last = _wait_for(
                lambda: _put_or_none(writer, b"/hang/k", b"during"), what="a put elsewhere"
            )
            _caught_up(last, timeout=30)
            assert worker.endpoint != hung.client_url
        finally:
            cluster.resume_member(hung)

    # Every revision in between (a put refused during the election may still have applied).
    assert [r for r, *_ in _stored()] == list(range(before, last + 1))


def _put_or_none(client, key: bytes, value: bytes) -> int | None:
    try:
        return client.put(key, value, ttl=None)
    except EtcdError:
        return None


def test_a_cluster_switched_to_monitored_is_journaled_under_its_own_id(
    etcd_cluster_factory, tmp_path
):
    """The process follows the cluster records: a record monitored after it started gets a
    worker, and its changes are stored under the record's id, apart from the default's."""
    from clusters.models import Cluster

    default = etcd_cluster_factory(size=1)
    other = etcd_cluster_factory(size=1, point_settings=False)
    now = timezone.now()
    record = Cluster.objects.create(
        id="other-cluster",
        name="other",
        endpoints=other.client_urls,
        monitored=False,
        created_at=now,
        updated_at=now,
    )
    process = _journal_process(default, tmp_path, "journal-records", "--rescan", "0.5")
    try:
        _started()
        record.monitored = True
        record.save(update_fields=["monitored"])
        _wait_for(
            lambda: journal_position(cluster_id=record.id), what="a cursor for the new cluster"
        )
        etcdctl(other.client_urls[0], "put", "/only/in/other", "v1")
        _wait_for(
            lambda: JournalEvent.objects.filter(cluster_id=record.id, key=b"/only/in/other"),
            what="the other cluster's put journaled",
        )
        assert not JournalEvent.objects.filter(cluster_id="default", key=b"/only/in/other")
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_the_process_needs_no_thread_per_followed_cluster(etcd_cluster_factory, tmp_path):
    """Every cluster is a coroutine on the process's one loop: following six clusters takes no
    more threads than following one (the sync watch took three per cluster, each waking up
    several times a second while etcd was quiet)."""
    from clusters.models import Cluster

    default = etcd_cluster_factory(size=1)
    others = [etcd_cluster_factory(size=1, point_settings=False) for _ in range(5)]
    now = timezone.now()
    records = [
        Cluster.objects.create(
            id=f"thread-test-{i}",
            name=f"thread test {i}",
            endpoints=cluster.client_urls,
            monitored=False,
            created_at=now,
            updated_at=now,
        )
        for i, cluster in enumerate(others)
    ]
    process = _journal_process(default, tmp_path, "journal-threads", "--rescan", "0.5")
    try:
        _started()
        time.sleep(1)  # gRPC starts its own threads with the first channel
        with_one = _threads(process.pid)
        Cluster.objects.filter(pk__in=[r.id for r in records]).update(monitored=True)
        for record in records:
            _wait_for(lambda r=record: journal_position(cluster_id=r.id), what=f"{record.id}")
        time.sleep(1)
        with_six = _threads(process.pid)
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0

    assert with_six - with_one < len(others), (with_one, with_six)
