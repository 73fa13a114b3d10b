"""The cost of naming who changed a key: the history's join with the audit log.

    DATABASE_URL=postgres://… .venv/bin/python bench/history_join.py [--rows 200000] [--runs 5]

Writes `--rows` successful KV `put` audit rows (distinct keys, each with the revision and
cluster its params end with, as kvmanager writes them; username "bench-history", deleted
afterwards) into the database of DATABASE_URL (migrated here; without it a fresh SQLite in a
temp DATA_DIR), then times `kvmanager.history._audited_writes` for 1, 50 and 200 changes of
different keys (the worst case: a history page's changes are one key's, so fewer targets),
best of `--runs`. Baseline, same rows and run: the first design, one query OR-ing a
`params LIKE '%"revision": N, "tab_id": …}'` term per revision.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="history-bench-data-"))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db.models import Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit.models import AuditLog  # noqa: E402
from kvmanager import history  # noqa: E402

USER = "bench-history"
FIRST_REVISION = 1000


def like_per_revision(changes: list[tuple[str, int]]) -> dict[int, str]:
    """The baseline: match every revision's params ending, whatever the key."""
    wanted = {history._revision_fragment(r, "default"): r for _, r in changes}
    match = Q()
    for fragment in wanted:
        match |= Q(params__endswith=fragment)
    users = {}
    rows = AuditLog.objects.filter(match, operation__in=history.KV_WRITE_OPERATIONS, success=True)
    for params, username in rows.values_list("params", "username"):
        for fragment, revision in wanted.items():
            if params.endswith(fragment):
                users[revision] = username
    return users


def best_of(runs: int, join, wanted) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        users = join(wanted)
        best = min(best, time.perf_counter() - started)
    assert len(users) == len(wanted)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    AuditLog.objects.filter(username=USER).delete()
    now = timezone.now()
    rows = (
        AuditLog(
            timestamp=now,
            username=USER,
            operation="put",
            target=f"/bench/k{n}",
            params=history.audit_revision_params(
                {"ttl": None, "value_size": 1024}, cluster_id="default", revision=FIRST_REVISION + n
            ),
        )
        for n in range(args.rows)
    )
    AuditLog.objects.bulk_create(rows, batch_size=5000)
    try:
        print(f"{AuditLog.objects.count()} audit rows, {args.rows} of them KV puts")
        for changes in (1, 50, 200):
            step = max(1, args.rows // changes)
            wanted = [(f"/bench/k{n}", FIRST_REVISION + n) for n in range(0, args.rows, step)]
            wanted = wanted[:changes]
            ours = best_of(
                args.runs,
                lambda w: history._audited_writes(cluster_id="default", changes=w),
                wanted,
            )
            baseline = best_of(args.runs, like_per_revision, wanted)
            print(
                f"{changes:>4} changes named: {ours * 1000:.1f} ms; baseline (a LIKE per "
                f"revision) {baseline * 1000:.1f} ms (best of {args.runs})"
            )
    finally:
        AuditLog.objects.filter(username=USER).delete()


if __name__ == "__main__":
    main()
