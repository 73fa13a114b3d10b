"""Project-level promises: configuration contract, embedded defaults, the runmonitor server."""

import json
import re
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.servers import CONTRACT_VARIABLES, ROOT, clean_env, runmonitors


def test_env_example_lists_every_variable_settings_reads():
    settings_source = (ROOT / "etcdmonitor_site/settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings_source))
    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))

    assert set(CONTRACT_VARIABLES) <= read, "settings read every contract variable"
    assert read <= listed, f"missing from .env.example: {sorted(read - listed)}"


def test_embedded_defaults_use_sqlite_and_a_kept_secret_key(tmp_path):
    data_dir = tmp_path / "data"
    probe = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='etcdmonitor_site.settings';"
        "django.setup(); from django.conf import settings as s; import json;"
        "print(json.dumps([s.DATABASES['default']['ENGINE'], str(s.DATABASES['default']"
        "['NAME']), s.EMBEDDED_MODE, str(s.SECRET_KEY), s.ETCD_ENDPOINTS,"
        " s.CELERY_TASK_ALWAYS_EAGER]))"
    )

    def run():
        return json.loads(
            subprocess.check_output(
                [sys.executable, "-c", probe], cwd=ROOT, env=clean_env(DATA_DIR=str(data_dir))
            )
        )

    engine, name, embedded, secret, endpoints, eager = run()

    assert engine == "django.db.backends.sqlite3"
    assert name == str(data_dir / "etcdmonitor.sqlite3")
    assert embedded is True and eager is True
    assert endpoints == ["http://127.0.0.1:2379"]
    assert len(secret) >= 50 and run()[3] == secret, "the generated key is kept"
    assert stat.S_IMODE((data_dir / "secret-key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_a_broker_without_a_secret_key_is_a_configuration_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=clean_env(DATA_DIR=str(tmp_path), CELERY_BROKER_URL="redis://127.0.0.1:6379/0"),
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_check_deploy_is_clean_with_production_like_env(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=clean_env(
            DATA_DIR=str(tmp_path),
            DJANGO_SECRET_KEY="x" * 64 + "-production-like-secret-key",
            DJANGO_SECURE_COOKIES="true",
            DJANGO_SECURE_HSTS_SECONDS="31536000",
            DJANGO_SECURE_HSTS_PRELOAD="true",
            DJANGO_SECURE_SSL_REDIRECT="true",
            DJANGO_ALLOWED_HOSTS="etcdmonitor.example.com",
        ),
    )
    assert result.returncode == 0, result.stderr + result.stdout


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture
def runmonitor(tmp_path):
    """Start `manage.py runmonitor` (embedded mode, fresh SQLite) and stop it by PID."""
    with runmonitors(tmp_path, COLLECTOR_INTERVAL="2") as start:
        yield lambda endpoints: start(ETCD_ENDPOINTS=endpoints).url


def test_runmonitor_serves_healthz_and_survives_etcd_failures(runmonitor, etcd_cluster_factory):
    cluster = etcd_cluster_factory(point_settings=False)
    base = runmonitor(cluster.endpoints)

    health = _get_json(f"{base}/healthz")
    assert health == {"status": "ok", "database": True, "etcd": True, "broker": None}

    cluster.kill_member(cluster.members[0])
    assert _get_json(f"{base}/healthz")["etcd"] is True

    cluster.stop()
    deadline = time.monotonic() + 15
    while _get_json(f"{base}/healthz")["etcd"] is not False:
        assert time.monotonic() < deadline, "healthz noticed that etcd is gone"
        time.sleep(0.5)
    with pytest.raises(urllib.error.HTTPError) as raised:
        _get_json(f"{base}/api/no-such-route")
    assert raised.value.code in (401, 403, 404)
    assert _get_json(f"{base}/healthz")["status"] == "ok", "the server is still up"
