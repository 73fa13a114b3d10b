"""The fleet's rounds in one process: CPU per member of this tree against a base revision.

    .venv/bin/python bench/rounds.py                   # the working tree against HEAD
    .venv/bin/python bench/rounds.py --base 2f32b52    # against any revision
    .venv/bin/python bench/rounds.py --chunk 8,40      # also the collection in rounds of N

One fleet of real etcd clusters (30 one-member and 5 three-member by default) serves both
sides. Each side, in turn, runs in a fresh process of its own tree against a fresh database:
migrate, register the clusters through `POST /api/clusters`, then on the process's own thread
a collection round (`_collect_round`), a health round (`_probe_round`) and an alert round
(`evaluate_all`), each measured by `time.process_time()` (every thread of the process) and
divided by the members. The sides alternate (`--passes`), so both see the same machine; the
ratio is this tree's median against the base's.

Why in one process: the scale run (bench/fleet.py) is the goal's measure, but on a shared
2-vCPU machine two of its five-minute runs of the same code differ by 5 % and more, while
most single changes are worth less (docs/PERFORMANCE.md, "The rounds in one process").
This measures the rounds' own code; Celery, beat and the journal are left out.
"""

import argparse
import functools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("PERF_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = "etcdmonitor_rounds_bench"
REDIS = "redis://127.0.0.1:6379/9"  # makes the settings a worker's (not embedded); never used
SLOW_RAFT = ["--heartbeat-interval=100", "--election-timeout=1000"]
MODES = ("collect", "probe", "eval")


def chunked_modes(chunks: list[int]) -> tuple[str, ...]:
    """With --chunk: the collection in rounds of each of those many clusters."""
    return tuple(f"collect/{size}" for size in chunks)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- one side, in a process of its own tree -------------------------------------------------------


def chunk_sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size.strip()]


def side(urls: list[list[str]], rounds: int, chunks: list[int]) -> dict:
    """Set up this tree against the fleet `urls` and measure its rounds."""
    import base64

    import httpx
    import psycopg

    root = Path.cwd()
    work = Path(tempfile.mkdtemp(prefix="rounds-bench-"))
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "DJANGO_", "CELERY_"))}
    env.update(
        DATABASE_URL=f"{PG}/{DB_NAME}",
        DATA_DIR=str(work / "data"),
        ETCD_ENDPOINTS=",".join(urls[0]),
        CELERY_BROKER_URL=REDIS,
        COLLECTOR_INTERVAL="15",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        KV_TABS_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        LOG_LEVEL="WARNING",
        JOURNAL_ENABLED="false",
        PYTHONPATH=str(root),
    )

    def manage(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    manage("migrate", "--noinput")
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from accounts.services import session_create\n"
        "user = get_user_model().objects.create_superuser('rounds-bench', password=None)\n"
        "print(session_create(user=user)[0])\n"
    )
    token = manage("shell", "-c", script).strip().splitlines()[-1]
    sys.path.insert(0, str(ROOT))
    from fleet import wait_http  # bench/fleet.py, beside this file

    from devtools.localcluster import free_port

    port = free_port()
    with open(work / "web.log", "w") as web_log:
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runmonitor", "--bind", f"127.0.0.1:{port}"],
            cwd=root,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        wait_http(f"http://127.0.0.1:{port}/healthz")
        for index, endpoints in enumerate(urls[1:], start=1):
            body = {"name": f"rounds-{index:03d}", "endpoints": endpoints, "monitored": True}
            response = api.post("/api/clusters", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"register: {response.status_code} {response.text}")
    finally:
        web.terminate()
        web.wait(timeout=30)

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "etcdmonitor_site.settings"
    sys.path.insert(0, str(root))
    import django

    django.setup()
    from concurrent.futures import Future, wait

    from celery.signals import worker_process_init

    from alerts import services as alert_services
    from monitoring import services

    worker_process_init.send(sender=None)  # what a worker's child process runs at start
    ids = services.monitored_cluster_ids()
    members = sum(len(endpoints) for endpoints in urls)

    def fleet_round(work_of) -> None:
        runs = {cluster_id: Future() for cluster_id in ids}
        work_of(runs=runs)
        done, pending = wait(runs.values(), timeout=60)
        if pending or any(run.exception() for run in done):
            raise RuntimeError("a round left a cluster unfinished or failed")

    def chunked_round(chunk: int) -> None:
        # As a worker runs the collection: one round per `chunk` clusters, one after another.
        for start in range(0, len(ids), chunk):
            runs = {cluster_id: Future() for cluster_id in ids[start : start + chunk]}
            services._collect_round(runs=runs)
            done, pending = wait(runs.values(), timeout=60)
            if pending or any(run.exception() for run in done):
                raise RuntimeError("a round left a cluster unfinished or failed")

    calls = {
        "collect": lambda: fleet_round(services._collect_round),
        "probe": lambda: fleet_round(services._probe_round),
        "eval": alert_services.evaluate_all,
    }
    for size, mode in zip(chunks, chunked_modes(chunks), strict=True):
        calls[mode] = functools.partial(chunked_round, size)
    modes = (*MODES, *chunked_modes(chunks))
    for _ in range(3):  # member discovery, first sights, the series the rules read
        for mode in ("collect", "probe"):
            calls[mode]()
            time.sleep(1.1)
    calls["eval"]()  # its first round makes each cluster's evaluation row: not measured
    spent: dict[str, list[float]] = {mode: [] for mode in modes}
    profiled, _, profile_path = os.environ.get("ROUNDS_PROFILE", "").partition(":")
    profile = None
    if profiled:
        import cProfile

        profile = cProfile.Profile(time.process_time)  # CPU, not the wall (etcd answers meanwhile)
    for _ in range(rounds):
        for mode in modes:
            time.sleep(1.1)  # a new second: a collection round's samples need their own ts
            started = time.process_time()
            if mode == profiled:
                profile.runcall(calls[mode])
            else:
                calls[mode]()
            spent[mode].append((time.process_time() - started) * 1000 / members)
    if profile is not None:
        profile.dump_stats(profile_path)
    shutil.rmtree(work, ignore_errors=True)
    return {mode: statistics.median(values) for mode, values in spent.items()}


