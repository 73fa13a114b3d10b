"""A v3 client bound to one etcd endpoint, with pyetcd's measured quirks worked around.

- endpoints are built with `time_retry=0`: pyetcd otherwise refuses a node for 300 s after an error;
- `call_credentials` are cleared: grpcio refuses them on plaintext channels, the token travels as
  metadata instead (which also works over TLS);
- an expired simple-token is renewed once and the call retried;
- raw stub calls (MoveLeader, HashKV, Status) get the token metadata and our timeout;
- every failure leaves this module as an `EtcdError` subclass.
"""

import contextlib
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
import pyetcd
from cryptography import x509
from cryptography.x509.oid import NameOID
from google.protobuf.unknown_fields import UnknownFieldSet
from pyetcd import etcdrpc

from etcdgateway.config import ClusterConfig, split_endpoint
from etcdgateway.curl import NotGrpc, Transfers, UnaryCaller, grpc_proxied
from etcdgateway.errors import (
    EtcdError,
    EtcdPermissionDenied,
    EtcdPreconditionFailed,
    EtcdRevisionConflict,
    EtcdTimeout,
    EtcdUnavailable,
    cut_at_deadline,
    is_invalid_token,
    translate,
)
from etcdgateway.kv import Deletion, KeyspaceHash, KeyValue, RangePage, key_values, prefix_end
from etcdgateway.watch import Watch, open_watch

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Reconnect quickly after a member comes back (gRPC's default backoff grows to 120 s), and allow
# large ranges: the default 4 MiB receive limit is a known failure of other etcd UIs.
GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


def presented_certificate(host: str, port: int, config: ClusterConfig) -> tuple[bytes, str]:
    """(PEM, a name it is valid for) of the certificate the server presents, unverified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if config.client_cert:
        context.load_cert_chain(config.client_cert, config.client_key)
    try:
        with (
            socket.create_connection((host, port), timeout=config.connect_timeout) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise EtcdUnavailable(f"{host}:{port}: TLS handshake failed ({exc})") from exc
    certificate = x509.load_der_x509_certificate(der)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns_names = names.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = dns_names[0] if dns_names else (str(common_names[0].value) if common_names else host)
    return ssl.DER_cert_to_PEM_cert(der).encode(), name


def channel_settings(
    endpoint: str, config: ClusterConfig
) -> tuple[str, int, grpc.ChannelCredentials | None, list[tuple]]:
    """(host, port, credentials, options) of a gRPC channel to `endpoint`: TLS (credentials
    None: plaintext), the server name override and our options. Shared by the sync client and
    the asyncio watch (`etcdgateway.aiowatch`); blocks for a TLS handshake when
    `insecure_skip_verify` asks to trust the presented certificate."""
    host, port, secure = split_endpoint(endpoint)
    credentials = None
    options = list(GRPC_OPTIONS)
    server_name = config.server_name
    if secure:
        ca_bundle, client_key, client_cert = config.read_tls_files()
        if config.insecure_skip_verify:
            # gRPC cannot switch verification off: trust whatever certificate the server
            # presents right now, under the name it carries.
            ca_bundle, presented_name = presented_certificate(host, port, config)
            server_name = server_name or presented_name
        credentials = grpc.ssl_channel_credentials(ca_bundle, client_key, client_cert)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return host, port, credentials, options


# etcd's AlarmType enum by wire value (pyetcd's 3.3-era protos lack CORRUPT).
ALARM_NAMES = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}
ALARM_VALUES = {name: value for value, name in ALARM_NAMES.items()}
AUTH_PROBE_TIMEOUT = 3.0


def _unknown_varints(message) -> dict[int, int]:
    """Fields newer than pyetcd's 3.3-era protos (e.g. isLearner) survive as unknown fields."""
    return {f.field_number: f.data for f in UnknownFieldSet(message) if f.wire_type == 0}


def _unknown_strings(message, field_number: int) -> list[bytes]:
    """Every value of one repeated length-delimited unknown field, in wire order."""
    return [
        f.data
        for f in UnknownFieldSet(message)
        if f.field_number == field_number and f.wire_type == 2
    ]


# One active alarm in StatusResponse.errors: etcd writes the AlarmMember message as text.
_ALARM_ERROR = re.compile(r"memberID:(\d+)\s+alarm:([A-Z_]+)")


def _unknown_bytes(message) -> dict[int, bytes]:
    """Length-delimited unknown fields (strings, embedded messages) by field number."""
    return {f.field_number: f.data for f in UnknownFieldSet(message) if f.wire_type == 2}


@dataclass(frozen=True)
class DowngradeInfo:
    """etcd 3.6's StatusResponse.downgradeInfo: a downgrade in progress and its target."""

    enabled: bool
    target_version: str


def _downgrade_info(data: bytes | None) -> DowngradeInfo | None:
    if data is None:
        return None
    # DowngradeInfo {bool enabled = 1; string targetVersion = 2}: decoded as a bare message.
    inner = etcdrpc.StatusRequest.FromString(data)  # a message without fields: all unknown
    return DowngradeInfo(
        enabled=bool(_unknown_varints(inner).get(1, 0)),
        target_version=_unknown_bytes(inner).get(2, b"").decode("utf-8", "replace"),
    )


def _int64(value: int | None) -> int | None:
    """A varint read as protobuf int64 (two's complement above 2**63)."""
    if value is None:
        return None
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class MemberInfo:
    """One entry of MemberList. `id` is etcd's uint64 member id."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def id_str(self) -> str:
        """The decimal string the API uses for member ids."""
        return str(self.id)


@dataclass(frozen=True)
class MemberStatus:
    """The Status RPC of one member."""

    member_id: int
    leader_id: int
    version: str
    db_size: int
    db_size_in_use: int | None
    raft_index: int
    raft_term: int
    raft_applied_index: int | None
    is_learner: bool
    revision: int
    # etcd 3.6+ only (None/"" from older members):
    storage_version: str = ""
    db_size_quota: int | None = None
    downgrade: DowngradeInfo | None = None
    # StatusResponse.errors (field 8, etcd 3.4+): "etcdserver: no leader" and one entry per
    # active alarm of the cluster, as this member has applied them.
    errors: tuple[str, ...] = ()

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader_id and self.leader_id != 0

    @property
    def alarms(self) -> list[tuple[int, str]]:
        """The cluster's active alarms as this member reports them, (member id, alarm name)
        pairs like `EtcdClient.alarms`. Read from Status, this needs no extra RPC and, unlike
        Alarm GET (a raft request), no quorum."""
        found = []
        for error in self.errors:
            for member_id, name in _ALARM_ERROR.findall(error):
                found.append((int(member_id), name))
        return found


def decode_status(response) -> MemberStatus:
    """A StatusResponse of any etcd 3.x as a MemberStatus.

    pyetcd's protos stop at field 6; later fields arrive as unknown fields: raftAppliedIndex (7),
    errors (8), dbSizeInUse (9), isLearner (10) since 3.4, and since 3.6 storageVersion (11),
    dbSizeQuota (12, the --quota-backend-bytes in force) and downgradeInfo (13).
    """
    varints = _unknown_varints(response)
    strings = _unknown_bytes(response)
    quota = _int64(varints.get(12))
    return MemberStatus(
        member_id=response.header.member_id,
        leader_id=response.leader,
        version=response.version,
        db_size=response.dbSize,
        raft_index=response.raftIndex,
        raft_term=response.raftTerm,
        raft_applied_index=varints.get(7),
        db_size_in_use=_int64(varints.get(9)),
        is_learner=bool(varints.get(10, 0)),
        revision=response.header.revision,
        storage_version=strings.get(11, b"").decode("utf-8", "replace"),
        db_size_quota=quota if quota and quota > 0 else None,
        downgrade=_downgrade_info(strings.get(13)),
        errors=tuple(e.decode("utf-8", "replace") for e in _unknown_strings(response, 8)),
    )


class _Anonymous:
    """Stands in for the pyetcd client in a libcurl call to a cluster without auth: the
    client's token (`metadata`) is all such a call reads from it, and there is none."""

    metadata = None


_ANONYMOUS = _Anonymous()

# The read-only unary calls periodic jobs make, which go over libcurl: (service, reply class).
_UNARY_REPLIES = {
    ("clusterstub", "MemberList"): ("Cluster", etcdrpc.MemberListResponse),
    ("maintenancestub", "Alarm"): ("Maintenance", etcdrpc.AlarmResponse),
    ("maintenancestub", "HashKV"): ("Maintenance", etcdrpc.HashKVResponse),
}


def _unary_path(stub_name: str, method: str) -> str:
    """The gRPC path of one of `_UNARY_REPLIES`' calls."""
    return f"/etcdserverpb.{_UNARY_REPLIES[(stub_name, method)][0]}/{method}"


_STATUS = "/etcdserverpb.Maintenance/Status"
_LEASE_LEASES = "/etcdserverpb.Lease/LeaseLeases"
_UNSET = object()  # EtcdClient._unary: no first attempt made elsewhere

LEASE_RACE_ATTEMPTS = 5  # a put keeping the lease retries when the lease changes meanwhile


class EtcdClient:
    """A pyetcd client for exactly one endpoint (`http(s)://host:port`)."""

    def __init__(self, endpoint: str, config: ClusterConfig, *, timeout: float | None = None):
        self.endpoint = endpoint
        self.config = config
        self.timeout = timeout if timeout is not None else config.request_timeout
        self._raw: pyetcd.MultiEndpointEtcd3Client | None = None
        self._lock = threading.Lock()
        self._caller: UnaryCaller | None = None
        # Set when the endpoint did not answer gRPC over libcurl (or is reached through a
        # proxy): its hot calls use grpcio.
        self._caller_refused = grpc_proxied(endpoint)

    def _build(self) -> pyetcd.MultiEndpointEtcd3Client:
        host, port, credentials, options = channel_settings(self.endpoint, self.config)
        endpoint = pyetcd.Endpoint(
            host,
            port,
            secure=credentials is not None,
            creds=credentials,
            time_retry=0,
            opts=options,
        )
        raw = pyetcd.MultiEndpointEtcd3Client(
            endpoints=[endpoint],
            timeout=self.config.connect_timeout,  # bounds the Authenticate call made here
            user=self.config.username or None,
            password=self.config.password or None,
        )
        raw.timeout = self.timeout
        raw.call_credentials = None
        return raw

    @property
    def raw(self) -> pyetcd.MultiEndpointEtcd3Client:
        """The underlying pyetcd client, built (and authenticated) on first use."""
        if self._raw is None:
            with self._lock:
                if self._raw is None:
                    try:
                        self._raw = self._build()
                    except Exception as exc:
                        raise translate(exc, endpoint=self.endpoint) from exc
        return self._raw

    def _reauthenticate(self) -> None:
        request = etcdrpc.AuthenticateRequest(
            name=self.config.username, password=self.config.password
        )
        response = self.raw.authstub.Authenticate(request, self.config.connect_timeout)
        self.raw.metadata = (("token", response.token),)
        logger.info("re-authenticated to etcd at %s", self.endpoint)

    def call(
        self,
        operation: Callable[[pyetcd.MultiEndpointEtcd3Client], T],
        *,
        timeout: float | None = None,
        raw=None,
    ) -> T:
        """Run `operation(raw_client)`, translating failures and renewing an expired token once.

        `timeout` is the deadline the operation gives its call (this client's when None);
        `raw` stands in for the pyetcd client (`_ANONYMOUS`) when the operation needs none.
        """
        started = time.monotonic()
        try:
            try:
                return operation(self.raw if raw is None else raw)
            except grpc.RpcError as exc:
                if not (self.config.has_auth and is_invalid_token(exc)):
                    raise
                self._reauthenticate()
                return operation(self.raw)
        except Exception as exc:
            error = translate(exc, endpoint=self.endpoint)
            if cut_at_deadline(
                exc, elapsed=time.monotonic() - started, deadline=timeout or self.timeout
            ):
                error = EtcdTimeout(endpoint=self.endpoint)
            if isinstance(error, EtcdUnavailable):
                # A channel in reconnect backoff keeps failing after the member is back; a
                # fresh one connects at once (connection refused costs ~2 ms).
                self.close()
            if error is exc:
                raise
            raise error from exc

    def _unary_caller(self) -> UnaryCaller:
        with self._lock:
            if self._caller is None:
                self._caller = UnaryCaller(self.endpoint, self.config, timeout=self.timeout)
            return self._caller

    def _unary(self, method: str, request: bytes, fallback, *, timeout: float | None, first=_UNSET):
        """The serialized reply of a unary call the collector and prober make on their own
        (Status, LeaseLeases, MemberList, HashKV, Alarm), over libcurl (`etcdgateway.curl`:
        half grpcio's CPU per call, and no gRPC channel or its event-engine threads in a worker
        of a fleet without auth); through `fallback(raw, deadline)` on grpcio once the endpoint
        did not answer as gRPC there. `first` is the outcome of a first attempt made already
        (`start_status`): only what follows it (a fallback, a renewed token) is called here."""
        deadline = timeout or self.timeout
        given = [] if first is _UNSET else [first]

        def invoke(raw):
            if not self._caller_refused:
                try:
                    if given:
                        outcome = given.pop()
                        if isinstance(outcome, Exception):
                            raise outcome
                        return outcome
                    caller = self._unary_caller()
                    return caller.call(method, request, timeout=deadline, metadata=raw.metadata)
                except NotGrpc as exc:
                    logger.info("%s: no gRPC over libcurl (%s): grpcio", self.endpoint, exc)
                    self._caller_refused = True
            return fallback(self.raw if raw is _ANONYMOUS else raw, deadline)

        # Without auth the pyetcd client would give the call nothing (no token): its gRPC
        # channel is not built until something needs it.
        anonymous = not self.config.has_auth and not self._caller_refused
        return self.call(invoke, timeout=timeout, raw=_ANONYMOUS if anonymous else None)

    def _message_call(
        self, stub_name: str, method: str, request, *, timeout: float | None = None, first=_UNSET
    ):
        """A unary call of message to message over libcurl (`_unary`), decoded as grpcio's
        stub would; the stub is the fallback."""
        reply_class = _UNARY_REPLIES[(stub_name, method)][1]

        def fallback(raw, deadline):
            bound = getattr(getattr(raw, stub_name), method)
            return bound(request, deadline, metadata=raw.metadata).SerializeToString()

        path = _unary_path(stub_name, method)
        reply = self._unary(
            path, request.SerializeToString(), fallback, timeout=timeout, first=first
        )
        return reply_class.FromString(reply)

    def stub(self, stub_name: str, method: str, request, *, timeout: float | None = None):
        """A raw gRPC stub call (e.g. maintenancestub.MoveLeader) with our timeout and token."""

        def invoke(raw):
            bound = getattr(getattr(raw, stub_name), method)
            return bound(request, timeout or self.timeout, metadata=raw.metadata)

        return self.call(invoke, timeout=timeout)

    # --- the calls every app needs ------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> MemberStatus:
        """Status of the member behind this endpoint (raw stub: no extra MemberList RPC)."""
        return self._status(timeout=timeout)

    def _status(self, *, timeout: float | None, first=_UNSET) -> MemberStatus:
        reply = self._unary(
            _STATUS,
            b"",
            lambda raw, deadline: raw.maintenancestub.Status(
                etcdrpc.StatusRequest(), deadline, metadata=raw.metadata
            ).SerializeToString(),
            timeout=timeout,
            first=first,
        )
        return decode_status(etcdrpc.StatusResponse.FromString(reply))

    # --- Status of many members at once (`etcdgateway.curl.Transfers`) ----------------------------

    def can_start(self) -> bool:
        """Whether `start_status` can be used: the call goes over libcurl and needs no wait
        here first (no token to fetch). Otherwise call `status`, which may wait."""
        return not self._caller_refused and (not self.config.has_auth or self._raw is not None)

    def start_status(
        self, transfers: Transfers, *, done: Callable[[object], None], timeout: float | None = None
    ) -> None:
        """Start Status on `transfers` (only when `can_start`); `done(outcome)` is called from
        the thread running them. Turn the outcome into the answer with `status_settled`."""
        self._start(transfers, _STATUS, done=done, timeout=timeout)

    def start_lease_count(
        self, transfers: Transfers, *, done: Callable[[object], None], timeout: float | None = None
    ) -> None:
        """`start_status` for LeaseLeases: settle the outcome with `lease_count_settled`."""
        self._start(transfers, _LEASE_LEASES, done=done, timeout=timeout)

    def start_members(
        self, transfers: Transfers, *, done: Callable[[object], None], timeout: float | None = None
    ) -> None:
        """`start_status` for MemberList: settle the outcome with `members_settled`."""
        request = etcdrpc.MemberListRequest().SerializeToString()
        path = _unary_path("clusterstub", "MemberList")
        self._start(transfers, path, done=done, timeout=timeout, request=request)

    def _start(
        self, transfers: Transfers, method: str, *, done, timeout: float | None, request=b""
    ) -> None:
        metadata = self._raw.metadata if self.config.has_auth else ()
        timeout = timeout or self.timeout
        self._unary_caller().start(
            transfers, method, request, timeout=timeout, metadata=metadata, done=done
        )

    def settling_calls(self, outcome) -> bool:
        """Whether `status_settled(outcome)` makes a call of its own, and so may wait: on grpcio
        for a peer that is no gRPC server over libcurl, or after renewing an expired token."""
        if isinstance(outcome, NotGrpc):
            return True
        expired = isinstance(outcome, grpc.RpcError) and is_invalid_token(outcome)
        return self.config.has_auth and expired

    def status_settled(self, outcome, *, timeout: float | None = None) -> MemberStatus:
        """The Status a started call's `outcome` means, returned or raised as `status` would."""
        return self._status(timeout=timeout, first=outcome)

    def lease_count_settled(self, outcome, *, timeout: float | None = None) -> int:
        """`status_settled` for `start_lease_count`."""
        return self._lease_count(timeout=timeout, first=outcome)

    def members_settled(self, outcome, *, timeout: float | None = None) -> list[MemberInfo]:
        """`status_settled` for `start_members`."""
        return self._members(timeout=timeout, first=outcome)

    def members(self, *, timeout: float | None = None) -> list[MemberInfo]:
        """MemberList, with isLearner recovered from the wire."""
        return self._members(timeout=timeout)

    def _members(self, *, timeout: float | None, first=_UNSET) -> list[MemberInfo]:
        request = etcdrpc.MemberListRequest()
        response = self._message_call(
            "clusterstub", "MemberList", request, timeout=timeout, first=first
        )
        return [
            MemberInfo(
                id=member.ID,
                name=member.name,
                peer_urls=tuple(member.peerURLs),
                client_urls=tuple(member.clientURLs),
                is_learner=bool(_unknown_varints(member).get(5, 0)),
            )
            for member in response.members
        ]

    def alarms(self, *, timeout: float | None = None) -> list[tuple[int, str]]:
        """The cluster's active alarms (Alarm GET) as (member id, alarm name) pairs."""
        request = etcdrpc.AlarmRequest(action=etcdrpc.AlarmRequest.GET, memberID=0, alarm=0)
        response = self._message_call("maintenancestub", "Alarm", request, timeout=timeout)
        return [(a.memberID, ALARM_NAMES.get(a.alarm, str(a.alarm))) for a in response.alarms]

    def alarm_disarm(self, member_id: int, alarm: str, *, timeout: float | None = None) -> None:
        """Deactivate alarm `alarm` ("NOSPACE", "CORRUPT") of one member (Alarm DEACTIVATE)."""
        request = etcdrpc.AlarmRequest(
            action=etcdrpc.AlarmRequest.DEACTIVATE, memberID=member_id, alarm=ALARM_VALUES[alarm]
        )
        self.stub("maintenancestub", "Alarm", request, timeout=timeout)

    def range_page(
        self,
        start: bytes,
        end: bytes = b"",
        *,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> RangePage:
        """One Range over [start, end) (`end` b"": the key `start` alone; b"\\0": every key
        from `start` on), at most `limit` keys (0: no limit), at `revision` (0: the newest)."""
        request = etcdrpc.RangeRequest(key=start, range_end=end, limit=limit, revision=revision)
        request.keys_only, request.count_only = keys_only, count_only
        request.serializable = serializable
        response = self.stub("kvstub", "Range", request, timeout=timeout)
        return RangePage(
            kvs=response.kvs,  # converted on demand: see RangePage
            more=response.more,
            count=response.count,
            revision=response.header.revision,
        )

    def range_count(self, start: bytes, end: bytes, *, revision: int = 0) -> int:
        """How many keys [start, end) holds (count-only: no key is transferred)."""
        return self.range_page(start, end, count_only=True, revision=revision).count

    def get(self, key: bytes, *, revision: int = 0) -> KeyValue | None:
        """The key with its value and revisions as of `revision` (0: the newest), None when
        absent then. An older revision etcd has compacted raises `EtcdRevisionCompacted`."""
        kvs = self.range_page(key, limit=1, revision=revision).kvs
        return kvs[0] if kvs else None

    def delete(self, key: bytes, *, prefix: bytes | None = None) -> int:
        """Delete `key` and, with `prefix`, every key starting with `prefix`, in one transaction.

        Returns the number of keys deleted (0 when none existed). An empty `prefix` is refused:
        it would mean every key of the cluster.
        """
        return self.remove(key, prefix=prefix).deleted

    def remove(self, key: bytes, *, prefix: bytes | None = None) -> Deletion:
        """`delete`, also telling the store's revision after it (the revision of the deletes
        when any key went; the change journal and the audit log are joined on it)."""
        if prefix == b"":
            raise ValueError("an empty prefix would delete every key")
        ranges = [etcdrpc.DeleteRangeRequest(key=key)]
        if prefix is not None:
            ranges.append(etcdrpc.DeleteRangeRequest(key=prefix, range_end=prefix_end(prefix)))
        request = etcdrpc.TxnRequest(
            success=[etcdrpc.RequestOp(request_delete_range=r) for r in ranges]
        )
        response = self.stub("kvstub", "Txn", request)
        return Deletion(
            deleted=sum(r.response_delete_range.deleted for r in response.responses),
            revision=response.header.revision,
        )

    def put_all(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Put every (key, value) in one transaction (etcd allows 128 ops per txn by default)."""
        request = etcdrpc.TxnRequest(
            success=[
                etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value))
                for key, value in items
            ]
        )
        self.stub("kvstub", "Txn", request)

    def lease_grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        return self.stub("leasestub", "LeaseGrant", etcdrpc.LeaseGrantRequest(TTL=ttl)).ID

    def lease_ttl(self, lease_id: int) -> int:
        """Seconds the lease has left (etcd answers -1 for a lease that expired or never was)."""
        request = etcdrpc.LeaseTimeToLiveRequest(ID=lease_id)
        return self.stub("leasestub", "LeaseTimeToLive", request).TTL

    def compact(self, revision: int, *, physical: bool, timeout: float | None = None) -> None:
        """Compact the history below `revision`; `physical` waits until the space is freed."""
        request = etcdrpc.CompactionRequest(revision=revision, physical=physical)
        self.stub("kvstub", "Compact", request, timeout=timeout)

    def defragment(self) -> None:
        """Defragment this member's backend (bounded by this client's timeout)."""
        self.call(lambda raw: raw.defragment())

    def move_leader(self, target_id: int) -> None:
        """Hand leadership to member `target_id`; only the leader accepts (else precondition)."""
        request = etcdrpc.MoveLeaderRequest(targetID=target_id)
        self.stub("maintenancestub", "MoveLeader", request)

    def hashkv(self, revision: int) -> KeyspaceHash:
        """HashKV of this member's keyspace at `revision` (0: the newest)."""
        request = etcdrpc.HashKVRequest(revision=revision)
        response = self._message_call("maintenancestub", "HashKV", request)
        return KeyspaceHash(
            hash=response.hash,
            revision=response.header.revision,
            compact_revision=response.compact_revision,
        )

    def snapshot(self) -> Iterator[bytes]:
        """This member's backend, chunk by chunk as etcd streams it (32 KiB each).

        Nothing is asked until the first chunk is read; a failure at any chunk raises the
        matching `EtcdError`.
        """
        responses = self.stub("maintenancestub", "Snapshot", etcdrpc.SnapshotRequest())
        try:
            for response in responses:
                yield response.blob
        except EtcdError:
            raise
        except Exception as exc:
            raise translate(exc, endpoint=self.endpoint) from exc

    def auth_enabled(self) -> bool:
        """Whether etcd's own auth is on. etcd 3.4 has no AuthStatus RPC (pyetcd's protos lack
        it too), so an anonymous UserList decides: allowed only while auth is disabled."""

        def anonymous_user_list(raw):
            # No token metadata on purpose: with auth on, etcd answers "user name is empty".
            return raw.authstub.UserList(etcdrpc.AuthUserListRequest(), AUTH_PROBE_TIMEOUT)

        try:
            self.call(anonymous_user_list)
        except EtcdPermissionDenied:  # includes EtcdAuthFailed ("user name is empty")
            return True
        return False

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        ttl: int | None,
        expected_mod_revision: int | None = None,
    ) -> int:
        """Put `value` once; the store's revision after the put. `ttl` None keeps the key's
        current lease, 0 detaches any lease, N > 0 attaches a new N-second lease.

        `expected_mod_revision` makes the put a compare-and-swap (`_put_if`): N > 0 writes only
        while the key's mod_revision is still N, 0 only while the key does not exist.

        Keeping the lease: a transaction with a put in each branch (ignore_lease if the key
        exists, plain otherwise) would carry the value twice and halve the largest value etcd
        accepts. Instead the lease is read first (keys only) and the put is guarded by "the key
        still has that lease"; a lease that changed in between is read again.
        """
        if expected_mod_revision is not None:
            return self._put_if(key, value, ttl=ttl, expected=expected_mod_revision)
        if ttl is not None:
            lease = 0
            if ttl > 0:
                lease = self.lease_grant(ttl)
            put = etcdrpc.PutRequest(key=key, value=value, lease=lease)
            return self.stub("kvstub", "Put", put).header.revision
        for _ in range(LEASE_RACE_ATTEMPTS):
            current = self.stub("kvstub", "Range", etcdrpc.RangeRequest(key=key, keys_only=True))
            lease = current.kvs[0].lease if current.kvs else 0
            # On a missing key etcd compares against lease 0, so a new key needs no own case.
            same_lease = etcdrpc.Compare(
                key=key, target=etcdrpc.Compare.LEASE, result=etcdrpc.Compare.EQUAL, lease=lease
            )
            put = etcdrpc.PutRequest(key=key, value=value, lease=lease)
            request = etcdrpc.TxnRequest(
                compare=[same_lease], success=[etcdrpc.RequestOp(request_put=put)]
            )
            response = self.stub("kvstub", "Txn", request)
            if response.succeeded:
                return response.header.revision
        raise EtcdPreconditionFailed("the key's lease changed during every put attempt; try again")

    def _put_if(self, key: bytes, value: bytes, *, ttl: int | None, expected: int) -> int:
        """The compare-and-swap put: one transaction, the value sent once.

        If the key's mod_revision equals `expected` (etcd compares a missing key as 0), put;
        otherwise read the key in the same transaction and raise `EtcdRevisionConflict` with
        it. Keeping the lease needs no read first here: a key at revision `expected` > 0
        exists when the put applies, so `ignore_lease` keeps its lease atomically (a created
        key, `expected` 0, has none to keep).
        """
        lease = self.lease_grant(ttl) if ttl else 0
        put = etcdrpc.PutRequest(key=key, value=value, lease=lease)
        put.ignore_lease = ttl is None and expected > 0
        unchanged = etcdrpc.Compare(
            key=key,
            target=etcdrpc.Compare.MOD,
            result=etcdrpc.Compare.EQUAL,
            mod_revision=expected,
        )
        request = etcdrpc.TxnRequest(
            compare=[unchanged],
            success=[etcdrpc.RequestOp(request_put=put)],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))],
        )
        response = self.stub("kvstub", "Txn", request)
        if response.succeeded:
            return response.header.revision
        if lease:
            # Best effort: the unused lease would otherwise live out its TTL.
            with contextlib.suppress(EtcdError):
                self.lease_revoke(lease)
        kvs = key_values(response.responses[0].response_range.kvs)
        raise EtcdRevisionConflict(
            expected=expected, current=kvs[0] if kvs else None, endpoint=self.endpoint
        )

    def lease_revoke(self, lease_id: int) -> None:
        """Revoke a lease (its keys are deleted with it)."""
        self.stub("leasestub", "LeaseRevoke", etcdrpc.LeaseRevokeRequest(ID=lease_id))

    def watch(
        self, start: bytes, end: bytes = b"", *, start_revision: int = 0, prev_kv: bool = False
    ) -> Watch:
        """A watch over [start, end) (`end` as in `range_page`) from `start_revision` (0: from
        now on), with each event's previous value when `prev_kv`. Iterate the returned `Watch`
        for `WatchBatch`es and close it when done (it is a context manager)."""
        return open_watch(
            self,
            start,
            end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            ready_timeout=self.config.connect_timeout,
        )

    def lease_count(self, *, timeout: float | None = None) -> int:
        """Number of live leases (LeaseLeases, which pyetcd's protos lack: a raw channel call).

        The reply is decoded as a bare message, so every field is "unknown"; field 2 (leases)
        repeats once per lease.
        """
        return self._lease_count(timeout=timeout)

    def _lease_count(self, *, timeout: float | None, first=_UNSET) -> int:
        def leases(raw, deadline):
            method = raw.channel.unary_unary(_LEASE_LEASES, request_serializer=lambda _: b"")
            return method(None, timeout=deadline, metadata=raw.metadata)

        reply = self._unary(_LEASE_LEASES, b"", leases, timeout=timeout, first=first)
        response = etcdrpc.ResponseHeader.FromString(reply)
        return sum(1 for f in UnknownFieldSet(response) if f.field_number == 2)

    def close(self) -> None:
        with self._lock:
            raw, self._raw = self._raw, None
            caller, self._caller = self._caller, None
        if raw is not None:
            raw.close()
        if caller is not None:
            caller.close()
