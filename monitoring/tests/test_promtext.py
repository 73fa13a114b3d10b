"""The C parser (native/promtext) gives the samples the Python reference gives, for every
shape of text: real etcd scrapes, each odd line shape, and many generated texts."""

import math
import random
import urllib.request
from pathlib import Path

import pytest

from monitoring import metrics
from monitoring.metrics import SOURCE_NAMES, SPARSE_NAMES, parse_metrics, parse_metrics_reference

SCRAPE = (Path(__file__).parent / "data" / "etcd-3.4.23-metrics.txt").read_text()
WANTED = frozenset({"a", "b_total", "grpc_server_handled_total", "etcd_x", "é"})
SPARSE = frozenset({"grpc_server_handled_total"})


def comparable(samples):
    """Samples with NaN made equal to itself and the value's sign and type kept."""
    return {
        name: [(sorted(labels.items()), repr(value), type(value)) for labels, value in series]
        for name, series in samples.items()
    }


def assert_same(text, **options):
    native = parse_metrics(text, **options)
    reference = parse_metrics_reference(text, **options)
    assert comparable(native) == comparable(reference), repr(text)
    assert list(native) == list(reference), "names in the order first seen"
    return native


def test_the_c_parser_is_installed_and_used():
    """`make venv` builds it; without it the suite would only test the reference twice."""
    import etcdmonitor_promtext

    assert metrics.promtext is etcdmonitor_promtext


@pytest.mark.parametrize(
    "options",
    [
        {"only": SOURCE_NAMES, "sparse": SPARSE_NAMES},  # what the collector asks
        {},
        {"sparse": SPARSE_NAMES},
        {"only": frozenset()},
    ],
)
def test_a_real_etcd_34_scrape_parses_the_same(options):
    samples = assert_same(SCRAPE, **options)
    if options.get("only") == SOURCE_NAMES:
        assert sum(len(series) for series in samples.values()) == 415
        assert samples["etcd_server_has_leader"] == [({}, 1.0)]


def test_a_live_members_scrape_parses_the_same(etcd_cluster):
    """The running etcd's own page (3.4, or 3.5 under `make test-etcd35`)."""
    url = etcd_cluster.members[0].client_url + "/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = assert_same(text, only=SOURCE_NAMES, sparse=SPARSE_NAMES)
    assert samples["etcd_server_has_leader"] == [({}, 1.0)]
    assert assert_same(text) and assert_same(text, sparse=SPARSE_NAMES)


