"""System checks of the site-wide settings (stable ids: etcdmonitor.E001, …)."""

import math
import os
from pathlib import Path

from django.conf import settings
from django.core import checks

# Settings that mean nothing at zero or below, by the variable that sets them: a zero interval
# runs the collector without pause, a zero timeout or limit refuses every call or request.
POSITIVE_SETTINGS = {
    "COLLECTOR_INTERVAL": "COLLECTOR_INTERVAL",
    "KV_CONNECT_TIMEOUT": "KV_CONNECT_TIMEOUT",
    "KV_REQUEST_TIMEOUT": "KV_REQUEST_TIMEOUT",
    "DATA_UPLOAD_MAX_MEMORY_SIZE": "REQUEST_BODY_MAX_BYTES",
    "HTTP_MAX_HEADER_BYTES": "HTTP_MAX_HEADER_BYTES",
    "HTTP_REQUEST_TIMEOUT": "HTTP_REQUEST_TIMEOUT",
    "WEB_THREADS": "WEB_THREADS",
    "WATCH_MAX_PER_USER": "WATCH_MAX_PER_USER",
    "WATCH_MAX_STREAMS": "WATCH_MAX_STREAMS",
    "WATCH_HEARTBEAT_SECONDS": "WATCH_HEARTBEAT_SECONDS",
    "WATCH_SESSION_CHECK_SECONDS": "WATCH_SESSION_CHECK_SECONDS",
    "WATCH_RESUME_SECONDS": "WATCH_RESUME_SECONDS",
    "WATCH_BUFFER_BYTES": "WATCH_BUFFER_BYTES",
}


@checks.register()
def check_data_dir(app_configs=None, **kwargs) -> list:
    """etcdmonitor.E001: DATA_DIR is a directory this process can write."""
    path = Path(settings.DATA_DIR)
    if path.is_dir():
        if os.access(path, os.W_OK | os.X_OK):
            return []
        problem = "is not writable"
    elif path.exists():
        problem = "is not a directory"
    else:
        problem = "does not exist and could not be created"
    return [
        checks.Error(
            f"DATA_DIR {path} {problem}",
            hint="Point DATA_DIR at a directory the app's user may write (runtime files, "
            "the embedded SQLite database).",
            id="etcdmonitor.E001",
        )
    ]


@checks.register()
def check_positive_settings(app_configs=None, **kwargs) -> list:
    """etcdmonitor.E002: intervals, timeouts, sizes and thread counts are above zero."""
    return [
        checks.Error(
            f"{variable} must be above 0 (got {getattr(settings, name)})",
            hint="Leave it unset for the default (see .env.example).",
            id="etcdmonitor.E002",
        )
        for name, variable in POSITIVE_SETTINGS.items()
        if getattr(settings, name) <= 0
    ]


@checks.register()
def check_request_body_fits_a_value(app_configs=None, **kwargs) -> list:
    """etcdmonitor.W001: a KV value of KV_MAX_VALUE_SIZE, sent as base64, fits in a request."""
    base64_size = 4 * math.ceil(settings.KV_MAX_VALUE_SIZE / 3)
    if base64_size <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return []
    return [
        checks.Warning(
            f"REQUEST_BODY_MAX_BYTES={settings.DATA_UPLOAD_MAX_MEMORY_SIZE} is smaller than a "
            f"base64 value of KV_MAX_VALUE_SIZE={settings.KV_MAX_VALUE_SIZE} "
            f"({base64_size} bytes): such values are refused with 413",
            hint="Leave REQUEST_BODY_MAX_BYTES unset (max(8 MiB, 3 x KV_MAX_VALUE_SIZE)).",
            id="etcdmonitor.W001",
        )
    ]
