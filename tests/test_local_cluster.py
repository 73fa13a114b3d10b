"""The test fixture's etcd launcher must not make tests fail by losing a port race."""

import socket

from devtools.localcluster import LocalEtcdCluster, _ephemeral_range_start, free_port


def test_picked_ports_lie_below_the_kernel_ephemeral_range():
    """Outgoing connections take ephemeral ports: one picked there can be gone before etcd binds."""
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert max(ports) < _ephemeral_range_start()


def test_a_cluster_whose_peer_port_was_taken_starts_on_new_ports(tmp_path):
    cluster = LocalEtcdCluster(tmp_path / "etcd", size=1)
    taken = cluster.members[0].peer_port
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    try:
        cluster.start(timeout=20)
        assert cluster.members[0].peer_port != taken
        assert cluster.members[0].running
    finally:
        squatter.close()
        cluster.remove()