ODD_TEXTS = [
    "",
    "\n",
    "#",
    "# HELP a x\n# TYPE a counter\na 1\n",
    "a 1",  # no final newline
    "a 1\nb_total 2",
    "a 1 1700000000000\n",  # a timestamp
    'a{x="1"} 2 1700000000000\n',
    "a  1\n",  # two spaces
    "a\t1\n",  # a tab: the whole text goes to the reference
    " a 1\n",  # a leading space
    "a 1\r\nb_total 2\r\n",  # \r\n line ends
    "a 1\rb_total 2\n",  # a lone \r splits lines in the reference
    "x 1\x0bb_total 2\n",  # so do \v, \f, \x1c-\x1e
    "x 1\x1cb_total 2\x1db_total 3\x1e",
    "x 1\x1fb_total 2\n",  # \x1f is whitespace, not a line end
    "x 1\x85b_total 2\n",  # NEL splits lines
    "x 1\u2028b_total 2\u2029a 3\n",
    "a\x7f 1\n",
    'a{x="é"} 1\n',  # non-ASCII label value
    "é 1\n",
    "a\n",  # no value
    "a \n",
    "a{} 1\n",
    'a{x="1"}\n',
    'a{x="1"} \n',
    'a{x="1"}1\n',  # no space before the value
    'a {x="1"} 1\n',  # a space before the labels
    '{x="1"} 1\n',  # no name
    'a}{x="1" 1\n',  # a brace closed before it opens
    'a{x="}"} 1\n',  # "}" inside a label value
    'a{x="a} 1"} 2\n',
    'a{x="1",y="2",} 3\n',  # a trailing comma
    'a{x="q\\"uote",y="back\\\\slash",z="new\\nline"} 4\n',  # escapes
    'a{x = "1" , y="2"} 5\n',
    "a NaN\nb_total +Inf\netcd_x -Inf\n",
    "a nan\na inf\na -infinity\na +1e500\na -1\na 0x10\na 1_000\na 1__0\na _1\na .5\na 5.\n",
    "a 1e\na e1\na --1\na 1.2.3\na \x00\n",
    "a " + "9" * 80 + "\n",  # longer than the fast path's buffer
    "a 0\n",
    # The sparse rule: only between two newlines, with labels, the value text exactly "0".
    'grpc_server_handled_total{m="A"} 0\n',  # first line: kept
    'x 1\ngrpc_server_handled_total{m="A"} 0\n',  # dropped
    'x 1\ngrpc_server_handled_total{m="A"} 0',  # last line without a newline: kept
    'x 1\ngrpc_server_handled_total{m="A"} 0.0\ngrpc_server_handled_total{m="B"} 00\n',
    'x 1\ngrpc_server_handled_total{m="A"} 0 1700000000000\n',
    "x 1\ngrpc_server_handled_total 0\n",  # no labels: kept
    "x 1\ngrpc_server_handled_total{} 0\n",
    'x 1\ngrpc_server_handled_total{m="} 0"} 1\n',
    'x 1\ngrpc_server_handled_total{m="} 0"} 0\n',
    'x 1\ngrpc_server_handled_total_x{m="A"} 0\n',  # a longer name
    'x 1\ngrpc_server_handled_tota{m="A"} 0\n',  # a shorter one
    'x 1\ngrpc_server_handled_total {m="A"} 0\n',
    'x 1\ngrpc_server_handled_total{m="A"} 0\r\n',
    'x 1\n\ngrpc_server_handled_total{m="A"} 0\n\ngrpc_server_handled_total{m="B"} 0\n',
]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_every_odd_line_shape_parses_the_same(text):
    for options in ({}, {"only": WANTED}, {"only": WANTED, "sparse": SPARSE}, {"sparse": SPARSE}):
        assert_same(text, **options)


PIECES = [
    "a", "b_total", "etcd_x", "grpc_server_handled_total", "other", "é", "",
    "{", "}", '{x="1"}', '{m="A",c="200"}', '{x="a b"}', '{x="\\""}', '{x="}"}', "{}",
    " ", "  ", "\t", "0", "1", "-2.5", "NaN", "+Inf", "1_0", "0x1", "1e9", "1700000000000",
    "\n", "\n", "\n", "\r", "\r\n", "\x0c", "\x1c", "\x1f", "\x85", "\u2028", "#", "# HELP a x",
]  # fmt: skip


def generated_text(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randrange(1, 12)):
        if rng.random() < 0.6:  # mostly well-formed lines, with a twist now and then
            name = rng.choice(["a", "b_total", "etcd_x", "grpc_server_handled_total", "zz"])
            labels = rng.choice(["", '{x="1"}', '{m="A",c="OK"}', "{}"])
            value = rng.choice(["0", "1", "2.5", "NaN", "-Inf", "1e3"])
            stamp = rng.choice(["", "", "", " 1700000000000"])
            lines.append(f"{name}{labels} {value}{stamp}")
        else:
            lines.append("".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 7))))
    ending = rng.choice(["\n", "\n", "", "\r\n"])
    return ending.join(lines) + rng.choice(["", ending])


def test_thousands_of_generated_texts_parse_the_same():
    rng = random.Random(19)  # noqa: S311 - test data, seeded to repeat
    for _ in range(4000):
        text = generated_text(rng)
        for options in ({"only": WANTED, "sparse": SPARSE}, {}):
            assert_same(text, **options)


def test_the_collectors_call_on_a_scrape_with_odd_lines_keeps_the_order_and_nan():
    text = SCRAPE.replace(
        "etcd_server_has_leader 1", "etcd_server_has_leader 1\netcd_server_is_leader NaN"
    ).replace(  # two spaces: a line the C path hands to the reference
        "etcd_server_leader_changes_seen_total 5", "etcd_server_leader_changes_seen_total  5"
    )
    assert "etcd_server_leader_changes_seen_total  5\n" in text
    samples = assert_same(text, only=SOURCE_NAMES, sparse=SPARSE_NAMES)
    (added, real) = samples["etcd_server_is_leader"]  # in the page's order
    assert math.isnan(added[1]) and real == ({}, 1.0)
    assert samples["etcd_server_leader_changes_seen_total"] == [({}, 5.0)]


