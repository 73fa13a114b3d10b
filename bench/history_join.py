"""The cost of naming who changed a key: the history's join with the audit log.

    DATABASE_URL=postgres://… .venv/bin/python bench/history_join.py [--rows 200000] [--runs 5]

Writes `--rows` successful KV `put` audit rows (distinct keys, each with the revision and
cluster its params end with, as kvmanager writes them; username "bench-history", deleted
afterwards) into the database of DATABASE_URL (migrated here; without it a fresh SQLite in a
temp DATA_DIR), then times `kvmanager.history._audited_writes` for 1, 50 and 200 changes of
different keys (the worst case: a history page's changes are one key's, so fewer targets),
best of `--runs`.
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
from django.utils import timezone  # noqa: E402

from audit.models import AuditLog  # noqa: E402
from kvmanager import history  # noqa: E402

USER = "bench-history"
FIRST_REVISION = 1000


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
            best = float("inf")
            for _ in range(args.runs):
                started = time.perf_counter()
                users = history._audited_writes(cluster_id="default", changes=wanted)
                best = min(best, time.perf_counter() - started)
            assert len(users) == len(wanted)
            print(f"{changes:>4} changes named: {best * 1000:.1f} ms (best of {args.runs})")
    finally:
        AuditLog.objects.filter(username=USER).delete()


if __name__ == "__main__":
    main()
