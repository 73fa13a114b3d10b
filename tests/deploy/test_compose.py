"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

The compose file is validated against the vendored Compose-Spec JSON schema (see SCHEMA-SOURCE.md),
and every command a container would run is resolved against this checkout: gunicorn's
`module:attr`, celery's `-A` app and sub-command, `manage.py` commands, and `python -c` snippets.
"""

import ast
import copy
import hashlib
import http.server
import importlib
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml
from django.core.management import CommandError
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = HERE / "compose.schema.json"

APP_SERVICES = ("web", "worker", "beat", "journal")
MIGRATE = "migrate"
ETCD_MEMBERS = ("etcd1", "etcd2", "etcd3")
BACKING_SERVICES = ("postgres", "redis", *ETCD_MEMBERS)
# Names the app may be given that are not ours to define; none is needed today.
WELL_KNOWN_VARIABLES = frozenset({"TZ", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})


@pytest.fixture(autouse=True)
def _use_session_cluster():
    """Overrides the conftest fixture: these tests read files and import modules, no etcd."""
    yield


# --- parsing helpers -----------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def argv_of(command) -> list[str]:
    """A compose `command` (string or list) as the argv the container runs."""
    return list(command) if isinstance(command, list) else shlex.split(command)


def healthcheck_argv(test: list[str]) -> list[str]:
    kind, *rest = test
    if kind == "CMD-SHELL":
        return shlex.split(rest[0].replace("$$", "$"))
    assert kind == "CMD", f"unexpected healthcheck form {kind!r}"
    return rest


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    instructions = []
    for line in joined:
        keyword, _, args = line.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def dockerfile_stages() -> list[dict]:
    """Each FROM stage: image (ARGs resolved), name, and its instructions."""
    args, stages = {}, []
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append({"image": image, "name": name, "instructions": []})
        else:
            stages[-1]["instructions"].append((keyword, rest))
    return stages


def final_stage_values(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_stages()[-1]["instructions"] if kw == keyword]


def exec_form(value: str) -> list[str]:
    """CMD/ENTRYPOINT/HEALTHCHECK CMD in JSON exec form (the only form we allow)."""
    return json.loads(value)


def dockerfile_healthcheck_argv() -> list[str]:
    (value,) = final_stage_values("HEALTHCHECK")
    return exec_form(value[value.index("CMD ") + len("CMD ") :])


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def etcd_flags(service: dict) -> dict[str, str]:
    argv = argv_of(service["command"])
    assert Path(argv[0]).name == "etcd"
    flags = {}
    for arg in argv[1:]:
        name, sep, value = arg.partition("=")
        assert name.startswith("--") and sep, f"etcd flag not in --name=value form: {arg!r}"
        flags[name[2:]] = value
    return flags


# --- the commands are ones this project has -------------------------------------------------------


def check_gunicorn(argv: list[str]) -> None:
    from gunicorn.config import Config

    config = Config()
    parsed = config.parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    for key, value in vars(parsed).items():
        if key != "args" and value is not None:
            config.set(key.lower(), value)
    assert config.worker_class  # imports the worker class, e.g. gthread
    (target,) = parsed.args
    module_name, attr = target.split(":")
    application = getattr(importlib.import_module(module_name), attr)
    assert callable(application)


def check_celery(argv: list[str]) -> None:
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as celery_cli

    assert argv[1] == "-A", "the app is named first so every process loads our settings"
    app = find_app(argv[2])
    assert isinstance(app, Celery)
    assert app.main == "etcdmonitor"
    name, *rest = argv[3:]
    assert name in celery_cli.commands, f"celery has no sub-command {name!r}"
    context = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    celery_cli.commands[name].make_context(name, rest, obj=context)  # raises on a bad option


def check_manage_py(argv: list[str]) -> None:
    from django.core.management import get_commands, load_command_class

    assert argv[1] == "manage.py"
    assert (ROOT / "manage.py").is_file()
    name, *rest = argv[2:]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    command = load_command_class(commands[name], name)
    command.create_parser("manage.py", name).parse_args(rest)  # SystemExit on a bad option


def check_python_snippet(argv: list[str]) -> None:
    assert argv[1] == "-c"
    tree = ast.parse(argv[2])
    modules = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"no module {module!r}"


def check_project_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "gunicorn":
        check_gunicorn(argv)
    elif program == "celery":
        check_celery(argv)
    elif program == "python" and argv[1] == "manage.py":
        check_manage_py(argv)
    elif program == "python" and argv[1] == "-c":
        check_python_snippet(argv)
    else:
        pytest.fail(f"not a command of this project: {shlex.join(argv)}")


def project_commands() -> list[tuple[str, list[str]]]:
    """Every argv the etcdmonitor image runs: compose commands/healthchecks and the Dockerfile's."""
    services = load_compose()["services"]
    found = []
    for name in (*APP_SERVICES, MIGRATE):
        found.append((f"{name}.command", argv_of(services[name]["command"])))
        healthcheck = services[name].get("healthcheck", {})
        if "test" in healthcheck:
            found.append((f"{name}.healthcheck", healthcheck_argv(healthcheck["test"])))
    found.append(("Dockerfile CMD", exec_form(final_stage_values("CMD")[0])))
    found.append(("Dockerfile HEALTHCHECK", dockerfile_healthcheck_argv()))
    for run in final_stage_values("RUN"):
        for step in run.split("&&"):
            words = [w for w in shlex.split(step) if not re.match(r"^[A-Z_]+=", w)]
            if words[:2] == ["python", "manage.py"]:
                found.append((f"Dockerfile RUN {words[2]}", words))
    return found


