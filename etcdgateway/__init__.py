"""The one module that talks to etcd.

Apps call `cluster_gateway()` (the configured cluster) or `cluster_gateway(config)` (any other,
e.g. a user's KV tab) and never build clients themselves. Failures surface as `EtcdError`
subclasses that the API's exception handler maps to 503/504/403/404/4xx.
"""

import threading

from etcdgateway.client import EtcdClient, MemberInfo, MemberStatus
from etcdgateway.cluster import ClusterGateway, EndpointHealth
from etcdgateway.config import ClusterConfig, normalise_endpoint, split_endpoint
from etcdgateway.curl import Transfers
from etcdgateway.errors import (
    EtcdAuthFailed,
    EtcdError,
    EtcdFutureRevision,
    EtcdInvalidRequest,
    EtcdNotFound,
    EtcdPermissionDenied,
    EtcdPreconditionFailed,
    EtcdRequestTooLarge,
    EtcdResponseTooLarge,
    EtcdRevisionCompacted,
    EtcdRevisionConflict,
    EtcdServerTimeout,
    EtcdSpaceExceeded,
    EtcdTimeout,
    EtcdUnavailable,
    EtcdWatchCompacted,
)
from etcdgateway.kv import (
    Deletion,
    KeyspaceHash,
    KeyValue,
    RangePage,
    WatchBatch,
    WatchEvent,
    prefix_end,
)
from etcdgateway.watch import Watch

_gateways: dict[ClusterConfig, ClusterGateway] = {}
_gateways_lock = threading.Lock()


def cluster_gateway(config: ClusterConfig | None = None) -> ClusterGateway:
    """The shared gateway for `config` (default: the cluster configured by ETCD_* settings)."""
    config = config or ClusterConfig.from_settings()
    with _gateways_lock:
        gateway = _gateways.get(config)
        if gateway is None:
            gateway = _gateways[config] = ClusterGateway(config)
    return gateway


def forget_gateway(config: ClusterConfig) -> None:
    """Close and drop the gateway of `config` (a KV tab that was deleted or re-configured)."""
    with _gateways_lock:
        gateway = _gateways.pop(config, None)
    if gateway is not None:
        gateway.close()


def reset_gateways() -> None:
    """Close every cached client (after fork, or when settings change in tests)."""
    with _gateways_lock:
        for gateway in _gateways.values():
            gateway.close()
        _gateways.clear()


__all__ = [
    "ClusterConfig",
    "ClusterGateway",
    "Deletion",
    "EndpointHealth",
    "EtcdAuthFailed",
    "EtcdClient",
    "EtcdError",
    "EtcdFutureRevision",
    "EtcdInvalidRequest",
    "EtcdNotFound",
    "EtcdPermissionDenied",
    "EtcdPreconditionFailed",
    "EtcdRequestTooLarge",
    "EtcdResponseTooLarge",
    "EtcdRevisionCompacted",
    "EtcdRevisionConflict",
    "EtcdServerTimeout",
    "EtcdSpaceExceeded",
    "EtcdTimeout",
    "EtcdUnavailable",
    "EtcdWatchCompacted",
    "KeyValue",
    "KeyspaceHash",
    "MemberInfo",
    "MemberStatus",
    "RangePage",
    "Transfers",
    "Watch",
    "WatchBatch",
    "WatchEvent",
    "cluster_gateway",
    "forget_gateway",
    "normalise_endpoint",
    "prefix_end",
    "reset_gateways",
    "split_endpoint",
]
