"""JSON text for the hottest database paths (a collection round writes and reads every
member's ~5-12 KB state every interval): orjson, three to seven times the standard library's
speed here, and the standard library for what orjson refuses (writing integers beyond 64
bits, keys that are not strings; reading numbers beyond a double's range, NaN).

Two differences from the standard library, both about numbers no etcd sends:
- writing, a non-finite float becomes `null` where the standard library writes `NaN`, which
  PostgreSQL's JSON rejects (the whole statement would fail);
- reading, an integer beyond 64 bits becomes the nearest float where the standard library
  gives the int. So `loads` is only for JSON whose every number came from a float (what the
  collector and the health probe store: there the value is the same), never user content.
"""

import json

import orjson


def dumps(value) -> str:
    """`json.dumps(value)`'s value as compact JSON text."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: a huge int, a non-str key, an odd type
        return json.dumps(value)


def loads(text: str | bytes):
    """`json.loads(text)`; raises json.JSONDecodeError as it does."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. 1e400 or NaN, which the standard library reads
        return json.loads(text)


def from_db_value(value, expression, connection):
    """A JSONField's (without a decoder) database converter, as Django's: None stays None,
    text that is not JSON is returned as it is."""
    if value is None or not isinstance(value, str | bytes):
        return value
    try:
        return loads(value)
    except json.JSONDecodeError:
        return value