def test_more_names_than_the_c_table_takes_are_parsed_by_the_reference():
    many = SOURCE_NAMES | frozenset(f"unused_name_{index}" for index in range(600))
    samples = assert_same(SCRAPE, only=many, sparse=SPARSE_NAMES)
    assert comparable(samples) == comparable(
        parse_metrics_reference(SCRAPE, only=SOURCE_NAMES, sparse=SPARSE_NAMES)
    )
    assert_same(SCRAPE, sparse=many)


def test_a_deployment_without_the_c_parser_is_warned_and_still_parses(monkeypatch):
    from monitoring.checks import check_native_parser

    assert check_native_parser() == []
    monkeypatch.setattr(metrics, "promtext", None)
    assert [warning.id for warning in check_native_parser()] == ["monitoring.W002"]
    assert comparable(parse_metrics(SCRAPE, only=SOURCE_NAMES, sparse=SPARSE_NAMES)) == (
        comparable(parse_metrics_reference(SCRAPE, only=SOURCE_NAMES, sparse=SPARSE_NAMES))
    )


def test_a_wrong_call_raises_instead_of_crashing_the_worker():
    import etcdmonitor_promtext

    def call(only=None, sparse=frozenset(), parse_line=metrics._parse_line):
        return etcdmonitor_promtext.parse(
            "a 1\nb  2\n",
            only,
            sparse,
            {},
            metrics._parse_labels,
            {},
            parse_line,
            parse_metrics_reference,
        )

    assert call() == {"a": [({}, 1.0)], "b": [({}, 2.0)]}
    with pytest.raises(TypeError):
        call(only=iter(["a"]))  # names must stay alive for the call: a set
    with pytest.raises(TypeError):
        call(sparse=["a"])
    with pytest.raises(TypeError):
        call(parse_line=lambda line: ["b", {}, "2", False])


# --- histogram_buckets in C -----------------------------------------------------------------------

LE_TEXTS = ["0.001", "0.5", "1", "1e-3", "+Inf", "inf", "-0", "0", "0.0", " 2 ", "1_0", "abc", "",
            "NaN", "nan", "-Inf", "10", "1e308", "5e-324", "0x1p3"]  # fmt: skip
VALUES = [0.0, -0.0, 1.0, 3.0, 0.1, 1e300, -2.5, math.nan, math.inf, -math.inf, 7e-310]


def _bucket_series(rng: random.Random) -> list[tuple[dict, float]]:
    series = []
    for _ in range(rng.randrange(0, 40)):
        labels = {"le": rng.choice(LE_TEXTS)} if rng.random() > 0.1 else {}
        if rng.random() > 0.5:
            labels["grpc_method"] = rng.choice(["Range", "Put"])
        series.append((labels, rng.choice(VALUES)))
    return series


def _same_buckets(series) -> list:
    """The C sums of `series` against the reference's, with fresh le caches of their own."""
    c_cache, reference_cache = {}, {}
    with_c = metrics.promtext.histogram_buckets(series, c_cache, 1000)
    saved = dict(metrics._LE_CACHE)
    metrics._LE_CACHE.clear()
    try:
        reference = metrics.histogram_buckets_reference(series)
        reference_cache.update(metrics._LE_CACHE)
    finally:
        metrics._LE_CACHE.clear()
        metrics._LE_CACHE.update(saved)
    if with_c is None:  # declined: a NaN bound is the reference's to order
        assert any(math.isnan(le) for le in reference_cache.values()), series
        return reference
    assert [(repr(le), repr(total)) for le, total in with_c] == [
        (repr(le), repr(total)) for le, total in reference
    ]
    assert {text: repr(le) for text, le in c_cache.items()} == {
        text: repr(le) for text, le in reference_cache.items()
    }
    return with_c


