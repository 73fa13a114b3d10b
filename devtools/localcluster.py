"""Start a local multi-member etcd cluster from the `etcd` binary (tests and `make run`).

Members listen on loopback only, with v2 enabled and fast raft timers. Processes are tracked by
PID and stopped with SIGKILL (a graceful stop of a whole cluster takes 5-9 s; data is throwaway).

    python -m devtools.localcluster --data-dir data/dev-etcd --client-ports 2379,22379,32379
"""

import argparse
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

_LOWEST_PICKED_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nothing listens on, chosen below the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is in the ephemeral range, so between this check and
    etcd's own bind any outgoing connection may take it; that race made members exit with
    "address already in use" under load. Below the range only another listener can collide.
    """
    highest = _ephemeral_range_start() - 1
    for _ in range(200):
        port = random.randint(_LOWEST_PICKED_PORT, highest)  # noqa: S311 - not a secret
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {_LOWEST_PICKED_PORT}-{highest}")


def etcd_binary(name: str = "etcd") -> str:
    """`etcd` (or `etcdctl`) from ETCD_BIN_DIR when set (`make test-etcd35`), else from PATH."""
    bin_dir = os.environ.get("ETCD_BIN_DIR")
    if bin_dir:
        found = os.path.join(bin_dir, name)
        if not os.access(found, os.X_OK):
            # A set but wrong ETCD_BIN_DIR must not silently test the system's etcd instead.
            raise RuntimeError(f"ETCD_BIN_DIR={bin_dir} has no executable {name}")
        return found
    fallback = f"/usr/bin/{name}"
    found = shutil.which(name) or (fallback if os.path.exists(fallback) else None)
    if not found:
        package = "etcd-server" if name == "etcd" else "etcd-client"
        raise RuntimeError(f"{name} binary not found (apt-get install {package})")
    return found


def etcd_version(binary: str | None = None) -> str:
    """The version `etcd --version` reports, e.g. "3.5.30"."""
    output = subprocess.run(
        [binary or etcd_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    first = output.splitlines()[0] if output else ""
    return first.rpartition(" ")[2]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for an https member: server cert/key, the CA, and a client cert for mTLS."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_test_certificates(directory: Path) -> TlsFiles:
    """A throwaway CA, a server cert for 127.0.0.1/localhost and a client cert (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    (directory / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    for name, subject in (("server", "/CN=localhost"), ("client", "/CN=etcdmonitor-client")):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            f"{name}.pem",
        )
    return TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


def is_healthy(
    client_url: str, timeout: float = 1.0, context: ssl.SSLContext | None = None
) -> bool:
    try:
        with urllib.request.urlopen(
            f"{client_url}/health", timeout=timeout, context=context
        ) as response:
            return b'"true"' in response.read()
    except OSError:
        return False


@dataclass
class LocalMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = None
    extra_args: list[str] = field(default_factory=list)
    scheme: str = "http"
    host: str = "127.0.0.1"  # members may get a loopback address each (127.0.0.2, …)
    metrics_port: int | None = None  # --listen-metrics-urls http://host:port (as kubeadm does)
    binary: str | None = None  # another etcd than etcd_binary()'s, e.g. to mix versions

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def metrics_url(self) -> str | None:
        """The plain-HTTP metrics listener's /metrics, when started with one."""
        return f"http://{self.host}:{self.metrics_port}/metrics" if self.metrics_port else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of `pid` is in the stopped state (Linux /proc; elsewhere True)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return True
    for task in tasks.iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        if stat[stat.rindex(")") + 2] not in "Tt":
            return False
    return True


class LocalEtcdCluster:
    """A throwaway etcd cluster on free (or given) loopback ports under `base_dir`."""

    def __init__(
        self,
        base_dir: Path,
        size: int = 3,
        client_ports: list[int] | None = None,
        enable_v2: bool = True,
        extra_args: list[str] | None = None,
        tls: TlsFiles | None = None,
        hosts: list[str] | None = None,
        metrics_ports: list[int] | None = None,
        binaries: list[str | None] | None = None,
    ):
        self.base_dir = Path(base_dir)
        self.tls = tls
        self.token = f"etcdmonitor-{uuid.uuid4().hex[:12]}"
        self.enable_v2 = enable_v2
        self._picked_client_ports = not client_ports
        ports = client_ports or [free_port() for _ in range(size)]
        self.members = [
            LocalMember(
                name=f"m{i + 1}",
                client_port=port,
                peer_port=free_port(),
                data_dir=self.base_dir / f"m{i + 1}.etcd",
                log_path=self.base_dir / f"m{i + 1}.log",
                extra_args=list(extra_args or []),
                scheme="https" if tls else "http",
                host=hosts[i] if hosts else "127.0.0.1",
                metrics_port=metrics_ports[i] if metrics_ports else None,
                binary=binaries[i] if binaries else None,
            )
            for i, port in enumerate(ports)
        ]

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def endpoints(self) -> str:
        return ",".join(self.client_urls)

    def _command(self, member: LocalMember, state: str) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [
            member.binary or etcd_binary(),
            "--name",
            member.name,
            "--data-dir",
            str(member.data_dir),
            "--listen-client-urls",
            member.client_url,
            "--advertise-client-urls",
            member.client_url,
            "--listen-peer-urls",
            member.peer_url,
            "--initial-advertise-peer-urls",
            member.peer_url,
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            self.token,
            f"--enable-v2={str(self.enable_v2).lower()}",
            "--logger=zap",
            "--log-outputs=stderr",
            "--heartbeat-interval=20",
            "--election-timeout=200",
            *self._tls_args(),
            *self._metrics_args(member),
            *member.extra_args,
        ]

    def _metrics_args(self, member: LocalMember) -> list[str]:
        if not member.metrics_port:
            return []
        return ["--listen-metrics-urls", f"http://{member.host}:{member.metrics_port}"]

    def _tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return [
            "--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key),
            "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth",
        ]  # fmt: skip

    def start_member(
        self, member: LocalMember, *, detach: bool = False, state: str | None = None
    ) -> None:
        """Start `member`; `state` "existing" joins a member added by MemberAdd (its data
        directory does not exist yet, which would otherwise mean a new cluster)."""
        state = state or ("existing" if member.data_dir.exists() else "new")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(member.log_path, "ab")  # noqa: SIM115 - owned by the child process
        member.process = subprocess.Popen(
            self._command(member, state),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
        log.close()

    def start(self, *, timeout: float = 30.0, detach: bool = False) -> "LocalEtcdCluster":
        for attempt in range(3):
            for member in self.members:
                self.start_member(member, detach=detach)
            try:
                self.wait_healthy(timeout=timeout)
                return self
            except RuntimeError:
                if attempt == 2 or not self._lost_a_port_race():
                    raise
                self._start_over_on_new_ports()
        return self

    def _lost_a_port_race(self) -> bool:
        """Whether a member exited because another process bound one of its ports first."""
        for member in self.members:
            if member.running or not member.log_path.exists():
                continue
            if b"address already in use" in member.log_path.read_bytes():
                return True
        return False

    def _start_over_on_new_ports(self) -> None:
        self.stop()
        for member in self.members:
            shutil.rmtree(member.data_dir, ignore_errors=True)
            member.log_path.unlink(missing_ok=True)
            member.peer_port = free_port()
            if self._picked_client_ports:
                member.client_port = free_port()

    def wait_healthy(self, members: list[LocalMember] | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(members or self.members)
        while pending:
            context = self.tls.client_context() if self.tls else None
            pending = [
                m for m in pending if not is_healthy(m.client_url, timeout=0.5, context=context)
            ]
            if not pending:
                return
            for member in pending:
                if member.process is not None and member.process.poll() is not None:
                    raise RuntimeError(f"etcd {member.name} exited; see {member.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd members not healthy: {[m.name for m in pending]}")
            time.sleep(0.1)

    def kill_member(self, member: LocalMember) -> None:
        if member.running:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait()

    def pause_member(self, member: LocalMember, *, timeout: float = 5.0) -> None:
        """SIGSTOP: the member keeps its sockets open but never answers (a hung node).

        Returns once every thread of it is stopped: a thread finishing a slow syscall (an
        fsync under load) only stops when it returns, and a test must not race that.
        """
        if member.process is None or member.process.poll() is not None:
            raise RuntimeError(f"etcd {member.name} is not running; see {member.log_path}")
        member.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not _all_threads_stopped(member.process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd {member.name} did not stop within {timeout} s")
            time.sleep(0.01)

    def resume_member(self, member: LocalMember) -> None:
        member.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for member in self.members:
            if member.running:
                member.process.send_signal(signal.SIGCONT)
            self.kill_member(member)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--client-ports", default="2379,22379,32379")
    args = parser.parse_args(argv)
    ports = [int(p) for p in args.client_ports.split(",")]
    cluster = LocalEtcdCluster(args.data_dir, client_ports=ports)
    if all(m.data_dir.exists() for m in cluster.members):
        # Restarting an existing dev cluster: keep the peer ports it was created with.
        saved = (args.data_dir / "peer-ports").read_text().split(",")
        for member, peer_port in zip(cluster.members, saved, strict=True):
            member.peer_port = int(peer_port)
    else:
        shutil.rmtree(args.data_dir, ignore_errors=True)
        args.data_dir.mkdir(parents=True)
        (args.data_dir / "peer-ports").write_text(
            ",".join(str(m.peer_port) for m in cluster.members)
        )
    cluster.start(detach=True)
    (args.data_dir / "pids").write_text(" ".join(str(m.process.pid) for m in cluster.members))
    print(f"dev etcd cluster healthy at {cluster.endpoints} (pids in {args.data_dir / 'pids'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
