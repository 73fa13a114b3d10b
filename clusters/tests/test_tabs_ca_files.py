"""CA bundles on disk are only those of stored tabs (issue 15, low): every distinct bundle
sent to the connection test used to stay in DATA_DIR/kv-tab-ca forever."""

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

from clusters.tests.conftest import add_tab, dead_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path, settings):
    """A DATA_DIR of this test's own: other tests' rolled-back tabs left their files behind."""
    settings.DATA_DIR = tmp_path


def ca_pem(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def ca_dir_files() -> set[str]:
    directory = Path(settings.DATA_DIR) / "kv-tab-ca"
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def stored_name(pem: str) -> str:
    return hashlib.sha256((pem.strip() + "\n").encode()).hexdigest() + ".pem"


def test_tested_bundles_do_not_stay_on_disk(api_client, remote_url):
    kept_pem = ca_pem("kept")
    tab = add_tab(api_client, remote_url, ca_cert=kept_pem)
    assert api_client.get(f"/api/kv/v3/keys?tab_id={tab['id']}").status_code == 200
    before = ca_dir_files()

    for index in range(5):
        ok = api_client.post(
            "/api/kv/tabs/test",
            {"endpoint": remote_url, "ca_cert": ca_pem(f"probe-{index}")},
            format="json",
        )
        assert ok.status_code == 200, ok.json()
        failed = api_client.post(
            "/api/kv/tabs",
            {"endpoint": dead_url(), "ca_cert": ca_pem(f"failed-{index}")},
            format="json",
        )
        assert failed.status_code == 400

    assert ca_dir_files() == before == {stored_name(kept_pem)}


def test_a_deleted_or_changed_tab_takes_its_bundle_along(api_client, remote_url):
    first, second = ca_pem("first"), ca_pem("second")
    tab = add_tab(api_client, remote_url, ca_cert=first)
    api_client.get(f"/api/kv/v3/keys?tab_id={tab['id']}")
    assert ca_dir_files() == {stored_name(first)}

    changed = api_client.patch(f"/api/kv/tabs/{tab['id']}", {"ca_cert": second}, format="json")
    assert changed.status_code == 200
    api_client.get(f"/api/kv/v3/keys?tab_id={tab['id']}")
    assert ca_dir_files() == {stored_name(second)}

    assert api_client.delete(f"/api/kv/tabs/{tab['id']}").status_code == 204
    assert ca_dir_files() == set()
