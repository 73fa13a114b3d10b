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


@cache
def embedded_secret_key(data_dir: Path) -> str:
    """Embedded mode's Django secret key: generated once into DATA_DIR/secret-key (0600) and
    read back by every later process, so sessions survive a restart."""
    key_file = data_dir_prepare(data_dir) / SECRET_KEY_FILE
    try:
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()
