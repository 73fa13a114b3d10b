"""The etcd v2 keys API (`/v2/keys`) over plain httpx, with the gateway's endpoint failover.

etcd 3.4 and 3.5 serve v2 only with `--enable-v2=true`, 3.6 not at all; without it `/v2/keys`
answers a plain-text 404, which surfaces as `EtcdV2Unavailable` (its message says which case).
Nothing here caches availability: every call finds out.
"""

from urllib.parse import quote, unquote

import httpx

from etcdgateway.cluster import ClusterGateway
from etcdgateway.errors import (
    EtcdError,
    EtcdInvalidRequest,
    EtcdNotFound,
    EtcdPermissionDenied,
    EtcdPreconditionFailed,
    EtcdRequestTooLarge,
    EtcdTimeout,
    EtcdUnavailable,
)


class EtcdV2Unavailable(EtcdUnavailable):
    """The cluster answers, but not on the v2 API (started without --enable-v2)."""

    code = "v2_unavailable"
    default_message = "etcd v2 API is not available (requires --enable-v2=true)"

    def __init__(self, message: str | None = None, *, endpoint: str = ""):
        EtcdError.__init__(self, message or self.default_message, endpoint=endpoint)


# v2 errorCode → project exception (etcd/etcdserver/api/v2error).
_BY_ERROR_CODE: dict[int, type[EtcdError]] = {
    100: EtcdNotFound,  # Key not found
    101: EtcdPreconditionFailed,  # Compare failed
    102: EtcdInvalidRequest,  # Not a file
    104: EtcdInvalidRequest,  # Not a directory
    105: EtcdPreconditionFailed,  # Key already exists
    107: EtcdInvalidRequest,  # Root is read only
    108: EtcdInvalidRequest,  # Directory not empty
    110: EtcdPermissionDenied,  # The request requires user authentication
    200: EtcdInvalidRequest,  # Value is Required in POST form
    201: EtcdInvalidRequest,  # PrevValue is Required in POST form
    202: EtcdInvalidRequest,  # The given TTL in POST form is not a number
    203: EtcdInvalidRequest,  # The given index in POST form is not a number
    209: EtcdInvalidRequest,  # Invalid field
    210: EtcdInvalidRequest,  # Invalid POST form
}


KEYS_PREFIX = "/v2/keys/"


class V2KeyRefused(EtcdInvalidRequest):
    """A v2 key with `.` or `..` segments: the HTTP client and etcd's router would resolve them
    and reach other etcd endpoints (`../members/<id>` removed a member)."""

    code = "invalid_request"
    default_message = "v2 keys must not contain '.' or '..' path segments"


def _is_dot_segment(segment: str) -> bool:
    # Decode until stable: `%2e`, `%252e`, ... are all refused, whoever decodes them later.
    for _ in range(8):
        decoded = unquote(segment)
        if decoded == segment:
            break
        segment = decoded
    return segment in (".", "..")


def keys_path(key: str) -> str:
    """`/a/b c` → `/v2/keys/a/b%20c`: every segment quoted on its own (slashes kept: they are
    v2's directory separators). Dot segments, raw or percent-encoded, raise V2KeyRefused."""
    segments = key.lstrip("/").split("/")
    if any(_is_dot_segment(segment) for segment in segments):
        raise V2KeyRefused()
    path = KEYS_PREFIX + "/".join(quote(segment, safe="") for segment in segments)
    # The URL the client will send must still be under the prefix, whatever it normalises.
    if not httpx.URL("http://etcd" + path).path.startswith(KEYS_PREFIX):
        raise V2KeyRefused()
    return path


def _error_from_response(response: httpx.Response, endpoint: str) -> EtcdError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "errorCode" in body:
        text = str(body.get("message") or "etcd v2 error")
        if body.get("cause"):
            text = f"{text}: {body['cause']}"
        error_class = _BY_ERROR_CODE.get(int(body["errorCode"]), EtcdError)
        if "too large" in str(body.get("cause") or ""):
            # 210 "Invalid POST form: http: POST too large": Go's 10 MiB form limit, not a typo.
            return EtcdRequestTooLarge(
                f"request exceeds etcd's v2 request size limit (10 MiB form body): {text}",
                endpoint=endpoint,
            )
        return error_class(text, endpoint=endpoint)
    if response.status_code == 404:
        return EtcdV2Unavailable(endpoint=endpoint)
    if response.status_code in (401, 403):
        return EtcdPermissionDenied(f"etcd permission denied: {response.text[:200]}")
    if response.status_code >= 500:
        return EtcdUnavailable(f"{endpoint}: HTTP {response.status_code}", endpoint=endpoint)
    return EtcdError(f"etcd v2 request failed: HTTP {response.status_code}", endpoint=endpoint)


