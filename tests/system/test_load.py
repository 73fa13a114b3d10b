"""A bounded load run (bench/load_dashboard.py, shortened): many clients of the dashboard's calls
through the real server on PostgreSQL, with a snapshot download running meanwhile; no errors."""

import sys

import pytest

from tests.test_project import ROOT

pytestmark = pytest.mark.system


def test_concurrent_dashboard_clients_and_a_snapshot_get_no_errors():
    sys.path.insert(0, str(ROOT / "bench"))
    from load_dashboard import run_load

    result = run_load(clients=20, seconds=15, baseline_s=3)
    load = result["load"]
    print(f"\nload: {load}")

    assert load["requests"] > 0 and load["errors"] == 0, load["error_samples"]
    assert load["snapshot_downloads"] >= 1 and load["snapshot_errors"] == []
    assert load["server_alive"] is True
