"""Encryption of the KV tabs' etcd passwords: AES-256-GCM with the tab id as associated data.

The key (KEK) comes from `KV_TABS_KEY` (base64 of 32 bytes) or, when that is empty, from the file
`DATA_DIR/kv_tabs.key` (32 raw bytes, mode 0600), created on first use. A blob is
`nonce(12) ‖ ciphertext ‖ tag(16)`; an empty password is an empty blob. Binding the blob to the
tab id means a blob copied into another row no longer decrypts (the reference used no AAD).
"""

import base64
import binascii
import logging
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from etcdmonitor_site.datadir import private_file_create

logger = logging.getLogger(__name__)

KEY_FILE = "kv_tabs.key"
KEY_BYTES = 32
NONCE_BYTES = 12


class TabKeyMissing(Exception):
    """No usable key: KV_TABS_KEY is malformed, or the key file is unreadable or the wrong size."""


class TabDecryptFailed(Exception):
    """A stored blob does not decrypt with this key for this tab (wrong key, row, or tampering)."""


def key_path() -> Path:
    return Path(settings.DATA_DIR) / KEY_FILE


def _key_from_file(path: Path) -> bytes:
    if private_file_create(path, os.urandom(KEY_BYTES)):
        logger.info("created the KV tabs key file %s", path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            logger.warning("tightened permissions of %s from %o to 600", path, mode)
        key = path.read_bytes()
    except OSError as exc:
        raise TabKeyMissing(f"cannot read {path}: {exc.strerror}") from exc
    if len(key) != KEY_BYTES:
        raise TabKeyMissing(f"{path} must hold exactly {KEY_BYTES} bytes, not {len(key)}")
    return key


def tab_key() -> bytes:
    """The 32-byte KEK (raises TabKeyMissing)."""
    configured = settings.KV_TABS_KEY
    if not configured:
        return _key_from_file(key_path())
    try:
        key = base64.b64decode(configured, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TabKeyMissing("KV_TABS_KEY is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise TabKeyMissing(f"KV_TABS_KEY must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def password_encrypt(password: str, *, tab_id: str) -> bytes:
    """The blob for `password` in the row `tab_id` (b"" for no password)."""
    if not password:
        return b""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(tab_key()).encrypt(nonce, password.encode(), str(tab_id).encode())


def password_decrypt(blob: bytes | memoryview, *, tab_id: str) -> str:
    """The password stored in the row `tab_id` ("" for an empty blob)."""
    blob = bytes(blob or b"")
    if not blob:
        return ""
    if len(blob) < NONCE_BYTES + 16:
        raise TabDecryptFailed("stored password is truncated")
    try:
        plain = AESGCM(tab_key()).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], str(tab_id).encode()
        )
    except InvalidTag as exc:
        raise TabDecryptFailed("stored password cannot be decrypted") from exc
    return plain.decode()
