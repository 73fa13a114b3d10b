"""Parser and derivations against the real etcd 3.4.23 scrape and hand-computed fixtures."""

import json
import math
from pathlib import Path

import pytest

from monitoring.metrics import (
    SOURCE_NAMES,
    SPARSE_NAMES,
    derive_snapshot,
    histogram_buckets,
    histogram_quantile,
    parse_metrics,
    window_advance,
    window_delta,
)
from monitoring.tests.expected_keys import stored_key_names

SCRAPE = (Path(__file__).parent / "data" / "etcd-3.4.23-metrics.txt").read_text()


@pytest.fixture(scope="module")
def samples():
    return parse_metrics(SCRAPE)


def test_parser_reads_every_sample_of_the_real_scrape(samples):
    assert sum(len(series) for series in samples.values()) == 1295
    assert samples["etcd_server_is_leader"] == [({}, 1.0)]
    assert len(samples["grpc_server_handled_total"]) == 697


def test_parser_keeps_counter_names_that_lack_total(samples):
    assert "etcd_server_health_success" in samples
    assert "etcd_server_health_success_total" not in samples


def test_parser_handles_escapes_braces_timestamps_and_bad_lines():
    text = (
        '# HELP x help with "quotes"\n'
        'x{path="a}b",msg="say \\"hi\\"\\n",k="back\\\\slash"} 3 1700000000000\n'
        "y 4.5e+06\n"
        "garbage line without value\n"
        'z{le="+Inf"} +Inf\n'
        'broken{a="1"\n'
    )
    parsed = parse_metrics(text)

    assert parsed["x"] == [({"path": "a}b", "msg": 'say "hi"\n', "k": "back\\slash"}, 3.0)]
    assert parsed["y"] == [({}, 4.5e6)]
    assert math.isinf(parsed["z"][0][1])
    assert "garbage" not in parsed and "broken" not in parsed


def test_a_repeated_scrape_parses_the_same_as_a_first_one_with_new_values():
    first = parse_metrics(SCRAPE)
    changed = SCRAPE.replace("etcd_server_is_leader 1", "etcd_server_is_leader 0")
    again = parse_metrics(changed)  # every name{labels} is now known from the first parse

    assert again["etcd_server_is_leader"] == [({}, 0.0)]
    assert {k: v for k, v in again.items() if k != "etcd_server_is_leader"} == {
        k: v for k, v in first.items() if k != "etcd_server_is_leader"
    }


def test_a_known_series_with_a_timestamp_or_a_bad_value_is_read_as_before():
    parse_metrics('w{a="1"} 2\nv 1\n')
    parsed = parse_metrics('w{a="1"} 5 1700000000000\nv oops\nv 7\nw{a="1"} NaN\n')

    assert parsed["w"][0] == ({"a": "1"}, 5.0)
    assert math.isnan(parsed["w"][1][1])
    assert parsed["v"] == [({}, 7.0)]


def _busier(text: str, methods: int) -> str:
    """The scrape with `methods` more gRPC methods having handled requests."""
    lines = text.splitlines(keepends=True)
    zero = [i for i, line in enumerate(lines) if line.startswith("grpc_server_handled_total{")]
    seen, bumped = set(), 0
    for i in zero:
        method = lines[i].split('grpc_method="')[1].split('"')[0]
        if method not in seen and lines[i].rstrip().endswith(" 0") and bumped < methods:
            seen.add(method)
            lines[i] = lines[i].rstrip()[:-1] + f"{bumped + 3}\n"
            bumped += 1
    return "".join(lines)


@pytest.mark.parametrize("extra_methods", [0, 12])
def test_the_collectors_sparse_parse_derives_the_same_snapshot(extra_methods):
    text = _busier(SCRAPE, extra_methods)
    full = parse_metrics(text)
    sparse = parse_metrics(text, only=SOURCE_NAMES, sparse=SPARSE_NAMES)

    assert len(sparse["grpc_server_handled_total"]) == 6 + extra_methods
    for previous in (None, derive_snapshot(full, timestamp=0).state):
        ours = derive_snapshot(sparse, timestamp=30, previous=previous)
        theirs = derive_snapshot(full, timestamp=30, previous=previous)
        assert ours.values == theirs.values
        assert ours.grpc_methods == theirs.grpc_methods
        assert len(ours.grpc_methods) == 10