# --- the comparison -------------------------------------------------------------------------------


def compare(args) -> dict:
    sys.path.insert(0, str(ROOT))
    from devtools.localcluster import LocalEtcdCluster

    base_tree = Path(tempfile.mkdtemp(prefix="rounds-base-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", str(base_tree), args.base],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    work = Path(tempfile.mkdtemp(prefix="rounds-fleet-"))
    clusters = []
    try:
        log(f"starting {args.singles} one-member and {args.triples} three-member etcd clusters")
        for index in range(args.singles + args.triples):
            size = 1 if index < args.singles else 3
            cluster = LocalEtcdCluster(work / f"etcd-{index:03d}", size=size, extra_args=SLOW_RAFT)
            clusters.append(cluster.start(timeout=60))
        urls = [list(cluster.client_urls) for cluster in clusters]
        (work / "urls.json").write_text(json.dumps(urls))
        results: dict[str, list[dict]] = {"base": [], "this": []}
        for number in range(args.passes):
            for name, tree in (("base", base_tree), ("this", ROOT)):
                log(f"pass {number + 1}: {name}")
                side_env = dict(os.environ)
                if args.profile:
                    side_env["ROUNDS_PROFILE"] = f"{args.profile}:{args.profile_out}.{name}"
                out = subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "rounds.py"),
                        "--side",
                        str(work / "urls.json"),
                        "--rounds",
                        str(args.rounds),
                        "--chunk",
                        args.chunk,
                    ],
                    cwd=tree,
                    env=side_env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                results[name].append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for cluster in clusters:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)  # etcd preallocates its WAL: GBs for a fleet
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(base_tree)],
            cwd=ROOT,
            capture_output=True,
        )
    report = {"base": args.base, "members": sum(len(u) for u in urls), "clusters": len(urls)}
    for mode in (*MODES, *chunked_modes(chunk_sizes(args.chunk))):
        base = statistics.median(r[mode] for r in results["base"])
        this = statistics.median(r[mode] for r in results["this"])
        report[mode] = {
            "base_ms_per_member": round(base, 3),
            "this_ms_per_member": round(this, 3),
            "ratio": round(this / base, 3) if base else None,
            "passes": {name: [round(r[mode], 3) for r in rs] for name, rs in results.items()},
        }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the revision to compare against")
    parser.add_argument("--singles", type=int, default=30)
    parser.add_argument("--triples", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=12, help="measured rounds of each kind")
    parser.add_argument("--passes", type=int, default=2, help="alternations of the two sides")
    parser.add_argument(
        "--profile",
        help=f"cProfile this kind of round, one of {', '.join(MODES)} or collect/N with --chunk "
        "(its time is inflated)",
    )
    parser.add_argument(
        "--profile-out",
        default=str(Path(tempfile.gettempdir()) / "rounds"),
        help="pstats files: this path + .base / .this",
    )
    parser.add_argument(
        "--chunk",
        default="",
        help="also measure the collection in rounds of these many clusters (comma-separated)",
    )
    parser.add_argument("--side", type=Path, help=argparse.SUPPRESS)  # one side, internal
    args = parser.parse_args()
    if args.side is not None:
        urls = json.loads(args.side.read_text())
        print(json.dumps(side(urls, args.rounds, chunk_sizes(args.chunk))))
        return 0
    report = compare(args)
    print(json.dumps(report, indent=2))
    for mode in (*MODES, *chunked_modes(chunk_sizes(args.chunk))):
        figures = report[mode]
        print(
            f"{mode:15} CPU per member per round: {figures['this_ms_per_member']:.3f} ms, "
            f"base {figures['base_ms_per_member']:.3f} ms, ratio {figures['ratio']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
