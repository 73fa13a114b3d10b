"""`etcdctl` against a test cluster, for the fixtures that set up etcd users, roles and auth."""

import subprocess

from devtools.localcluster import etcd_binary


def etcdctl(endpoint: str, *args: str, user: str | None = None, stdin: bytes | None = None) -> None:
    """Run one etcdctl (API v3) command; raises CalledProcessError on failure.

    `stdin` feeds e.g. `put KEY` its value (an argument is capped at 128 KiB by the kernel).
    """
    command = [etcd_binary("etcdctl"), f"--endpoints={endpoint}"]
    if user:
        command.append(f"--user={user}")
    subprocess.run(
        [*command, *args],
        check=True,
        capture_output=True,
        env={"ETCDCTL_API": "3"},
        timeout=30,
        input=stdin,
    )