def test_sparse_zeros_are_dropped_only_when_the_value_is_exactly_zero():
    text = (
        'grpc_server_handled_total{grpc_method="A"} 0\n'  # first line: kept, still zero
        'grpc_server_handled_total{grpc_method="B"} 0 1700000000000\n'
        'grpc_server_handled_total{grpc_method="C"} 10\n'
        'grpc_server_handled_total{grpc_method="D"} 0\n'
        'other_total{x="y"} 0\n'
        'grpc_server_handled_total{grpc_method="E"} 0'  # no final newline: kept
    )
    parsed = parse_metrics(text, sparse=SPARSE_NAMES)

    methods = [labels["grpc_method"] for labels, _ in parsed["grpc_server_handled_total"]]
    assert methods == ["A", "B", "C", "E"]
    assert parsed["other_total"] == [({"x": "y"}, 0.0)]


def test_quantile_interpolates_inside_the_bucket():
    buckets = [(0.001, 10.0), (0.002, 30.0), (0.004, 40.0), (math.inf, 40.0)]

    # p50: rank 20 lies halfway through (0.001, 0.002] which holds counts 10..30
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.0015)
    # p90: rank 36 in (0.002, 0.004] holding 30..40 → 0.002 + 0.002 * 6/10
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.0032)
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_quantile_in_the_inf_bucket_answers_the_largest_finite_bound():
    assert histogram_quantile(0.99, [(1.0, 1.0), (2.0, 2.0), (math.inf, 10.0)]) == 2.0


def test_histogram_buckets_are_summed_per_le_across_peers(samples):
    buckets = dict(histogram_buckets(samples, "etcd_network_peer_round_trip_time_seconds"))

    assert buckets[0.0004] == 2 + 2  # one peer has 2, the other 2
    assert buckets[0.0008] == 8 + 8
    assert buckets[math.inf] == 26 + 26


def _hist(family, counts, les=("0.001", "0.002", "0.004", "+Inf")):
    lines = [f'{family}_bucket{{le="{le}"}} {c}' for le, c in zip(les, counts, strict=True)]
    lines.append(f"{family}_count {counts[-1]}")
    return "\n".join(lines) + "\n"


WAL = "etcd_disk_wal_fsync_duration_seconds"


def _scrapes(family, steps, *, window=300.0, les=("0.001", "0.002", "0.004", "+Inf")):
    """derive_snapshot over (ts, counts) scrapes, the state round-tripping through JSON as the
    collector stores it; returns every snapshot."""
    snapshots, state = [], None
    for ts, counts in steps:
        snapshot = derive_snapshot(
            parse_metrics(_hist(family, counts, les)),
            timestamp=ts,
            previous=state,
            window=window,
        )
        state = json.loads(json.dumps(snapshot.state, allow_nan=False))
        snapshots.append(snapshot)
    return snapshots


def test_quantiles_come_from_the_windows_bucket_deltas_not_totals():
    # 1000 old fast observations, then 10 slow ones, all in (0.002, 0.004]
    first, second = _scrapes(WAL, [(0, [1000, 1000, 1000, 1000]), (30, [1000, 1000, 1010, 1010])])

    assert f"{WAL}_p50" not in first.values  # no window yet: nothing for the charts
    assert first.fallback[f"{WAL}_p50"] == pytest.approx(0.0005)  # since start, for /current
    assert first.basis[f"{WAL}_p50"] == "cumulative"
    assert second.values[f"{WAL}_p50"] == pytest.approx(0.003)
    assert second.values[f"{WAL}_p99"] == pytest.approx(0.002 + 0.002 * 0.99)
    assert second.basis[f"{WAL}_p99"] == "window" and not second.fallback
    assert second.values[f"{WAL}_count"] == 1010


