"""The embedded default (SQLite) runs the same fleet rounds as PostgreSQL through its own
paths: member health written row by row, each evaluation reading its members' own samples."""

import json
import subprocess
import sys
from pathlib import Path

from tests.servers import clean_env

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
from alerts import services as alerts
from alerts.models import Alert, AlertRule
from monitoring import services
from monitoring.models import Member, MonitoredCluster

services.collect_cluster_id(cluster_id="default")
for run in services.health_probe_fleet(cluster_ids=["default"]).values():
    run.result()
alerts.rules_ensure()
# Thresholds every healthy cluster crosses: they fire only if the evaluation found the
# member's fresh sample (leader changes) and the quotas the probe read (database size).
AlertRule.objects.filter(id="leader_changes").update(thresholds={"changes": 0}, for_seconds=0)
AlertRule.objects.filter(id="db_quota_high").update(thresholds={"ratio": 0.0}, for_seconds=0)
reports = alerts.evaluate_all()
cluster = MonitoredCluster.objects.get(name="default")
print(json.dumps({
    "health": cluster.health,
    "quota": cluster.health_summary.get("db_quota_bytes"),
    "members": sorted(Member.objects.values_list("health", flat=True)),
    "leaders": Member.objects.filter(is_leader=True).count(),
    "firing": sorted(Alert.objects.filter(state="firing").values_list("rule", flat=True)),
    "skipped": [r.skipped for r in reports],
}))
"""


def test_sqlite_runs_the_probe_round_and_the_evaluation_on_a_real_cluster(etcd_cluster, tmp_path):
    env = clean_env(DATA_DIR=str(tmp_path), ETCD_ENDPOINTS=etcd_cluster.endpoints)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.check_output([*manage, "shell", "-c", SCRIPT], cwd=ROOT, env=env, text=True)

    result = json.loads(out.strip().splitlines()[-1])
    assert result["health"] == "healthy"
    assert result["members"] == ["up"] * len(etcd_cluster.members)
    assert result["leaders"] == 1
    assert result["quota"] > 0
    assert result["firing"] == ["db_quota_high", "leader_changes"]
    assert result["skipped"] == [False]