PROJECT_COMMANDS = project_commands()


@pytest.mark.parametrize(
    "argv", [argv for _, argv in PROJECT_COMMANDS], ids=[where for where, _ in PROJECT_COMMANDS]
)
def test_every_command_the_image_runs_is_one_the_project_really_has(argv):
    check_project_command(argv)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("gunicorn etcdmonitor_site.wsgi:app --bind 0.0.0.0:9090", AttributeError),
        ("gunicorn etcdmonitor_site.wsgi:application --worker-klass gthread", SystemExit),
        ("celery -A etcdmonitor_site wrker -l info", AssertionError),
        ("celery -A etcdmonitor_site worker --loglvl info", click.UsageError),
        ("celery -A accounts worker -l info", AttributeError),
        ("python manage.py migrat --noinput", AssertionError),
        ("python manage.py migrate --no-input-please", CommandError),
        ("python -c 'import no_such_module_here'", AssertionError),
        ("uwsgi --http :9090", pytest.fail.Exception),
    ],
)
def test_command_check_rejects_commands_the_project_does_not_have(command, error):
    with pytest.raises(error):
        check_project_command(shlex.split(command))


# --- schema -------------------------------------------------------------------------------------


def schema_errors(document: dict) -> list:
    validator = Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    return list(validator.iter_errors(document))


def test_compose_file_is_valid_against_the_compose_spec_schema():
    errors = schema_errors(load_compose())
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_schema_validation_reports_each_mistake_in_a_broken_copy():
    broken = copy.deepcopy(load_compose())
    broken["services"]["web"]["ports"] = "127.0.0.1:9090:9090"  # must be a list
    worker_deps = broken["services"]["worker"]["depends_on"]  # shared with the anchor's users
    broken["services"]["worker"]["depends_on"] = {
        **worker_deps,
        "postgres": {"condition": "service_healty"},
    }
    broken["services"]["postgres"]["healthcheck"]["bogus_key"] = 1
    broken["servcies"] = {}
    paths = sorted(tuple(e.absolute_path)[:3] for e in schema_errors(broken))
    assert paths == [
        (),
        ("services", "postgres", "healthcheck"),
        ("services", "web", "ports"),
        ("services", "worker", "depends_on"),
    ]


def test_vendored_schema_is_the_recorded_dclint_file():
    recorded = re.search(r"sha256[^0-9a-f]*([0-9a-f]{64})", (HERE / "SCHEMA-SOURCE.md").read_text())
    assert recorded, "SCHEMA-SOURCE.md records the sha256"
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == recorded.group(1)
    assert json.loads(SCHEMA_FILE.read_text())["$schema"].endswith("draft-07/schema")


# --- services, sharing and start order ----------------------------------------------------------


def test_compose_defines_the_app_the_backing_services_and_a_3_member_etcd():
    assert set(load_compose()["services"]) == {*APP_SERVICES, MIGRATE, *BACKING_SERVICES}


def test_web_worker_beat_and_migrate_run_one_image_with_one_configuration():
    services = load_compose()["services"]
    shared = ("build", "image", "environment", "volumes")
    reference = {key: services["web"][key] for key in shared}
    assert reference["build"] == "." and reference["image"]
    for name in (*APP_SERVICES, MIGRATE):
        assert {key: services[name][key] for key in shared} == reference, name