def test_a_window_keeps_observations_across_quiet_intervals_until_they_age_out():
    slow = [1000, 1000, 1010, 1010]
    steps = [(0, [1000] * 4), (30, slow), *((ts, slow) for ts in range(60, 400, 30))]

    snapshots = _scrapes(WAL, steps, window=300)

    by_ts = dict(zip([ts for ts, _ in steps], snapshots, strict=True))
    for ts in range(60, 330, 30):  # the slow fsyncs happened in (0, 30]: in the window to 300
        assert by_ts[ts].values[f"{WAL}_p50"] == pytest.approx(0.003), ts
        assert by_ts[ts].basis[f"{WAL}_p50"] == "window"
    for ts in (330, 360, 390):  # (30, 330] and later saw nothing: /current falls back
        assert f"{WAL}_p50" not in by_ts[ts].values
        # since start: rank 0.99 * 1010 = 999.9 lies among the 1000 fast ones
        assert by_ts[ts].fallback[f"{WAL}_p99"] == pytest.approx(0.001 * 999.9 / 1000)
        assert by_ts[ts].basis[f"{WAL}_p99"] == "cumulative"
    # A quiet histogram keeps a short history in the stored state, whatever the window.
    assert len(snapshots[-1].state["histograms"][WAL]["window"]) == 1


def test_the_window_baseline_is_the_state_at_its_start_and_old_entries_are_dropped():
    steps = [(ts, [ts, ts, ts, ts]) for ts in range(0, 601, 30)]  # 30 fast fsyncs per scrape

    last = _scrapes(WAL, steps, window=300)[-1]

    history = last.state["histograms"][WAL]["window"]
    assert [ts for ts, _ in history] == list(range(300, 601, 30))
    assert last.values[f"{WAL}_count"] == 600
    assert last.values[f"{WAL}_p50"] == pytest.approx(0.0005)


def test_a_restart_inside_the_window_counts_from_zero_at_the_previous_scrape():
    steps = [(0, [0, 0, 0, 0]), (30, [50, 50, 50, 50]), (60, [0, 0, 4, 4]), (90, [0, 0, 4, 4])]

    snapshots = _scrapes(WAL, steps, window=300)

    after = snapshots[2]
    assert after.values[f"{WAL}_p50"] == pytest.approx(0.003)  # only the 4 since the restart
    assert snapshots[3].values[f"{WAL}_p50"] == pytest.approx(0.003)
    assert snapshots[3].state["histograms"][WAL]["window"] == [
        [30, [0, 0, 0, 0]],
        [60, [0, 0, 4, 4]],
    ]


def test_a_changed_bucket_layout_starts_the_window_over():
    first = derive_snapshot(parse_metrics(_hist(WAL, [5, 5, 5, 5])), timestamp=0)
    other_layout = _hist(WAL, [9, 9, 9], les=("0.001", "0.002", "+Inf"))

    second = derive_snapshot(parse_metrics(other_layout), timestamp=30, previous=first.state)

    assert f"{WAL}_p50" not in second.values
    assert second.basis[f"{WAL}_p50"] == "cumulative"
    assert second.state["histograms"][WAL] == {
        "le": ["0.001", "0.002", "inf"],
        "window": [[30, [9, 9, 9]]],
    }


def test_a_state_stored_before_windows_seeds_the_window():
    old_state = {"ts": 0, "counters": {}, "buckets": {WAL: [["0.001", 1], ["inf", 1]]}}
    text = _hist(WAL, [1, 3], les=("0.001", "+Inf"))

    snapshot = derive_snapshot(parse_metrics(text), timestamp=30, previous=old_state)

    assert snapshot.values[f"{WAL}_p50"] == pytest.approx(0.001)  # 2 new ones above 0.001
    assert snapshot.basis[f"{WAL}_p50"] == "window"


def test_window_delta_without_history_from_before_this_scrape_is_none():
    assert window_delta([], [1.0], timestamp=10, window=300) is None
    assert window_delta([[10, [3]]], [1.0], timestamp=10, window=300) is None
    assert window_delta([[0, [3]]], [1.0], timestamp=10, window=300) == [(1.0, 0.0)]
    history = window_advance([[0, [3]]], [3], timestamp=10, window=300)
    assert history == [[0, [3]]]


