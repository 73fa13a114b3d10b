"""Load the synthetic history into one store (bench/run_all, item 1); run once per store.

    perf_load.py ours --spec spec.json      # derive → values array → Sample rows → rollups
    perf_load.py prom --spec spec.json      # OpenMetrics per 2 h window → promtool blocks

spec.json: {"scrapes": [text per member], "members": [{"id", "name"}], "start", "ticks",
"blocks_dir", "work_dir"}. Both modes build the same values (bench/perf_dataset.py, same seed),
so running them in two processes at once stores identical data. Prints one JSON line.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import perf_dataset  # noqa: E402

JITTER_SHARE = 0.03  # of scrapes that Prometheus would time-stamp 3-20 ms late (anchor's model)


def load_ours(spec: dict, models) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")
    import django

    django.setup()
    from django.db import connection

    from monitoring import metrics, partitions, services, timeseries
    from monitoring.models import Member, Sample

    cluster = services.cluster_ensure()
    members = []
    for k, info in enumerate(spec["members"]):
        member, _ = Member.objects.update_or_create(
            cluster=cluster,
            member_id=info["id"],
            defaults={
                "name": info["name"],
                "client_urls": [info["url"]],
                "scrape_url": info["url"],
                "is_default": k == 0,
                "is_leader": k == 0,
                "in_cluster": True,
            },
        )
        members.append(member)
    last_ts = spec["start"] + perf_dataset.STEP * (spec["ticks"] - 1)
    if partitions.is_partitioned():  # the history's days get their partitions, as if collected
        partitions.partitions_ensure(first=spec["start"], last=last_ts)
    started = time.perf_counter()
    cpu_started = time.process_time()
    states: list = [None] * len(models)
    snapshots: list = [None] * len(models)
    count = 0
    for ticks, block in perf_dataset.windows(
        models, start=spec["start"], ticks_total=spec["ticks"]
    ):
        batch = []
        for k, model in enumerate(models):
            rows = block[k].tolist()
            committed = model.groups["etcd_server_proposals_committed_total"][0][1]
            for ts, row in zip(ticks.tolist(), rows, strict=True):
                extra = {"raft_term": 2.0, "raft_index": row[committed], "etcd_lease_count": 3.0}
                snap = metrics.derive_snapshot(
                    perf_dataset.samples_at(model, row),
                    timestamp=float(ts),
                    previous=states[k],
                    extra=extra,
                )
                states[k], snapshots[k] = snap.state, snap
                batch.append(
                    Sample(member_id=members[k].pk, ts=ts, vals=timeseries.to_array(snap.values))
                )
        Sample.objects.bulk_create(batch, batch_size=2000)
        count += len(batch)
    for member, snap in zip(members, snapshots, strict=True):
        Member.objects.filter(pk=member.pk).update(
            latest={k: v for k, v in snap.values.items()},
            latest_ts=last_ts,
            scrape_state=snap.state,
            grpc_methods=snap.grpc_methods,
            sample_count=spec["ticks"],
            collector_up=True,
        )
    ingest_s = time.perf_counter() - started
    rollup_started = time.perf_counter()
    services.rollups_refresh(cluster=cluster)
    rollup_s = time.perf_counter() - rollup_started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        sizes = {}
        for table in ("monitoring_sample", "monitoring_samplerollup", "monitoring_metricname"):
            # A partitioned table has no storage of its own: sum its partitions.
            cursor.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid))::bigint, "
                "pg_total_relation_size(%s)) FROM pg_partition_tree(%s)",
                [table, table],
            )
            sizes[table] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM monitoring_samplerollup")
        rollups = cursor.fetchone()[0]
    return {
        "member_scrapes": count,
        "ingest_s": ingest_s,
        "ingest_cpu_s": time.process_time() - cpu_started,
        "rollup_s": rollup_s,
        "rollup_rows": rollups,
        "bytes": sizes,
        "bytes_total": sum(sizes.values()),
        "stored_keys_last": [len(s.values) for s in snapshots],
        "last_ts": last_ts,
    }


def _timestamps(ticks: list[int], rng) -> list[str]:
    late = rng.random(len(ticks)) < JITTER_SHARE
    ms = rng.integers(3, 21, len(ticks))
    return [
        f"{t}.{m:03d}" if is_late else str(t)
        for t, is_late, m in zip(ticks, late.tolist(), ms.tolist(), strict=True)
    ]


def load_prom(spec: dict, models) -> dict:
    work = Path(spec["work_dir"])
    blocks = Path(spec["blocks_dir"])
    blocks.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    running: list[tuple[subprocess.Popen, Path]] = []
    samples = 0
    write_s = 0.0
    instances = [f"m{k + 1}" for k in range(len(models))]
    prefixes = [
        [
            f'{name}{{{lt + "," if lt else ""}instance="{inst}",job="etcd"}} '
            for name, lt in zip(model.names, model.label_text, strict=True)
        ]
        for model, inst in zip(models, instances, strict=True)
    ]
    rng = np.random.default_rng(99)

    def reap(limit: int) -> None:
        while len(running) > limit:
            process, path = running.pop(0)
            if process.wait() != 0:
                raise RuntimeError(f"promtool failed on {path}: {process.stderr.read()}")
            path.unlink()

    for number, (ticks, block) in enumerate(
        perf_dataset.windows(models, start=spec["start"], ticks_total=spec["ticks"])
    ):
        written = time.perf_counter()
        tick_list = ticks.tolist()
        path = work / f"w{number:03d}.om"
        with path.open("w") as out:
            for k in range(len(models)):
                stamps = _timestamps(tick_list, rng)
                columns = block[k].T.tolist()
                for prefix, column in zip(prefixes[k], columns, strict=True):
                    out.write(
                        "".join([f"{prefix}{v} {t}\n" for v, t in zip(column, stamps, strict=True)])
                    )
                samples += len(columns) * len(tick_list)
            out.write("# EOF\n")
        write_s += time.perf_counter() - written
        reap(1)  # at most two promtools at once, next to this writer
        running.append(
            (
                subprocess.Popen(
                    [
                        "promtool",
                        "tsdb",
                        "create-blocks-from",
                        "openmetrics",
                        str(path),
                        str(blocks),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                path,
            )
        )
    reap(0)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "samples": samples,
        "series": sum(len(m.names) for m in models),
        "load_s": time.perf_counter() - started,
        "write_s": write_s,
        "promtool_cpu_s": children.ru_utime + children.ru_stime,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", choices=("ours", "prom"))
    parser.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    if args.store == "ours":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "etcdmonitor_site.settings")
        import django

        django.setup()
    models = [perf_dataset.build_model(text, k) for k, text in enumerate(spec["scrapes"])]
    result = load_ours(spec, models) if args.store == "ours" else load_prom(spec, models)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