def test_app_services_start_after_healthy_backing_services_and_a_finished_migrate():
    services = load_compose()["services"]
    for name in APP_SERVICES:
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {
            **dict.fromkeys(BACKING_SERVICES, "service_healthy"),
            MIGRATE: "service_completed_successfully",
        }, name
    migrate_deps = services[MIGRATE]["depends_on"]
    assert {dep: spec["condition"] for dep, spec in migrate_deps.items()} == dict.fromkeys(
        BACKING_SERVICES, "service_healthy"
    )
    assert services[MIGRATE]["restart"] == "no"


def test_every_long_running_service_has_a_healthcheck():
    services = load_compose()["services"]
    image_has_healthcheck = bool(final_stage_values("HEALTHCHECK"))
    for name, service in services.items():
        if name == MIGRATE:
            continue
        healthcheck = service.get("healthcheck", {})
        assert not healthcheck.get("disable"), name
        if "test" not in healthcheck:
            # Only the web server serves the port the image's HEALTHCHECK probes.
            assert "build" in service and image_has_healthcheck, name
            assert argv_of(service["command"])[:3] == ["python", "manage.py", "runmonitor"], name
        else:
            assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), name


# --- etcd cluster -------------------------------------------------------------------------------


def test_every_etcd_member_enables_v2_and_joins_the_same_three_member_cluster():
    services = load_compose()["services"]
    expected_cluster = {name: f"http://{name}:2380" for name in ETCD_MEMBERS}
    for name in ETCD_MEMBERS:
        flags = etcd_flags(services[name])
        assert flags["enable-v2"] == "true", name
        assert flags["name"] == name
        initial = dict(entry.split("=", 1) for entry in flags["initial-cluster"].split(","))
        assert initial == expected_cluster, name
        assert flags["initial-advertise-peer-urls"] == expected_cluster[name]
        assert flags["advertise-client-urls"] == f"http://{name}:2379"
        assert flags["initial-cluster-state"] == "new"
        assert services[name]["image"] in (
            "quay.io/coreos/etcd:v3.4.23",
            "gcr.io/etcd-development/etcd:v3.4.23",
        )
    tokens = {etcd_flags(services[name])["initial-cluster-token"] for name in ETCD_MEMBERS}
    assert len(tokens) == 1


def test_etcd_member_flags_are_flags_of_etcd_3_4():
    etcd = shutil.which("etcd")
    assert etcd, "etcd 3.4 is installed for the test cluster"
    version = subprocess.run([etcd, "--version"], capture_output=True, text=True, check=True)
    assert "etcd Version: 3.4." in version.stdout
    usage = subprocess.run([etcd, "--help"], capture_output=True, text=True).stdout
    known = set(re.findall(r"^\s+--([a-z0-9-]+)", usage, re.MULTILINE))
    for name in ETCD_MEMBERS:
        unknown = set(etcd_flags(load_compose()["services"][name])) - known
        assert not unknown, f"{name}: {unknown}"


def test_app_etcd_endpoints_are_the_members_client_urls():
    services = load_compose()["services"]
    endpoints = services["web"]["environment"]["ETCD_ENDPOINTS"].split(",")
    assert endpoints == [etcd_flags(services[m])["advertise-client-urls"] for m in ETCD_MEMBERS]


# --- environment --------------------------------------------------------------------------------


def test_app_services_set_only_variables_of_the_configuration_contract():
    settings_source = (ROOT / "etcdmonitor_site" / "settings.py").read_text()
    contract = {name for name in env_example_names() if f'"{name}"' in settings_source}
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "ETCD_ENDPOINTS"} <= contract
    services = load_compose()["services"]
    for name in (*APP_SERVICES, MIGRATE):
        unknown = set(services[name]["environment"]) - contract - WELL_KNOWN_VARIABLES
        assert not unknown, f"{name} sets variables settings.py does not read: {unknown}"
    interpolated = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    assert interpolated <= contract, interpolated - contract


def test_secret_key_must_be_supplied_and_the_data_dir_is_a_named_volume():
    compose = load_compose()
    environment = compose["services"]["web"]["environment"]
    assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?[^}]+\}", environment["DJANGO_SECRET_KEY"])
    assert environment["DATA_DIR"] == "/data"
    (mount,) = compose["services"]["web"]["volumes"]
    volume, target = mount.split(":")
    assert target == "/data" and volume in compose["volumes"]