def test_millisecond_histograms_are_stored_in_seconds():
    family = "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds"
    les = ("1", "2", "4", "+Inf")
    first = derive_snapshot(parse_metrics(_hist(family, [0, 0, 0, 0], les)), timestamp=0)
    second = derive_snapshot(
        parse_metrics(_hist(family, [0, 4, 4, 4], les)), timestamp=30, previous=first.state
    )

    assert second.values["etcd_mvcc_db_compaction_pause_duration_p50"] == pytest.approx(0.0015)
    assert second.values["etcd_mvcc_db_compaction_pause_duration_count"] == 4


def test_rates_are_per_second_and_skip_counter_resets():
    first = derive_snapshot(
        parse_metrics("etcd_mvcc_put_total 100\nprocess_cpu_seconds_total 10\n"), timestamp=0
    )
    second = derive_snapshot(
        parse_metrics("etcd_mvcc_put_total 160\nprocess_cpu_seconds_total 13\n"),
        timestamp=30,
        previous=first.state,
    )
    reset = derive_snapshot(
        parse_metrics("etcd_mvcc_put_total 5\nprocess_cpu_seconds_total 13.3\n"),
        timestamp=60,
        previous=second.state,
    )

    assert "etcd_mvcc_put_total_rate" not in first.values
    assert second.values["etcd_mvcc_put_total_rate"] == pytest.approx(2.0)
    assert second.values["process_cpu_usage_percent"] == pytest.approx(10.0)
    assert "etcd_mvcc_put_total_rate" not in reset.values
    assert reset.values["process_cpu_usage_percent"] == pytest.approx(1.0)


def test_failed_rate_lag_and_client_request_versions():
    text = (
        "etcd_server_proposals_committed_total 120\n"
        "etcd_server_proposals_applied_total 117\n"
        "etcd_server_proposals_failed_total 2\n"
        'etcd_server_client_requests_total{client_api_version="3.4",type="unary"} 10\n'
        'etcd_server_client_requests_total{client_api_version="3.4",type="stream"} 5\n'
        'etcd_server_client_requests_total{type="unary"} 1\n'
    )
    first = derive_snapshot(parse_metrics(text), timestamp=0)
    second = derive_snapshot(
        parse_metrics(text.replace("failed_total 2", "failed_total 8")),
        timestamp=60,
        previous=first.state,
    )

    assert first.values["etcd_server_proposals_commit_apply_lag"] == 3
    assert first.values["etcd_server_client_requests_34"] == 15
    assert first.values["etcd_server_client_requests_unknown"] == 1
    assert first.values["etcd_server_client_requests_total"] == 16
    assert second.values["etcd_server_proposals_failed_rate"] == pytest.approx(0.1)
    assert second.values["etcd_server_client_requests_34_rate"] == 0


def test_real_scrape_derives_the_reference_keys_with_our_corrections(samples):
    snapshot = derive_snapshot(samples, timestamp=0)
    values = snapshot.values

    assert values["collector_up"] == 1
    assert values["etcd_network_active_peers"] == 2  # both peers, not the first series only
    assert values["etcd_network_peer_received_bytes_total"] == 28080 + 6461043 + 876867
    assert values["etcd_mvcc_keys_total"] == samples["etcd_debugging_mvcc_keys_total"][0][1]
    assert values["go_gc_duration_seconds_q05"] == 0.000142498
    assert values["go_gc_duration_seconds_q025"] == 8.6582e-05
    total = values["grpc_server_handled_total"]
    assert (
        values["grpc_server_handled_error_total"] == total - values["grpc_server_handled_ok_total"]
    )
    assert snapshot.grpc_methods[0] == {
        "rank": 0,
        "service": "etcdserverpb.Maintenance",
        "method": "Status",
        "count": 21.0,
    }
    assert values["grpc_method_0_count"] == 21
    assert not any(key.endswith("_name") for key in values)


def test_second_scrape_has_every_stored_key_the_scrape_can_feed(samples):
    first = derive_snapshot(samples, timestamp=0)
    grown = SCRAPE.replace(
        'etcd_network_peer_round_trip_time_seconds_bucket{To="7b1db330a4c9da0d",le="+Inf"} 26',
        'etcd_network_peer_round_trip_time_seconds_bucket{To="7b1db330a4c9da0d",le="+Inf"} 30',
    )
    second = derive_snapshot(
        parse_metrics(grown),
        timestamp=30,
        previous=first.state,
        extra={"raft_term": 2.0, "raft_index": 400.0, "etcd_lease_count": 0.0},
    )

    # Absent here: failure counters etcd only exports after a failure, and quantiles of
    # histograms with no observation in the interval.
    missing = {
        key
        for key in set(stored_key_names()) - set(second.values)
        if "failures_total" not in key and not key.endswith(("_p50", "_p90", "_p99"))
    }
    assert missing == set()
    assert "etcd_network_peer_round_trip_time_seconds_p99" in second.values


