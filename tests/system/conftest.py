"""Real processes for the system tests: `manage.py runmonitor`, Celery worker and beat, and private
Redis / PostgreSQL servers on free ports (the shared ones other suites use are never touched).

Everything started here is stopped by PID when the test ends.
"""

import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.localcluster import free_port
from tests.test_project import ROOT, clean_env

SHARED_POSTGRES = "postgres://postgres@127.0.0.1:5432"
COLLECTOR_INTERVAL = 2
ADMIN_PASSWORD = "system-test-admin-pw"


def wait_until(predicate, *, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} ({last_error})"
            )
        time.sleep(interval)


def stop_process(process: subprocess.Popen, *, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- private Redis ------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        wait_until(client.ping, timeout=10, what="private redis")
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


# --- private PostgreSQL -------------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """initdb as the `postgres` user into a directory it owns; pg_ctl start/stop/restart."""

    base: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/etcdmonitor"

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip

    def init(self) -> "PrivatePostgres":
        (self.base / "sock").mkdir(parents=True)
        shutil.chown(self.base, "postgres", "postgres")
        shutil.chown(self.base / "sock", "postgres", "postgres")
        self._as_postgres(
            "initdb", "-D", str(self.base / "data"), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.start()
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q", "-c",
             "create database etcdmonitor"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base / 'sock'} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._as_postgres(
            "pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "server.log"), "-w",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.base / "data" / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def private_postgres():
    # pytest's tmp_path is root-only (0700): the postgres user needs a directory of its own.
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="reliab-pg-", dir="/tmp"))).init()
    yield server
    server.remove()


@pytest.fixture
def own_database():
    """`own_database()` → the URL of a fresh database on the shared PostgreSQL, dropped after."""
    names = []

    def make() -> str:
        name = f"etcdmonitor_sys_{uuid.uuid4().hex[:10]}"
        names.append(name)
        _psql_shared(f"create database {name}")
        return f"{SHARED_POSTGRES}/{name}"

    yield make
    for name in names:
        _psql_shared(f"drop database if exists {name} with (force)")


def _psql_shared(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-q", "-c", sql],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


# --- etcdmonitor processes ----------------------------------------------------------------------


@dataclass
class Monitor:
    """A running deployment: the web server (and Celery processes) with one environment."""

    base_url: str
    env: dict
    data_dir: Path
    processes: dict[str, subprocess.Popen]
    log_dir: Path

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def alive(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def login(self) -> str:
        """Finish the first-run setup through the API (initial password → ours) and log in."""
        with self.client() as http:
            initial = self.data_dir / "initial-admin-password"
            if initial.exists():
                changed = http.post(
                    "/api/auth/change-password",
                    json={
                        "username": "admin",
                        "old_password": initial.read_text().strip(),
                        "new_password": ADMIN_PASSWORD,
                    },
                )
                assert changed.status_code == 200, changed.text
            login = http.post(
                "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            assert login.status_code == 200, login.text
            return login.json()["session_token"]


def _spawn(name: str, argv: list[str], env: dict, log_dir: Path) -> subprocess.Popen:
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    log.close()
    return process


@pytest.fixture
def monitor(tmp_path):
    """`monitor(endpoints, database_url=None, broker_url="", **env)` → a started Monitor.

    With a broker it also starts a Celery worker and beat; without one, runmonitor runs the
    jobs in-process (embedded mode). The database is SQLite under DATA_DIR unless given.
    """
    started: list[Monitor] = []

    def start(
        endpoints: str, *, database_url: str = "", broker_url: str = "", **extra_env
    ) -> Monitor:
        index = len(started)
        data_dir = tmp_path / f"monitor-{index}"
        log_dir = tmp_path / f"monitor-{index}-logs"
        log_dir.mkdir(parents=True)
        env = clean_env(
            DATA_DIR=str(data_dir),
            ETCD_ENDPOINTS=endpoints,
            COLLECTOR_INTERVAL=str(COLLECTOR_INTERVAL),
            DJANGO_SECRET_KEY="system-test-" + uuid.uuid4().hex * 2,
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            **extra_env,
        )
        if database_url:
            env["DATABASE_URL"] = database_url
        if broker_url:
            env["CELERY_BROKER_URL"] = broker_url
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT, env=env, check=True, timeout=180,
        )  # fmt: skip
        port = free_port()
        processes = {
            "web": _spawn(
                "web",
                [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
                env,
                log_dir,
            )
        }
        if broker_url:
            celery = [sys.executable, "-m", "celery", "-A", "etcdmonitor_site"]
            processes["worker"] = _spawn(
                "worker",
                [*celery, "worker", "-l", "info", "--pool", "threads", "--concurrency", "4",
                 "--hostname", f"reliab-{uuid.uuid4().hex[:6]}@%h"],
                env, log_dir,
            )  # fmt: skip
            processes["beat"] = _spawn(
                "beat",
                [*celery, "beat", "-l", "info", "--schedule", str(log_dir / "beat-schedule")],
                env,
                log_dir,
            )
        instance = Monitor(f"http://127.0.0.1:{port}", env, data_dir, processes, log_dir)
        started.append(instance)
        with instance.client(timeout=5) as http:
            wait_until(lambda: http.get("/healthz").status_code == 200, timeout=60, what="web")
        return instance

    yield start
    for instance in started:
        for process in reversed(instance.processes.values()):
            stop_process(process)


def collected_since(http: httpx.Client, after: int) -> bool:
    """Has a collection cycle finished after unix time `after`?"""
    body = http.get("/api/status").json()
    return (body.get("last_collected") or 0) > after


def member_up(http: httpx.Client, member_id: str) -> bool:
    response = http.get("/api/current", params={"member_id": member_id})
    return response.status_code == 200 and response.json()["metrics"].get("collector_up") == 1


def sample_counts(http: httpx.Client) -> dict[str, int]:
    return http.get("/api/debug").json()["db_member_ids"]