def test_app_connection_urls_point_at_the_compose_services():
    services = load_compose()["services"]
    environment = services["web"]["environment"]
    database = urlsplit(environment["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.scheme == "postgres" and database.hostname == "postgres"
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    broker = urlsplit(environment["CELERY_BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)


# --- Dockerfile and build context ---------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_3_11_slim():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert {stage["image"] for stage in stages} == {"python:3.11-slim-bookworm"}
    names = {stage["name"] for stage in stages}
    for _, rest in stages[-1]["instructions"]:
        if rest.startswith("--from="):
            assert rest.split()[0].removeprefix("--from=") in names


def test_image_runs_as_a_non_root_user_with_data_dir_as_a_volume():
    stages = dockerfile_stages()
    users = final_stage_values("USER")
    assert users and users[-1] not in ("root", "0")
    user_created = any(
        kw == "RUN" and "useradd" in rest and users[-1] in rest
        for kw, rest in stages[-1]["instructions"]
    )
    assert user_created
    assert any("DATA_DIR=/data" in env for env in final_stage_values("ENV"))
    assert final_stage_values("VOLUME") == ['["/data"]']


def test_image_exposes_the_port_the_server_binds_and_healthcheck_probes():
    (port,) = final_stage_values("EXPOSE")
    cmd = exec_form(final_stage_values("CMD")[0])
    assert cmd[cmd.index("--bind") + 1] == f"0.0.0.0:{port}"
    compose_web = argv_of(load_compose()["services"]["web"]["command"])
    assert compose_web == cmd
    assert f"http://127.0.0.1:{port}/healthz" in dockerfile_healthcheck_argv()[2]


def test_static_files_are_collected_at_build_with_a_throwaway_key():
    (collect,) = [run for run in final_stage_values("RUN") if "collectstatic" in run]
    assert "DJANGO_SECRET_KEY=" in collect and "DATA_DIR=" in collect


def test_healthz_is_the_url_the_image_healthcheck_probes():
    from django.urls import resolve

    from etcdmonitor_site.health import healthz

    assert resolve("/healthz").func is healthz


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    status = 200
    hosts: list[str] = []

    def do_GET(self):
        type(self).hosts.append(self.headers["Host"])
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_web():
    _RecordingHandler.hosts = []
    _RecordingHandler.status = 200
    server = http.server.HTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_image_healthcheck(server, allowed_hosts: str | None) -> int:
    code = dockerfile_healthcheck_argv()[2].replace(
        "http://127.0.0.1:9090", f"http://127.0.0.1:{server.server_port}"
    )
    env = {"PATH": "/usr/bin:/bin"}
    if allowed_hosts is not None:
        env["DJANGO_ALLOWED_HOSTS"] = allowed_hosts
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode


@pytest.mark.parametrize(
    "allowed_hosts",
    [None, "localhost,127.0.0.1", "monitor.example.com,localhost", ".example.com", "*"],
)
def test_image_healthcheck_sends_a_host_django_accepts(fake_web, allowed_hosts):
    from django.http.request import validate_host

    assert run_image_healthcheck(fake_web, allowed_hosts) == 0
    (host,) = _RecordingHandler.hosts
    allowed = (allowed_hosts or "localhost,127.0.0.1").split(",")
    assert validate_host(host, allowed)


def test_image_healthcheck_fails_when_web_answers_with_an_error(fake_web):
    _RecordingHandler.status = 503
    assert run_image_healthcheck(fake_web, "localhost") != 0


def dockerignore_excludes(path: str) -> bool:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(fnmatch(path, p) or fnmatch(path, p.removeprefix("**/")) for p in patterns)


def test_build_context_keeps_the_app_and_leaves_out_secrets_and_local_state():
    for secret_or_state in (".env", ".git", ".venv", "data", "staticfiles", ".test-data"):
        assert dockerignore_excludes(secret_or_state), secret_or_state
    assert dockerignore_excludes("devtools"), "the dev cluster launcher stays out of the image"
    for needed in ("requirements.txt", "manage.py", "etcdmonitor_site", "etcdgateway"):
        assert not dockerignore_excludes(needed), needed
        assert (ROOT / needed).exists()
    sources = [
        rest.split()[0]
        for stage in dockerfile_stages()
        for kw, rest in stage["instructions"]
        if kw == "COPY" and not rest.startswith("--from=")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists() and (source == "." or not dockerignore_excludes(source))
