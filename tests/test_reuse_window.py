"""The per-process reuse window: a window given per read, fixed or depending on the value."""

import time

from etcdmonitor_site.reuse import ReuseWindow


def test_a_value_is_reused_within_the_window_and_not_after(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    window = ReuseWindow(max_entries=4)
    window.put("key", "value")

    now[0] += 9.9
    assert window.get("key", 10) == "value"
    assert window.get("key", 0) is None, "a window of 0 turns reuse off"
    now[0] += 0.1
    assert window.get("key", 10) is None


def test_a_window_may_depend_on_the_stored_value(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    window = ReuseWindow(max_entries=4)
    window.put("answer", (True, "definite"))
    window.put("guess", (True, "guess"))

    def seconds(hit):
        return 300 if hit[1] == "definite" else 30

    now[0] += 60
    assert window.get("answer", seconds) == (True, "definite")
    assert window.get("guess", seconds) is None
    assert window.get("missing", seconds) is None


def test_false_is_a_stored_value_and_none_is_never_stored():
    window = ReuseWindow(max_entries=4)
    window.put("off", False)
    window.put("nothing", None)

    assert window.get("off", 10) is False
    assert window.get("nothing", 10) is None
