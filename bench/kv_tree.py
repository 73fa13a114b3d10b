"""KV at scale: our `keys`, `list` and `search` vs `etcdctl get --prefix --keys-only`, same run.

    .venv/bin/python bench/kv_tree.py [--runs 5] [--keys 100000] [--json out.json]

Starts a private 3-member etcd cluster, loads `--keys` keys in a Kubernetes-like mix
(`/registry/<kind>/<ns>/<name>`, one directory of 10 000 children `/registry/pods/default/`),
then times through the real DRF views (in-process, authenticated):
  1. `GET /api/kv/v3/keys` (the full keys-only tree, streamed) vs etcdctl over the whole keyspace;
  2. one `GET /api/kv/v3/list` page (limit 5000, and the default 500) of the 10 k-children
     directory, vs etcdctl listing that directory;
  3. `GET /api/kv/v3/search` for a substring that matches nothing (a full scan of the keyspace).
Prints medians, ratios, and this process's peak RSS (the server side's memory for these calls).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="kv-bench-data-"))

import warnings  # noqa: E402

import django  # noqa: E402

warnings.filterwarnings("ignore", message="No directory at")

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from devtools.localcluster import LocalEtcdCluster  # noqa: E402
from etcdgateway import cluster_gateway, reset_gateways  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(total: int) -> None:
    pods = [f"/registry/pods/default/pod-{i:05d}" for i in range(10_000)]
    rest = []
    kind = 0
    while len(pods) + len(rest) < total:
        for ns in range(100):
            for name in range(100):
                rest.append(f"/registry/kind{kind}/ns{ns:02d}/name-{name:03d}")
        kind += 1
    keys = pods + rest[: total - len(pods)]
    gateway = cluster_gateway()
    value = b"x" * 200
    for start in range(0, len(keys), 128):
        gateway.put_all((k.encode(), value) for k in keys[start : start + 128])


def timed(function, runs: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def timed_pair(ours, theirs, runs: int) -> tuple[float, object, float, object]:
    """Both sides alternating, run by run, so drift on the shared machine hits both alike."""
    mine, other, a, b = [], [], None, None
    for _ in range(runs):
        started = time.perf_counter()
        a = ours()
        mine.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        b = theirs()
        other.append((time.perf_counter() - started) * 1000)
    return statistics.median(mine), a, statistics.median(other), b


ETCDCTL_RSS = [0.0]


def etcdctl(endpoint: str, prefix: str) -> int:
    """Run etcdctl, reading its output like a client would; its own peak RSS via /usr/bin/time."""
    process = subprocess.Popen(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "etcdctl",
            f"--endpoints={endpoint}",
            "get",
            prefix,
            "--prefix",
            "--keys-only",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "/usr/bin")},
    )
    output, errors = process.communicate()
    assert process.returncode == 0, errors
    ETCDCTL_RSS[0] = max(ETCDCTL_RSS[0], int(errors.split()[-1]) / 1024)
    return len(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kv-bench-etcd-") as base:
        cluster = LocalEtcdCluster(Path(base)).start()
        try:
            settings.ETCD_ENDPOINTS = list(cluster.client_urls)
            reset_gateways()
            started = time.perf_counter()
            load(args.keys)
            print(f"loaded {args.keys} keys in {time.perf_counter() - started:.1f} s")
            endpoint = cluster.client_urls[0]
            client = APIClient(SERVER_NAME="localhost")
            client.force_authenticate(user=get_user_model()(username="bench"))
            rss_before = peak_rss_mib()

            def keys():
                response = client.get("/api/kv/v3/keys")
                assert response.status_code == 200
                return sum(len(chunk) for chunk in response.streaming_content)

            def list_page(limit=5000):
                response = client.get(
                    "/api/kv/v3/list", {"prefix": "/registry/pods/default", "limit": limit}
                )
                assert response.status_code == 200, response.content
                return len(response.json()["nodes"])

            def search():
                response = client.get(
                    "/api/kv/v3/search", {"prefix": "", "q": "no-such-key", "limit": 100}
                )
                assert response.status_code == 200
                return response.json()["scanned"]

            ours_keys, size, base_keys, base_size = timed_pair(
                keys, lambda: etcdctl(endpoint, ""), args.runs
            )
            ours_list, listed, base_list, _ = timed_pair(
                list_page, lambda: etcdctl(endpoint, "/registry/pods/default/"), args.runs
            )
            ours_default, _ = timed(lambda: list_page(500), args.runs)
            ours_search, scanned = timed(search, args.runs)
            child_rss = ETCDCTL_RSS[0]

            print(
                f"keys tree    ours {ours_keys:7.0f} ms ({size / 1e6:.2f} MB JSON)   "
                f"etcdctl {base_keys:6.0f} ms ({base_size / 1e6:.2f} MB)   "
                f"ratio {ours_keys / base_keys:.2f}x"
            )
            print(
                f"list page    ours {ours_list:7.1f} ms ({listed} of 10000 children)   "
                f"etcdctl (all 10000) {base_list:6.1f} ms   ratio {ours_list / base_list:.2f}x"
            )
            print(f"list page    ours {ours_default:7.1f} ms at the default limit (500)")
            print(
                f"search       ours {ours_search:7.0f} ms (scanned {scanned} keys)   "
                f"ratio to etcdctl keys-only {ours_search / base_keys:.2f}x"
            )
            print(
                f"peak RSS     this process {peak_rss_mib():.0f} MiB "
                f"(before the KV calls {rss_before:.0f} MiB); etcdctl {child_rss:.0f} MiB"
            )
            if args.json:
                figures = {
                    "keys": args.keys,
                    "runs": args.runs,
                    "keys_tree_ms": ours_keys,
                    "keys_tree_bytes": size,
                    "etcdctl_keys_ms": base_keys,
                    "etcdctl_keys_bytes": base_size,
                    "keys_tree_ratio": ours_keys / base_keys,
                    "list_page_5000_ms": ours_list,
                    "etcdctl_dir_ms": base_list,
                    "list_page_500_ms": ours_default,
                    "search_full_scan_ms": ours_search,
                    "search_scanned": scanned,
                    "peak_rss_mib": peak_rss_mib(),
                    "rss_before_kv_mib": rss_before,
                    "etcdctl_peak_rss_mib": child_rss,
                }
                args.json.write_text(json.dumps(figures, indent=2))
        finally:
            reset_gateways()
            cluster.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