def test_non_finite_values_are_dropped():
    text = 'go_gc_duration_seconds{quantile="0.5"} NaN\ngo_goroutines +Inf\nprocess_open_fds 9\n'

    values = derive_snapshot(parse_metrics(text), timestamp=0).values

    assert "go_gc_duration_seconds_q05" not in values
    assert "go_goroutines" not in values
    assert values["process_open_fds"] == 9


def test_a_short_interval_keeps_the_history_short_and_the_window_at_least_its_length():
    steps = [(ts, [ts, ts, ts, ts]) for ts in range(0, 901, 5)]  # COLLECTOR_INTERVAL=5

    snapshots = _scrapes(WAL, steps, window=300)

    assert max(len(s.state["histograms"][WAL]["window"]) for s in snapshots) <= 12
    history = snapshots[-1].state["histograms"][WAL]["window"]
    assert history[0][0] <= 900 - 300 < history[1][0]
    assert 300 <= snapshots[-1].values[f"{WAL}_count"] - history[0][1][-1] <= 330


def test_unary_grpc_failures_count_server_codes_only():
    text = "\n".join(
        [
            'grpc_server_handled_total{grpc_code="OK",grpc_method="R",grpc_type="unary"} 90',
            'grpc_server_handled_total{grpc_code="Unavailable",grpc_method="P",'
            'grpc_type="unary"} 4',
            'grpc_server_handled_total{grpc_code="Canceled",grpc_method="R",grpc_type="unary"} 3',
            'grpc_server_handled_total{grpc_code="NotFound",grpc_method="R",grpc_type="unary"} 2',
            'grpc_server_handled_total{grpc_code="Unavailable",grpc_method="W",'
            'grpc_type="bidi_stream"} 50',
        ]
    )

    values = derive_snapshot(parse_metrics(text), timestamp=1.0).values

    assert values["grpc_server_handled_unary_total"] == 99
    assert values["grpc_server_handled_unary_failed_total"] == 4


def test_grpc_handling_time_counts_unary_calls_other_than_defragment_only():
    """--metrics=extensive's histogram: slow Defragment and Watch calls do not make etcd slow."""
    les = ("0.005", "0.1", "0.4", "+Inf")

    def scrape(range_counts, defrag_counts, watch_counts):
        lines = []
        for labels, counts in (
            ('grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"', range_counts),
            (
                'grpc_method="Defragment",grpc_service="etcdserverpb.Maintenance",'
                'grpc_type="unary"',
                defrag_counts,
            ),
            (
                'grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"',
                watch_counts,
            ),
        ):
            lines += [
                f'grpc_server_handling_seconds_bucket{{{labels},le="{le}"}} {count}'
                for le, count in zip(les, counts, strict=True)
            ]
        return parse_metrics("\n".join(lines) + "\n")

    key = "grpc_server_unary_handling_seconds"
    first = derive_snapshot(scrape([0] * 4, [0] * 4, [0] * 4), timestamp=0)
    # 100 fast ranges; one 0.3 s defragment and ten 0.3 s watches in the same interval
    second = derive_snapshot(
        scrape([100] * 4, [0, 0, 1, 1], [0, 0, 10, 10]), timestamp=30, previous=first.state
    )
    assert second.values[f"{key}_count"] == 100
    assert second.values[f"{key}_p99"] == pytest.approx(0.005 * 0.99)
    # five slow ranges among the next 100: the p99 rises past the rule's 0.15 s
    third = derive_snapshot(
        scrape([195, 195, 200, 200], [0, 0, 1, 1], [0, 0, 10, 10]),
        timestamp=60,
        previous=second.state,
    )
    assert third.values[f"{key}_p99"] > 0.15
