"""Servers for tests: the one we ship, `manage.py runmonitor`, as a real subprocess, and a
loopback HTTP server with a canned answer (something that is not etcd).

`start_runmonitor` migrates a fresh DATA_DIR, starts the server on a free loopback port with the
environment of a fresh shell plus the test's overrides, and returns once `/healthz` answers 200.
Fixtures wrap it and stop what they started by PID (`Runmonitor.stop`).
"""

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devtools.localcluster import free_port

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_VARIABLES = [
    "ETCD_ENDPOINTS",
    "ETCD_USERNAME",
    "ETCD_PASSWORD",
    "ETCD_METRICS_PATH",
    "ETCD_TLS_CA_CERT",
    "ETCD_TLS_CERT",
    "ETCD_TLS_KEY",
    "ETCD_TLS_INSECURE_SKIP_VERIFY",
    "ETCD_TLS_SERVER_NAME",
    "DATA_DIR",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "COLLECTOR_INTERVAL",
    "RETENTION_DAYS",
    "AUDIT_RETENTION_DAYS",
    "OPS_ENABLED",
    "SESSION_TIMEOUT",
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_DURATION_SECONDS",
    "MIN_PASSWORD_LENGTH",
    "KV_SEPARATOR",
    "KV_MAX_VALUE_SIZE",
    "KV_CONNECT_TIMEOUT",
    "KV_REQUEST_TIMEOUT",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "TRUSTED_PROXIES",
]


def clean_env(**overrides) -> dict:
    """The environment of a fresh shell: nothing of ours set except what the test gives."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CONTRACT_VARIABLES and not k.startswith(("DJANGO_", "CELERY_"))
    }
    env.update(overrides)
    return env


@dataclass
class Runmonitor:
    """A started `manage.py runmonitor`: its address, DATA_DIR, process and log file."""

    url: str
    port: int
    data_dir: Path
    process: subprocess.Popen
    log: Path

    def initial_password(self) -> str:
        return (self.data_dir / "initial-admin-password").read_text().strip()

    def healthz_ok(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_runmonitor(
    directory: Path, name: str = "runmonitor", *, healthz_timeout: float = 60, **env_overrides
) -> Runmonitor:
    """Migrate and start runmonitor with DATA_DIR `directory/<name>-data`, logging to
    `directory/<name>.log`; `env_overrides` (ETCD_ENDPOINTS, COLLECTOR_INTERVAL, ...) are set on
    top of `clean_env()`. Returns once /healthz answers 200; fails with the log if it never does.
    """
    data_dir = directory / f"{name}-data"
    env = clean_env(DATA_DIR=str(data_dir), **env_overrides)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=env, check=True, timeout=180,
    )  # fmt: skip
    port = free_port()
    log_path = directory / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    server = Runmonitor(f"http://127.0.0.1:{port}", port, data_dir, process, log_path)
    deadline = time.monotonic() + healthz_timeout
    while not server.healthz_ok():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError("runmonitor did not answer /healthz:\n" + log_path.read_text())
        time.sleep(0.2)
    return server


@contextlib.contextmanager
def runmonitors(directory: Path, **defaults):
    """Yield `start(**env_overrides) -> Runmonitor` (overrides on top of `defaults`); every server
    started through it is stopped by PID on exit."""
    started: list[Runmonitor] = []

    def start(**env_overrides) -> Runmonitor:
        name = f"runmonitor{len(started)}"
        server = start_runmonitor(directory, name, **{**defaults, **env_overrides})
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@contextlib.contextmanager
def canned_http_server(body: bytes, content_type: str, methods=("GET",)):
    """Yield the URL of a loopback HTTP server answering 200 with `body` to each of `methods`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    for method in methods:
        setattr(Handler, f"do_{method}", Handler._answer)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
