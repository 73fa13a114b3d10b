"""`etcdctl` against a test cluster, for the fixtures that set up etcd users, roles and auth."""

import subprocess

from etcdgateway.localcluster import etcd_binary


def etcdctl(endpoint: str, *args: str, user: str | None = None) -> None:
    """Run one etcdctl (API v3) command; raises CalledProcessError on failure."""
    command = [etcd_binary("etcdctl"), f"--endpoints={endpoint}"]
    if user:
        command.append(f"--user={user}")
    subprocess.run(
        [*command, *args], check=True, capture_output=True, env={"ETCDCTL_API": "3"}, timeout=30
    )