def v2_unavailable_message(server_version: str) -> str:
    """Why v2 is missing, by the member's version: 3.6 removed the v2 API altogether, so
    `--enable-v2` would be the wrong advice there."""
    major, _, rest = server_version.partition(".")
    minor = rest.partition(".")[0]
    if major.isdigit() and minor.isdigit() and (int(major), int(minor)) >= (3, 6):
        return f"etcd v2 API is not available (etcd {server_version} has no v2 API)"
    return EtcdV2Unavailable.default_message


def _server_version(http: httpx.Client, endpoint: str) -> str:
    """`etcdserver` of the member's public /version, "" when it cannot be read."""
    try:
        return str(http.get(f"{endpoint}/version").json().get("etcdserver", ""))
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""


class V2Keys:
    """A handful of `/v2/keys` calls against one cluster, failing over like the v3 gateway.

    Only connection failures (nothing reached a server) move on to the next endpoint; a server's
    answer, errors and timeouts included, is final.
    """

    def __init__(self, gateway: ClusterGateway, *, timeout: float | None = None):
        self.gateway = gateway
        self.timeout = timeout

    def request(
        self,
        method: str,
        key: str,
        *,
        params: dict | None = None,
        form: dict | None = None,
    ) -> dict:
        """One request on the first endpoint that answers; the decoded JSON body."""
        path = keys_path(key)  # before any connection: a refused key never leaves the process
        # A pinned (address) endpoint still verifies TLS against the configured name.
        server_name = self.gateway.config.server_name
        extensions = {"sni_hostname": server_name} if server_name else None
        failures = []
        with self.gateway.http_client(timeout=self.timeout) as http:
            for endpoint in self.gateway._endpoints_in_order():
                url = endpoint + path
                try:
                    response = http.request(
                        method, url, params=params, data=form, extensions=extensions
                    )
                except httpx.TimeoutException as exc:
                    raise EtcdTimeout(
                        f"etcd request timed out: {endpoint}", endpoint=endpoint
                    ) from exc
                except httpx.TransportError as exc:
                    failures.append(f"{endpoint}: {type(exc).__name__}")
                    continue
                if response.status_code >= 400:
                    error = _error_from_response(response, endpoint)
                    if isinstance(error, EtcdV2Unavailable):
                        error = EtcdV2Unavailable(
                            v2_unavailable_message(_server_version(http, endpoint)),
                            endpoint=endpoint,
                        )
                    if type(error) is EtcdUnavailable:
                        failures.append(error.message.removeprefix("etcd unavailable: "))
                        continue
                    raise error
                try:
                    body = response.json()
                except ValueError as exc:
                    raise EtcdError(
                        "etcd v2 answered with invalid JSON", endpoint=endpoint
                    ) from exc
                # Every /v2/keys answer carries the node it acted on; anything else (the JSON
                # of /version or /v2/members) is not a v2 keys answer: 502, never a KeyError.
                if not isinstance(body, dict) or not isinstance(body.get("node"), dict):
                    raise EtcdError("etcd v2 answered without a key node", endpoint=endpoint)
                return body
        raise EtcdUnavailable("; ".join(failures) or "no endpoint configured")

    def get(self, key: str, *, recursive: bool = False) -> dict:
        """The v2 node at `key` (children sorted; the whole subtree when `recursive`)."""
        params = {"sorted": "true"}
        if recursive:
            params["recursive"] = "true"
        return self.request("GET", key, params=params)["node"]

    def set(self, key: str, *, value: str = "", ttl: int | None = None, dir: bool = False) -> dict:
        """Create or replace `key` (a directory when `dir`); `ttl` None = no expiry."""
        form: dict[str, str] = {"dir": "true"} if dir else {"value": value}
        if ttl:
            form["ttl"] = str(ttl)
        if dir:
            # Turning an existing directory's TTL on or off needs prevExist=true.
            form["prevExist"] = "true" if self._exists(key) else "false"
        return self.request("PUT", key, form=form)["node"]

    def _exists(self, key: str) -> bool:
        try:
            self.get(key)
        except EtcdNotFound:
            return False
        return True

    def delete(self, key: str, *, dir: bool = False) -> dict:
        """Delete `key`; with `dir`, a directory and everything under it."""
        params = {"recursive": "true", "dir": "true"} if dir else None
        return self.request("DELETE", key, params=params)
