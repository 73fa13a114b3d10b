"""Schemathesis against our own OpenAPI schema (drf-spectacular), authenticated, every operation.

The real server (`runmonitor`) watches a private cluster, so fuzzed ops calls (compaction,
defragment, move-leader, alarm disarm) and KV writes hit nothing shared. Each operation gets a
bounded number of generated cases, schema-valid and schema-violating; none may answer >= 500,
and every answer must match the schema's content type and response schema. Logout is left
out: a fuzz case that succeeds would end the very session the run authenticates with.
"""

import os
import time
from collections import Counter

import httpx
import pytest

from tests.system.conftest import ADMIN_PASSWORD, collected_since, wait_until

pytestmark = pytest.mark.system

EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "30"))
# Logout would end the fuzzing session; the live watch is a stream that never ends by design
# (its refusals and frames are tried in kvmanager/tests/test_live_watch.py).
EXCLUDED = {("POST", "/api/auth/logout"), ("GET", "/api/kv/v3/watch")}


def _summary(failure: BaseException) -> str:
    """The titles of the failed checks (schemathesis raises a group of them)."""
    inner = getattr(failure, "exceptions", None) or [failure]
    return "; ".join(str(getattr(f, "title", "") or f).splitlines()[0] for f in inner)


def test_every_operation_survives_generated_input(etcd_cluster_factory, monitor):
    # Imported here: schemathesis is a requirements-dev tool only this system test needs.
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    cluster = etcd_cluster_factory(point_settings=False)
    server = monitor(cluster.endpoints, OPS_ENABLED="true")
    initial_password = (server.data_dir / "initial-admin-password").read_text().strip()
    token = server.login()
    auth = {"Authorization": f"Bearer {token}"}
    with server.client(token) as http:
        mark = int(time.time())
        wait_until(lambda: collected_since(http, mark), timeout=30, what="collected data")
        assert http.get("/api/schema/").status_code == 200
        assert httpx.get(f"{server.base_url}/api/schema/").status_code == 401
    schema = schemathesis.openapi.from_url(
        f"{server.base_url}/api/schema/?format=json", headers=auth
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if (op.method.upper(), op.path) not in EXCLUDED]
    assert len(operations) >= 36, "every documented operation is fuzzed"

    counts: Counter = Counter()
    statuses: Counter = Counter()
    failures: list[str] = []

    def fuzz(operation, mode):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call(headers=auth, timeout=60)
            counts[operation.label] += 1
            statuses[response.status_code // 100 * 100] += 1
            try:
                case.validate_response(response, checks=checks)
            except (AssertionError, FailureGroup) as failure:  # collect them all
                detail = _summary(failure)
                failures.append(
                    f"{mode.value} {operation.label} -> {response.status_code}: {detail}"
                )

        try:
            run()
        except Unsatisfiable:
            # Nothing to violate (e.g. no parameters and no body): only positive cases exist.
            assert mode is GenerationMode.NEGATIVE, operation.label

    for operation in fuzzed:
        for mode in GenerationMode:
            fuzz(operation, mode)

    print(
        f"\nfuzzed {len(fuzzed)} operations, {sum(counts.values())} cases, "
        f"statuses {dict(sorted(statuses.items()))}, failures {len(failures)}"
    )
    assert failures == [], "\n".join(sorted(set(failures)))
    assert statuses[500] == 0
    assert min(counts.values()) >= 1
    with server.client(token) as http:
        assert http.get("/api/status").status_code == 200, "the session survived the fuzz"
    assert server.alive() == {"web": True}
    logs = server.logs()  # gunicorn access/error log and the app's own lines
    assert "GET /api/status" in logs
    for secret in (token, initial_password, ADMIN_PASSWORD):
        assert secret not in logs
