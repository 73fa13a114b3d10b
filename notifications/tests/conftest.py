"""Real receivers on loopback for the notification tests: an HTTP server that records what it
is sent (webhook, Slack), an SMTP server (aiosmtpd) and Debian's Prometheus Alertmanager."""

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.contrib.auth import get_user_model

from devtools.localcluster import free_port
from notifications.notices import AlertNotice

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"


class Receiver:
    """An HTTP server on a fixed loopback port that can go down and come back up; it records
    every request (path, headers, JSON body) and answers `status`."""

    def __init__(self):
        self.port = free_port()
        self.requests: list[dict] = []
        self.status = 200
        self.redirect_to = ""
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(raw) if raw else None,
                        }
                    )
                if receiver.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, path: str | None = None) -> list:
        with self._lock:
            return [r["body"] for r in self.requests if path is None or r["path"] == path]


@pytest.fixture
def receiver():
    """A running HTTP receiver on loopback."""
    server = Receiver().start()
    yield server
    server.stop()


class MailSink:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "message": message_from_bytes(
                    envelope.original_content or envelope.content, policy=policy.default
                ),
                "login": session.auth_data,
            }
        )
        return "250 OK"


SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-secret-pw-42"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    if not ok:
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
    return AuthResult(success=True, auth_data=auth_data.login)


@pytest.fixture
def smtp_server():
    """An SMTP server on loopback requiring AUTH (mailer / smtp-secret-pw-42); no TLS."""
    sink = MailSink()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    controller.sink = sink
    yield controller
    controller.stop()


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class Alertmanager:
    """Debian's prometheus-alertmanager on loopback ports with its own config and storage; it
    forwards what it receives to `receiver` (send_resolved) so a test sees its notifications."""

    def __init__(self, tmp_path, receiver: Receiver):
        self.port = free_port()
        self.dir = tmp_path / "alertmanager"
        self.dir.mkdir()
        config = {
            "route": {
                "receiver": "hook",
                "group_by": ["alertname", "cluster", "member"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [
                        {"url": f"{receiver.url}/from-alertmanager", "send_resolved": True}
                    ],
                }
            ],
        }
        # JSON is YAML: no YAML writer needed.
        (self.dir / "alertmanager.yml").write_text(json.dumps(config))
        self.log = (self.dir / "log.txt").open("wb")
        self.process = subprocess.Popen(
            [
                ALERTMANAGER_BIN,
                f"--config.file={self.dir / 'alertmanager.yml'}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: one instance, no extra port
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("alertmanager did not start: " + (self.dir / "log.txt").read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self, **filters) -> list[dict]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        return _get_json(f"{self.url}/api/v2/alerts?{query}")

    def received(self) -> dict[str, int]:
        """Alerts Alertmanager accepted, by status (its alerts_received_total counter)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        counts = {}
        for line in text.splitlines():
            if line.startswith("alertmanager_alerts_received_total{"):
                status = line.split('status="', 1)[1].split('"', 1)[0]
                counts[status] = counts.get(status, 0) + int(float(line.rsplit(" ", 1)[1]))
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def alertmanager(tmp_path, receiver):
    if not shutil.which(ALERTMANAGER_BIN):
        pytest.fail(
            "prometheus-alertmanager is missing: scripts/ensure-system-deps.sh --with-services"
        )
    server = Alertmanager(tmp_path, receiver)
    yield server
    server.stop()


@pytest.fixture
def staff_client(api_client):
    """The admin (staff, superuser), signed in by a bearer token."""
    return api_client


@pytest.fixture
def user_client(db, bearer_client):
    """A signed-in user who is not staff."""
    user = get_user_model().objects.create_user(username="viewer", password="v" * 12)
    return bearer_client(user)


def notice(**fields) -> AlertNotice:
    """A member_down notice for member 1234 of cluster `prod`; `fields` override."""
    base = {
        "alert_id": 7,
        "fingerprint": "fp-member-down-1234",
        "rule": "member_down",
        "severity": "warning",
        "status": "firing",
        "cluster_id": "default",
        "cluster_name": "prod",
        "member_id": "1234",
        "summary": "member 1234 is down",
        "description": "member 1234 has not answered for 10 s; quorum margin 1",
        "values": {"members_up": 2, "quorum_margin": 1},
        "starts_at": 1_700_000_000.25,
        "ends_at": None,
        "runbook_url": "https://example.org/runbooks/member_down",
    }
    base.update(fields)
    return AlertNotice(**base)


def add_channel(client, kind: str, config: dict, name: str = "", **fields) -> dict:
    response = client.post(
        "/api/alerts/channels",
        {"name": name or f"{kind}-channel", "kind": kind, "config": config, **fields},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["channel"]
