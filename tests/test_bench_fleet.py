"""The scale run's own arithmetic (bench/fleet.py): where it puts the collection intervals'
edges decides which cycles count as complete, so it is tested like our code."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "fleet.py"
_spec = importlib.util.spec_from_file_location("bench_fleet", _PATH)
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)


@pytest.mark.parametrize(
    "phases",
    [
        [0, 1, 2, 3, 4, 5, 6],  # dispatch spread over 7 s
        [10, 10, 11, 12, 13, 14, 0, 1],  # the same, wrapping past a step (missed in a run)
        [14, 0],
        [7],
    ],
)
def test_interval_edges_sit_farthest_from_every_cycles_start(phases):
    offset = fleet.interval_offset(phases, 15)

    def distance(phase: int) -> int:
        return min((phase - offset) % 15, (offset - phase) % 15)

    assert 0 <= offset < 15
    assert min(distance(p) for p in phases) >= 4


def test_a_cycle_on_each_side_of_an_edge_counts_once_per_interval():
    stamps = {ts: 1 for ts in range(1000 + 13, 1000 + 13 + 15 * 6, 15)}  # phase 13 mod 15
    found = {"c": {"members": 1, "stamps": stamps}}
    complete, intervals, missed = fleet.completeness(found, ["c"], 1000, 1100, 15)
    assert (complete, intervals, missed) == (intervals, intervals, {}) and intervals >= 5
    found["c"]["stamps"].pop(1000 + 13 + 15 * 2)
    complete, intervals, missed = fleet.completeness(found, ["c"], 1000, 1100, 15)
    assert complete == intervals - 1 and len(missed["c"]) == 1