def test_histogram_bucket_sums_of_a_real_scrape_are_the_references():
    samples = parse_metrics(SCRAPE, only=SOURCE_NAMES, sparse=SPARSE_NAMES)
    families = [family for family, _ in metrics.HISTOGRAMS.values()]
    summed = [_same_buckets(samples.get(f"{family}_bucket", ())) for family in families]

    assert sum(1 for buckets in summed if buckets) >= 10
    wal = metrics.histogram_buckets(samples, "etcd_disk_wal_fsync_duration_seconds")
    assert wal[-1][0] == math.inf and wal == sorted(wal)


def test_thousands_of_generated_bucket_series_sum_the_same():
    rng = random.Random(19)  # noqa: S311 - test data, seeded to repeat
    declined = 0
    for _ in range(5000):
        series = _bucket_series(rng)
        declined += metrics.promtext.histogram_buckets(series, {}, 1000) is None
        _same_buckets(series)
    assert 0 < declined < 5000  # both paths were taken


def test_minus_zero_and_zero_are_one_bound_named_by_the_first_seen():
    for first, second in (("-0", "0"), ("0", "-0.0")):
        (bound,) = _same_buckets([({"le": first}, 1.0), ({"le": second}, 2.0)])
        assert repr(bound[0]) == repr(float(first)) and bound[1] == 3.0


def test_the_bucket_sums_fill_the_le_cache_up_to_its_bound_only():
    cache = {"1": 1.0}
    series = [({"le": str(index)}, 1.0) for index in range(10)]
    found = metrics.promtext.histogram_buckets(series, cache, 4)

    assert [le for le, _ in found] == [float(index) for index in range(10)]
    assert sorted(cache) == ["0", "1", "2", "3"]


def test_bucket_sums_the_c_path_declines_go_to_the_reference():
    odd = [
        [({"le": "1"}, 1)],  # an int value
        [[{"le": "1"}, 1.0]],  # a list, not a tuple
        [({"le": str(index)}, 1.0) for index in range(65)],  # more bounds than the C table
        [({"le": "nan"}, 1.0)],
    ]
    for series in odd:
        assert metrics.promtext.histogram_buckets(series, {}, 1000) is None
        assert metrics.histogram_buckets({"h_bucket": series}, "h") == (
            metrics.histogram_buckets_reference(series)
        )
    with pytest.raises(TypeError):
        metrics.promtext.histogram_buckets(5, {}, 10)
    with pytest.raises(TypeError):
        metrics.promtext.histogram_buckets([], [], 10)


# --- histogram_window in C ------------------------------------------------------------------------


def _same_window(buckets, history, timestamp, window):
    """The C step of one histogram against the reference's, types included (repr: 1 is not
    1.0, -0.0 is not 0.0); the result, or None when the C path declined."""
    kept = repr(history)
    with_c = metrics.promtext.histogram_window(
        buckets, history, timestamp, window, metrics.WINDOW_STEPS, metrics._QUANTILE_LEVELS
    )
    assert repr(history) == kept  # the stored history is never changed in place
    reference = metrics.histogram_window_reference(
        buckets, history, timestamp=timestamp, window=window
    )
    if with_c is None:
        return None
    assert repr(with_c) == repr(reference), (buckets, history, timestamp, window)
    return with_c


def test_the_window_steps_of_a_real_scrape_and_its_growth_are_the_references():
    samples = parse_metrics(SCRAPE, only=SOURCE_NAMES, sparse=SPARSE_NAMES)
    taken = 0
    for family, _ in metrics.HISTOGRAMS.values():
        buckets = metrics.histogram_buckets(samples, family)
        if not buckets:
            continue
        first = _same_window(buckets, None, 1000.0, 300)
        grown = [(le, count * 2 + 1) for le, count in buckets]  # observed since the first
        second = _same_window(grown, first[0], 1015.0, 300)
        assert second is not None and second[1] is True  # observations in the window
        assert _same_window(buckets, second[0], 1030.0, 300)[0][0][1] == [0] * len(buckets)
        taken += 1
    assert taken >= 10


