"""Our collector's CPU per member per cycle against the live cluster (bench/run_all, item 4).

    DATABASE_URL=... ETCD_ENDPOINTS=... perf_collect.py --cycles 10 [--interval 1]

One warm-up cycle (client set-up), then `--cycles` real `services.collect_cluster()` cycles,
each timed with `time.process_time()` (all threads of this process), divided by the members
scraped. Prints one JSON line: per-cycle figures and their median.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")

import django  # noqa: E402

django.setup()

from monitoring import services  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    services.collect_cluster()
    per_member = []
    up = 0
    for _ in range(args.cycles):
        time.sleep(args.interval)  # rates need time between scrapes, as in production
        started = time.process_time()
        report = services.collect_cluster()
        spent = time.process_time() - started
        if report.skipped or not report.members:
            continue
        up = sum(1 for m in report.members if m["up"])
        per_member.append(spent * 1000 / len(report.members))
    print(
        json.dumps(
            {
                "ms_per_member_cycle": statistics.median(per_member),
                "cycles": per_member,
                "members_up": up,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
