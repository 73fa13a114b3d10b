"""A panel whose series this member's etcd does not export says so on the dashboard."""

import json
import sqlite3
import time

from playwright.sync_api import expect

from tests.browser.conftest import sign_in


def _members_collected(database, deadline: float) -> None:
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT count(*) FROM monitoring_member WHERE latest IS NOT NULL")
            if rows.fetchone()[0] == 3:
                return
        time.sleep(0.5)
    raise AssertionError("the collector never stored the three members")


def test_a_panel_without_exported_series_names_them(dashboard_server, page, page_errors):
    # One real collection (the first runs at once), none after it for an hour: the stored
    # unexported list below stays what a member lacking go_memstats_* would have produced.
    server = dashboard_server(COLLECTOR_INTERVAL="3600")
    database = server.data_dir / "etcdmonitor.sqlite3"
    _members_collected(database, time.monotonic() + 60)
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE monitoring_member SET unexported_metrics = ?",
            [json.dumps(["go_memstats_alloc_bytes", "go_memstats_sys_bytes"])],
        )

    sign_in(page, server, "n3w-passw0rd-for-notes")

    whole = page.locator("#note-chartMemSys")
    expect(whole).to_be_visible()
    expect(whole).to_have_text("no data: go_memstats_sys_bytes not exported by this etcd")
    expect(whole).to_have_class("panel-note all")
    partial = page.locator("#note-chartMemory")
    expect(partial).to_have_text("Heap Alloc: go_memstats_alloc_bytes not exported by this etcd")
    expect(page.locator("#note-chartGoroutines")).to_be_hidden()
    assert page_errors == []