def _generated_window(rng: random.Random):
    size = rng.randrange(1, 8)
    les = sorted(rng.sample([0.001, 0.005, 0.01, 0.1, 0.5, 1.0, 2.5, 10.0, -0.0, 1e-300], size))
    les.append(math.inf)
    totals, running = [], 0.0
    for _ in les:
        running += rng.choice([0.0, 0.0, 1.0, 3.0, 0.5, 1e6])
        odd = rng.choice([-running, 2.0**53, 2.0**53 + 2, math.inf])
        totals.append(odd if rng.random() < 0.03 else running)
    buckets = [(le, total) for le, total in zip(les, totals, strict=True)]
    history = rng.choice([None, [], "entries"])
    if history == "entries":
        history = []
        ts = rng.choice([700, 700.0, 990.5, 1000])
        for _ in range(rng.randrange(1, 14)):
            width = len(buckets) if rng.random() > 0.1 else len(buckets) + 1
            counts = [
                rng.choice([2**53, 2**60, -1, math.nan])
                if rng.random() < 0.01
                else rng.choice([0, 1, 2, 5, 1e6, 3.0, 0.0])
                for _ in range(width)
            ]
            history.append([ts, sorted(counts, key=abs) if rng.random() > 0.3 else counts])
            ts = ts + rng.choice([1, 15, 15.0, 30, 45.5, 120])
        if rng.random() < 0.05:
            history[-1] = (history[-1][0], history[-1][1])  # a tuple: not what JSON gives
    timestamp = rng.choice([1000.0, 1015.0, 1100.5, 1300.0, 2000.0, 650.0])
    window = rng.choice([300, 300.0, 30, 60.5])
    return buckets, history, timestamp, window


def test_thousands_of_generated_window_steps_are_the_references():
    rng = random.Random(19)  # noqa: S311 - test data, seeded to repeat
    declined = in_window = 0
    for _ in range(6000):
        buckets, history, timestamp, window = _generated_window(rng)
        try:
            found = _same_window(buckets, history, timestamp, window)
        except (ValueError, OverflowError):  # the reference refuses it: C must have declined
            assert (
                metrics.promtext.histogram_window(
                    buckets, history, timestamp, window, 10, metrics._QUANTILE_LEVELS
                )
                is None
            )
            continue
        declined += found is None
        in_window += bool(found and found[1])
    assert 0 < declined < 2000 and in_window > 300  # every path was taken


def test_derived_snapshots_are_the_same_with_and_without_the_c_steps(monkeypatch):
    samples = parse_metrics(SCRAPE, only=SOURCE_NAMES, sparse=SPARSE_NAMES)

    def three_scrapes():
        first = metrics.derive_snapshot(samples, timestamp=1000.0, window=300)
        second = metrics.derive_snapshot(samples, timestamp=1015.0, previous=first.state)
        return (
            first,
            second,
            metrics.derive_snapshot(samples, timestamp=1400.0, previous=second.state),
        )

    with_c = three_scrapes()
    monkeypatch.setattr(metrics, "promtext", None)
    reference = three_scrapes()

    assert repr(with_c) == repr(reference)


def test_window_steps_the_c_path_declines_go_to_the_reference():
    buckets = [(1.0, 2.0), (math.inf, 3.0)]
    odd = [
        (buckets, [[900, [1, 2**54]]], 1000.0, 300),  # beyond 2**53
        ([(1.0, 2.0), (math.inf, math.inf)], None, 1000.0, 300),  # int(inf) is refused
        (buckets, [(900, [1, 2])], 1000.0, 300),  # a tuple entry
        (buckets, [[900, [1, 2]], [950, [1, 2, 3]], [960, [1, 2]]], 1000.0, 300),
        (buckets, {"ts": 1}, 1000.0, 300),
        (buckets, [[math.nan, [1, 2]]], 1000.0, 300),
        ([(1.0, 2)], None, 1000.0, 300),  # an int total
    ]
    for case in odd:
        assert metrics.promtext.histogram_window(*case, 10, metrics._QUANTILE_LEVELS) is None
    # An int timestamp never reaches the C path (its argument is a float).
    step = metrics.histogram_window(buckets, [[900, [1, 2]]], timestamp=1000, window=300)
    assert step == metrics.histogram_window_reference(
        buckets, [[900, [1, 2]]], timestamp=1000, window=300
    )
