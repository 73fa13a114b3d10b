"""The project's shape, as rules a change cannot quietly break (issue 18).

Each rule reads the source tree: etcd's protocol stays in `etcdgateway`, errors reach clients
through one handler, every app audits through one helper.
"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ drives pyetcd directly on purpose: it is the baseline our own client is measured against.
SKIPPED_DIRS = {".venv", "tests", "migrations", "node_modules", ".git", "bench"}


def project_modules():
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if SKIPPED_DIRS.intersection(relative.parts[:-1]) or relative.parts[0].startswith("."):
            continue
        yield relative, ast.parse(path.read_text(), filename=str(path))


def test_only_the_gateway_speaks_etcds_protocol():
    offenders = []
    for relative, tree in project_modules():
        if relative.parts[0] == "etcdgateway":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyetcd"):
                offenders.append(f"{relative}:{node.lineno} imports {node.module}")
            elif isinstance(node, ast.Import) and any(
                alias.name.startswith("pyetcd") for alias in node.names
            ):
                offenders.append(f"{relative}:{node.lineno} imports pyetcd")
            elif isinstance(node, ast.Attribute) and node.attr in ("stub", "etcdrpc"):
                offenders.append(f"{relative}:{node.lineno} names .{node.attr}")
    assert offenders == []


def test_no_view_maps_its_own_errors():
    """One DRF exception handler (settings' EXCEPTION_HANDLER); views choose a dialect at most."""
    offenders = [
        f"{relative}:{node.lineno}"
        for relative, tree in project_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "handle_exception"
    ]
    assert offenders == []


def test_every_apps_tests_are_collected():
    """A tests/ folder outside pytest's testpaths would silently never run."""
    testpaths = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"][
            "testpaths"
        ]
    )
    with_tests = {path.parent.name for path in ROOT.glob("*/tests") if path.is_dir()}
    assert with_tests - {"tests"} <= testpaths
