"""Pool threads carry their Python names as OS names (what top -H and the fleet bench read)."""

import threading
from pathlib import Path

from etcdmonitor_site.threads import named_pool


def _os_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def test_a_named_pools_threads_show_their_names_to_the_os():
    with named_pool(2, "collect") as pool:
        names = {pool.submit(_os_name).result() for _ in range(4)}

    assert names and all(name.startswith("collect_") for name in names)
    assert _os_name() != "collect_0"  # the caller's own name is untouched
