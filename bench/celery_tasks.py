"""What a Celery task costs a real worker: CPU per task of this tree against a base revision.

    .venv/bin/python bench/celery_tasks.py                   # the working tree against HEAD
    .venv/bin/python bench/celery_tasks.py --base 117646d    # against any revision

Each side, in turn, starts a real worker of its own tree (prefork, two children, as compose
and bench/fleet.py run it) against Redis and a fresh, migrated PostgreSQL database. The
worker idles for --idle seconds, then gets --tasks of the periodic jobs that read and write
only the database (outbox delivery, the alert and session purges), --rate a second, as beat
would send them. What the worker's process tree (the consumer and its children, /proc) spent
meanwhile, less its idle rate, divided by the tasks, is a task's cost: the broker's message,
the hand-off to a child, the task's own database work and its result. `--noop` sends a task
that does nothing instead (a collection chunk of no clusters): Celery's part alone. The sides
alternate (--passes), so both see the same machine; the ratio is this tree's median against
the base's.

Why: the fleet's workers run ~20 such tasks every 15 s (docs/PERFORMANCE.md); their cost
beside the rounds is what the scale run's "main threads" figure holds, and a scale run cannot
resolve a change of a few percent in it.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import PG, WORKER_FLAGS, log, tree_cpu_seconds  # noqa: E402 - bench/fleet.py

DB_NAME = "etcdmonitor_tasks_bench"
REDIS = os.environ.get("TASKS_REDIS", "redis://127.0.0.1:6379/8")
TASKS = (
    ("notifications.tasks.deliver_notifications", ()),
    ("alerts.tasks.purge_alerts", ()),
    ("accounts.tasks.purge_expired_sessions", ()),
)
# --noop: a collection chunk of no clusters, which touches neither the database nor etcd.
NOOP = (("monitoring.tasks.collect_clusters", ([],)),)
_SUCCEEDED = re.compile(r"Task (\S+)\[[^\]]+\] succeeded in")


def fresh_env(work: Path, tree: Path) -> dict:
    import psycopg
    import redis

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    redis.Redis.from_url(REDIS).flushdb()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ETCD_", "DJANGO_", "CELERY_", "DATABASE_"))
    }
    env.update(
        DATABASE_URL=f"{PG}/{DB_NAME}",
        DATA_DIR=str(work / "data"),
        ETCD_ENDPOINTS="http://127.0.0.1:2379",  # never called by these tasks
        CELERY_BROKER_URL=REDIS,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        LOG_LEVEL="WARNING",
        JOURNAL_ENABLED="false",
        PYTHONPATH=str(tree),
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def succeeded(log_path: Path) -> int:
    return len(_SUCCEEDED.findall(log_path.read_text(errors="replace")))


def side(tree: Path, args) -> dict:
    """One worker of `tree`: its idle rate, then its CPU per task."""
    from celery import Celery

    work = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
    env = fresh_env(work, tree)
    log_path = work / "worker.log"
    with open(log_path, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "etcdmonitor_site", "worker", *WORKER_FLAGS,
             "-P", "prefork", "-c", "2", "-n", f"tasks-bench-{os.getpid()}@%h"],
            cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    sender = Celery(broker=REDIS)
    try:
        deadline = time.monotonic() + 90
        while "ready." not in log_path.read_text(errors="replace"):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"worker did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        tasks = NOOP if args.noop else TASKS
        for name, task_args in tasks:  # each child's first run of each (imports, first queries)
            sender.send_task(name, args=task_args)
        while succeeded(log_path) < len(tasks):
            time.sleep(0.2)
        time.sleep(2)

        started, cpu = time.monotonic(), tree_cpu_seconds([worker.pid])
        time.sleep(args.idle)
        idle_rate = (tree_cpu_seconds([worker.pid]) - cpu) / (time.monotonic() - started)

        done_before = succeeded(log_path)
        started, cpu = time.monotonic(), tree_cpu_seconds([worker.pid])
        for number in range(args.tasks):
            name, task_args = tasks[number % len(tasks)]
            sender.send_task(name, args=task_args)
            time.sleep(1 / args.rate)
        deadline = time.monotonic() + 60
        while succeeded(log_path) < done_before + args.tasks:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not finish the tasks")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        spent = tree_cpu_seconds([worker.pid]) - cpu - idle_rate * elapsed
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        sender.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"ms_per_task": spent * 1000 / args.tasks, "idle_ms_per_s": idle_rate * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the revision to compare against")
    parser.add_argument("--tasks", type=int, default=150, help="tasks measured per pass")
    parser.add_argument("--rate", type=float, default=5.0, help="tasks sent per second")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measured")
    parser.add_argument("--passes", type=int, default=3, help="alternations of the two sides")
    parser.add_argument(
        "--noop", action="store_true", help="send a task that does nothing (Celery's part alone)"
    )
    args = parser.parse_args()

    base_tree = Path(tempfile.mkdtemp(prefix="tasks-base-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", str(base_tree), args.base],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    results: dict[str, list[dict]] = {"base": [], "this": []}
    try:
        for number in range(args.passes):
            for name, tree in (("base", base_tree), ("this", ROOT)):
                log(f"pass {number + 1}: {name}")
                results[name].append(side(tree, args))
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, capture_output=True
        )
    report = {"base": args.base, "tasks": args.tasks, "rate": args.rate, "noop": args.noop}
    for key in ("ms_per_task", "idle_ms_per_s"):
        base = statistics.median(r[key] for r in results["base"])
        this = statistics.median(r[key] for r in results["this"])
        report[key] = {
            "base": round(base, 3),
            "this": round(this, 3),
            "ratio": round(this / base, 3) if base else None,
            "passes": {name: [round(r[key], 3) for r in rs] for name, rs in results.items()},
        }
    print(json.dumps(report, indent=2))
    task = report["ms_per_task"]
    print(f"CPU per task: {task['this']} ms, base {task['base']} ms, ratio {task['ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
