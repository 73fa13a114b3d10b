"""The files the app keeps in DATA_DIR itself, made on first use (never when settings load)."""

import os
import secrets
from functools import cache
from pathlib import Path

SECRET_KEY_FILE = "secret-key"  # noqa: S105 - a file name, not a secret


def data_dir_prepare(path: Path) -> Path:
    """Create DATA_DIR when missing and keep it owner-only: it holds the initial admin
    password and the generated secret key."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def private_file_create(path: Path, content: bytes) -> bool:
    """Write `content` to `path` as a new owner-only (0600) file; False when it already exists
    (another process may have made it first: its content wins)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    return True


@cache
def embedded_secret_key(data_dir: Path) -> str:
    """Embedded mode's Django secret key: generated once into DATA_DIR/secret-key (0600) and
    read back by every later process, so sessions survive a restart."""
    key_file = data_dir_prepare(data_dir) / SECRET_KEY_FILE
    private_file_create(key_file, secrets.token_urlsafe(50).encode())
    return key_file.read_text().strip()
