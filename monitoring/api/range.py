"""`/api/range` window parsing, exactly as the reference (§1.2), with its 400 messages."""

import math
import re
from dataclasses import dataclass

from django.conf import settings

from etcdmonitor_site.errors import InvalidInput
from monitoring import timeseries

MAX_SPAN = 90 * 86400
MAX_FUTURE_START = 86400
MAX_PAST_END = 365 * 86400
MAX_METRICS = 500

_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0}
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_GO_INT = re.compile(r"[+-]?\d+")
_GO_DURATION_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration_seconds(text: str) -> float:
    """Go's time.ParseDuration (e.g. `30s`, `1h30m`, `500ms`, `-2h`, `0`), in seconds."""
    sign = 1.0
    body = text
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(text)
    total, position = 0.0, 0
    while position < len(body):
        match = _GO_DURATION_PART.match(body, position)
        if not match or match.group(1) in ("", "."):
            raise ValueError(text)
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    return sign * total


def range_seconds(text: str) -> float:
    """`<float><m|h|d>` (fractions allowed), else a Go duration; ValueError when neither."""
    unit = _UNITS.get(text[-1:])
    if unit is not None:
        if not _GO_FLOAT.fullmatch(text[:-1]):
            raise ValueError(text)
        seconds = float(text[:-1]) * unit
    else:
        seconds = go_duration_seconds(text)
    if not math.isfinite(seconds):
        raise ValueError(text)
    return seconds


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    bucket: int | None


def parse_window(params, *, now: int) -> Window:
    """The queried window and its downsampling bucket, or InvalidInput with the reference text."""
    range_text = params.get("range")
    if range_text:
        try:
            seconds = range_seconds(range_text)
        except ValueError:
            raise InvalidInput("invalid range parameter") from None
        # The collector-interval buffer is our margin, not the user's range: the limit is on
        # the range itself, so the documented maximum `90d` is accepted.
        if seconds > MAX_SPAN:
            raise InvalidInput("requested range too large (max 90 days)")
        buffer = int(settings.COLLECTOR_INTERVAL)
        end = now + buffer
        start = end - int(seconds) - buffer
    else:
        start_text, end_text = params.get("start"), params.get("end")
        if start_text and end_text:
            if not _GO_INT.fullmatch(start_text):
                raise InvalidInput("invalid start parameter")
            if not _GO_INT.fullmatch(end_text):
                raise InvalidInput("invalid end parameter")
            start, end = int(start_text), int(end_text)
        else:
            start, end = now - 3600, now
        if end - start > MAX_SPAN:
            raise InvalidInput("requested range too large (max 90 days)")
    if start > now + MAX_FUTURE_START:
        raise InvalidInput("start time cannot be in far future")
    if end < now - MAX_PAST_END:
        raise InvalidInput("end time too far in past")
    return Window(start=start, end=end, bucket=timeseries.bucket_for_span(end - start))


def parse_metric_names(params) -> list[str] | None:
    """Comma-split, trimmed names without empties; None when all are empty; 400 if absent."""
    text = params.get("metrics")
    if not text:
        raise InvalidInput("metrics parameter required")
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(names) > MAX_METRICS:
        raise InvalidInput(f"too many metrics (max {MAX_METRICS})")
    return names or None
