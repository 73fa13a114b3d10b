"""Writes and etcd calls of the monitoring app."""

import logging

from etcdgateway import cluster_gateway

logger = logging.getLogger(__name__)


def etcd_endpoints_probe() -> dict[str, bool]:
    """Probe every configured endpoint (Status RPC) so failover order and /healthz stay fresh.

    Returns {endpoint: healthy}. Transitions are logged by the gateway.
    """
    health = cluster_gateway().probe()
    return {endpoint: bool(result.healthy) for endpoint, result in health.items()}
