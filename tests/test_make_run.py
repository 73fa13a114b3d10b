"""`make run` as a newcomer uses it: it serves, and Ctrl-C stops the server and the dev etcd
cluster it started without make reporting a failure."""

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from devtools.localcluster import free_port
from tests.test_project import clean_env

ROOT = Path(__file__).resolve().parents[1]


def _wait_for(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert process.poll() is None, "make run exited early"
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_make_run_serves_and_ctrl_c_stops_it_and_the_dev_cluster_quietly(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    etcd_ports = ",".join(str(free_port()) for _ in range(3))
    env = clean_env(DATA_DIR=str(data_dir), BIND=f"127.0.0.1:{port}", DEV_ETCD_PORTS=etcd_ports)
    # -o: the venv is the suite's own; `make run` must not reinstall into it here.
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed-run", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as in a terminal
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz", process, timeout=150)
        pids = [int(p) for p in (data_dir / "dev-etcd" / "pids").read_text().split()]
        assert all(_alive(pid) for pid in pids)

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        output = process.communicate(timeout=90)[0].decode(errors="replace")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert f"initial password is in {data_dir}/initial-admin-password" in output
    assert "make: ***" not in output and "Error 130" not in output, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    assert "stopped the dev etcd cluster" in output
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids), "the dev etcd cluster outlived make run"
    assert (data_dir / "dev-etcd" / "m1.etcd").is_dir(), "the dev cluster's data is kept"
