"""Credential encryption of the KV tabs: AES-256-GCM bound to the tab id, and the key's sources."""

import base64
import os
import stat
import uuid

import pytest

from clusters import crypto
from clusters.crypto import (
    TabDecryptFailed,
    TabKeyMissing,
    password_decrypt,
    password_encrypt,
    tab_key,
)
from clusters.models import Cluster
from clusters.tests.conftest import add_tab


@pytest.fixture
def data_dir(tmp_path, settings):
    """A fresh DATA_DIR without a key file, and no KV_TABS_KEY."""
    settings.DATA_DIR = tmp_path
    settings.KV_TABS_KEY = ""
    return tmp_path


def test_round_trip_adds_exactly_nonce_and_tag(data_dir):
    tab_id = str(uuid.uuid4())

    blob = password_encrypt("pässwörd", tab_id=tab_id)

    assert len(blob) == len("pässwörd".encode()) + 28
    assert password_decrypt(blob, tab_id=tab_id) == "pässwörd"
    assert password_encrypt("", tab_id=tab_id) == b""
    assert password_decrypt(b"", tab_id=tab_id) == ""


def test_each_encryption_uses_a_fresh_nonce(data_dir):
    blobs = {password_encrypt("same", tab_id="t") for _ in range(50)}

    assert len(blobs) == 50
    assert len({blob[:12] for blob in blobs}) == 50


def test_a_blob_copied_to_another_tab_does_not_decrypt(data_dir):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    blob = password_encrypt("secret", tab_id=first)

    with pytest.raises(TabDecryptFailed):
        password_decrypt(blob, tab_id=second)


def test_a_tampered_blob_does_not_decrypt(data_dir):
    blob = bytearray(password_encrypt("secret", tab_id="t"))
    blob[15] ^= 0x01

    with pytest.raises(TabDecryptFailed):
        password_decrypt(bytes(blob), tab_id="t")
    with pytest.raises(TabDecryptFailed):
        password_decrypt(bytes(blob[:20]), tab_id="t")


def test_the_key_file_is_created_once_with_mode_0600(data_dir):
    key = tab_key()

    path = data_dir / crypto.KEY_FILE
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tab_key() == key


def test_a_key_file_readable_by_others_is_tightened(data_dir):
    path = data_dir / crypto.KEY_FILE
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)

    tab_key()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_key_file_of_the_wrong_length_is_refused(data_dir):
    (data_dir / crypto.KEY_FILE).write_bytes(b"short")

    with pytest.raises(TabKeyMissing, match="32 bytes"):
        password_encrypt("x", tab_id="t")


def test_kv_tabs_key_setting_wins_over_the_file(data_dir, settings):
    key = os.urandom(32)
    settings.KV_TABS_KEY = base64.b64encode(key).decode()

    assert tab_key() == key
    assert not (data_dir / crypto.KEY_FILE).exists()
    settings.KV_TABS_KEY = base64.b64encode(b"too short").decode()
    with pytest.raises(TabKeyMissing):
        tab_key()
    settings.KV_TABS_KEY = "%%% not base64"
    with pytest.raises(TabKeyMissing):
        tab_key()


def test_a_key_that_cannot_be_loaded_makes_create_with_a_password_fail_cleanly(
    api_client, remote_url, data_dir
):
    (data_dir / crypto.KEY_FILE).write_bytes(b"short")

    response = api_client.patch(
        f"/api/kv/tabs/{add_tab(api_client, remote_url)['id']}",
        {"username": "u", "password": "pw"},
        format="json",
    )

    assert response.status_code == 500
    assert response.json()["code"] == "KV_TAB_KEK_MISSING"
    assert "pw" not in response.json()["error"].replace("password", "")


def test_a_swapped_blob_fails_every_route_that_needs_the_password(api_client, remote_url, data_dir):
    first, second = (add_tab(api_client, remote_url)["id"] for _ in range(2))
    Cluster.objects.filter(pk=first).update(
        username="u", password_cipher=password_encrypt("pw", tab_id=first)
    )
    stolen = bytes(Cluster.objects.get(pk=first).password_cipher)
    Cluster.objects.filter(pk=second).update(username="u", password_cipher=stolen)

    kv = api_client.get(f"/api/kv/v3/keys?tab_id={second}")
    test = api_client.post(f"/api/kv/tabs/{second}/test", {}, format="json")
    patch = api_client.patch(
        f"/api/kv/tabs/{second}",
        {"endpoint": remote_url.replace("127.0.0.1", "localhost")},
        format="json",
    )

    assert (kv.status_code, kv.json()["code"]) == (500, "INTERNAL")
    assert (test.status_code, test.json()["code"]) == (500, "KV_TAB_KEK_MISSING")
    # Moving a tab drops its stored password (issue 15): the stolen blob is never decrypted.
    assert patch.status_code == 200 and patch.json()["tab"]["has_password"] is False
    assert password_decrypt(stolen, tab_id=first) == "pw"


def test_a_lost_key_file_means_passwords_must_be_re_entered(api_client, remote_url, data_dir):
    tab = add_tab(api_client, remote_url)["id"]
    api_client.patch(f"/api/kv/tabs/{tab}", {"username": "u", "password": "pw"}, format="json")
    (data_dir / crypto.KEY_FILE).unlink()

    response = api_client.post(f"/api/kv/tabs/{tab}/test", {}, format="json")

    assert response.status_code == 500 and response.json()["code"] == "KV_TAB_KEK_MISSING"
    cleared = api_client.patch(
        f"/api/kv/tabs/{tab}", {"username": "", "clear_password": True}, format="json"
    )
    assert cleared.status_code == 200
    assert api_client.post(f"/api/kv/tabs/{tab}/test").json() == {"status": "ok"}
