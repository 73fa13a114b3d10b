"""Settings load without writing anything; the site-wide system checks name bad values."""

import stat
import subprocess
import sys

import pytest
from django.core import checks

from tests.servers import ROOT, clean_env


def _ids(check_id: str) -> list:
    return [message for message in checks.run_checks() if message.id == check_id]


def _python(code: str, data_dir) -> str:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(DATA_DIR=str(data_dir)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_importing_settings_writes_nothing(tmp_path):
    data_dir = tmp_path / "fresh" / "data"

    _python("import etcdmonitor_site.settings", data_dir)

    assert not (tmp_path / "fresh").exists()


def test_start_up_makes_the_data_dir_and_the_secret_key_waits_for_first_use(tmp_path):
    data_dir = tmp_path / "data"
    setup = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='etcdmonitor_site.settings'"

    _python(f"{setup}; django.setup()", data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert not (data_dir / "secret-key").exists()

    key = _python(
        f"{setup}; django.setup(); from django.conf import settings as s; print(len(s.SECRET_KEY))",
        data_dir,
    )
    assert int(key) >= 50
    assert stat.S_IMODE((data_dir / "secret-key").stat().st_mode) == 0o600


def test_data_dir_that_is_a_file_is_an_error(settings, tmp_path):
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("")
    settings.DATA_DIR = not_a_directory

    (error,) = _ids("etcdmonitor.E001")
    assert str(not_a_directory) in error.msg and "is not a directory" in error.msg


def test_data_dir_that_is_missing_is_an_error(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "never-made"

    (error,) = _ids("etcdmonitor.E001")
    assert "does not exist" in error.msg


def test_writable_data_dir_passes(settings, tmp_path):
    settings.DATA_DIR = tmp_path

    assert not _ids("etcdmonitor.E001")


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("COLLECTOR_INTERVAL", "COLLECTOR_INTERVAL"),
        ("KV_CONNECT_TIMEOUT", "KV_CONNECT_TIMEOUT"),
        ("KV_REQUEST_TIMEOUT", "KV_REQUEST_TIMEOUT"),
        ("DATA_UPLOAD_MAX_MEMORY_SIZE", "REQUEST_BODY_MAX_BYTES"),
        ("HTTP_MAX_HEADER_BYTES", "HTTP_MAX_HEADER_BYTES"),
        ("HTTP_REQUEST_TIMEOUT", "HTTP_REQUEST_TIMEOUT"),
        ("WEB_THREADS", "WEB_THREADS"),
    ],
)
def test_a_zero_interval_timeout_or_limit_is_an_error_naming_its_variable(
    settings, setting, variable
):
    assert not _ids("etcdmonitor.E002"), "the defaults pass"

    setattr(settings, setting, 0)

    (error,) = _ids("etcdmonitor.E002")
    assert error.msg == f"{variable} must be above 0 (got 0)"


def test_a_request_body_smaller_than_a_largest_value_warns(settings):
    assert not _ids("etcdmonitor.W001"), "the defaults pass"
    settings.KV_MAX_VALUE_SIZE = 3000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4000  # exactly the base64 of 3000 bytes

    assert not _ids("etcdmonitor.W001")

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 3999
    (warning,) = _ids("etcdmonitor.W001")
    assert "REQUEST_BODY_MAX_BYTES=3999" in warning.msg
