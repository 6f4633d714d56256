"""docker-compose.yml and the Dockerfile, checked statically against the code they run.

No Docker engine is needed (nor used; `docker compose config` is not assumed either): the file is
parsed with PyYAML, and the queues and time limits are read from workers/app.py with `ast`, so the
Celery app (whose import reads settings) is never imported.
"""

from __future__ import annotations

import ast
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from connector.settings import ENV_VARS
from tests.deploy.app_constants import app_constants, option

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
CELERY_SUBCOMMANDS = {"worker", "beat", "flower"}
OUR_PROGRAMS = {"celery", "connector", "python"}  # commands that run this repository's code
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|BASIC_AUTH|TOKEN$|KEYS?$")
REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[?-][^}]*)?\}$")




@cache
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def celery_services(subcommand: str) -> dict[str, list[str]]:
    found = {}
    for name, service in services().items():
        args = argv(service)
        if args[:1] == ["celery"] and subcommand in args:
            found[name] = args
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def runs_our_code(service: dict[str, Any]) -> bool:
    args = argv(service)
    return bool(args) and args[0] in OUR_PROGRAMS


def duration_seconds(text: str | int) -> float:
    """Compose durations: `660s`, `11m`, `1m30s`, `1h`, `500ms` (a bare number means seconds)."""
    if isinstance(text, int):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert "".join(number + unit for number, unit in parts) == text, f"bad duration {text!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def cli_command_names() -> set[str]:
    """Every command and group name the `connector` CLI registers (decorators and add_command)."""
    names: set[str] = set()
    from connector.cli.demo import SANDBOX_COMMANDS

    names.update(SANDBOX_COMMANDS)  # loaded lazily, by name
    trees = [ast.parse(module.read_text()) for module in sorted((REPO / "connector" / "cli").glob("*.py"))]
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr in {"command", "group"}):
                    explicit = [arg.value for arg in decorator.args if isinstance(arg, ast.Constant)]
                    names.add(str(explicit[0]) if explicit else node.name.replace("_", "-"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_command":
            names.update(str(arg.value) for arg in node.args if isinstance(arg, ast.Constant))
    return names


def module_defines(module: str, name: str) -> bool:
    path = REPO.joinpath(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return False
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, ast.ImportFrom) and any((alias.asname or alias.name) == name for alias in node.names):
            return True
    return False


def test_compose_has_every_part_of_the_product() -> None:
    queues, _ = app_constants()
    names = set(services())
    assert {"redis", "postgres", "beat", "flower", "xero-sandbox", "stampli-sftp", "migrate", "webhooks"} <= names
    assert {f"worker-{queue}" for queue in queues} <= names


def test_one_worker_per_queue_on_the_real_app() -> None:
    queues, _ = app_constants()
    workers = celery_services("worker")
    served = sorted(option(args, "-Q", "--queues") or "" for args in workers.values())
    assert served == sorted(queues), "each queue of workers.app.QUEUES needs exactly one worker service"
    for name, args in workers.items():
        queue = option(args, "-Q", "--queues")
        assert option(args, "-A", "--app") == "workers.app", name
        assert option(args, "-n", "--hostname") == f"{queue}@%h", name
        concurrency = option(args, "-c", "--concurrency")
        assert concurrency is not None, f"{name}: fix the concurrency; scale by adding workers"
        assert int(concurrency) >= 1
        assert not {"-B", "--beat"} & set(args), f"{name} must not embed beat"
    sftp = next(args for args in workers.values() if option(args, "-Q", "--queues") == "sftp")
    assert int(option(sftp, "-c", "--concurrency") or 0) <= 2, "Stampli's SFTP server limits connections"


def test_every_celery_command_uses_workers_app() -> None:
    assert module_defines("workers.app", "app")
    for name, service in services().items():
        args = argv(service)
        if args[:1] == ["celery"]:
            # Flower runs workers.monitor: the broker and the queues, no secrets (tests/deploy/test_flower.py)
            expected = "workers.monitor" if "flower" in args else "workers.app"
            assert option(args, "-A", "--app") == expected, name
            assert CELERY_SUBCOMMANDS & set(args), f"{name}: {args}"


def test_exactly_one_beat() -> None:
    beats = celery_services("beat")
    assert len(beats) == 1, beats
    (service,) = (services()[name] for name in beats)
    assert service.get("deploy", {}).get("replicas", 1) == 1
    assert "scale" not in service
    schedule = option(argv(service), "-s", "--schedule")
    assert schedule, "name beat's schedule file; the default is relative to the broker folder"
    mounts = [str(volume).split(":")[1] for volume in service.get("volumes", [])]
    assert any(schedule.startswith(mount.rstrip("/") + "/") for mount in mounts), "the schedule file needs a volume"


def test_connector_cli_commands_exist() -> None:
    known = cli_command_names()
    for name, service in services().items():
        args = argv(service)
        if args[:1] == ["connector"]:
            words = [arg for arg in args[1:] if not arg.startswith("-")][:2]
            assert words[0] in known, f"{name}: unknown command {words[0]!r}"
            if words[0] == "sandbox":
                assert words[1] in known, f"{name}: unknown sandbox {words[1]!r}"


def test_xero_sandbox_serves_the_urls_the_connector_uses() -> None:
    from sandbox.xero.cli import xero_command
    from sandbox.xero.state import SandboxState

    args = argv(services()["xero-sandbox"])
    assert args[:3] == ["connector", "sandbox", "xero"]
    known = {opt for param in xero_command.params for opt in param.opts}
    assert {arg.split("=")[0] for arg in args[3:] if arg.startswith("--")} <= known
    assert option(args, "--host") == "0.0.0.0"
    urls = SandboxState.urls(f"http://xero-sandbox:{option(args, '--port')}")
    env = compose()["x-connector-env"]
    for name in ("authorize", "token", "revocation", "connections", "api"):
        assert env[f"CONNECTOR_XERO_{name.upper()}_URL"] == urls[name], name


def receiver() -> tuple[str, dict[str, Any]]:
    """The one service running `connector webhooks serve`."""
    (found,) = [(name, s) for name, s in services().items() if argv(s)[:3] == ["connector", "webhooks", "serve"]]
    return found


def test_the_webhook_receiver_serves_on_its_port_with_a_healthcheck() -> None:
    from connector.cli.webhooks import serve
    from connector.webhooks.receiver import LIVENESS_PATH
    from connector.webhooks.serve import server_options

    name, service = receiver()
    args = argv(service)
    assert {arg.split("=")[0] for arg in args[3:] if arg.startswith("--")} <= {o for p in serve.params for o in p.opts}
    bind = option(args, "--bind")
    assert bind == "0.0.0.0:8780", "listen on the container's address, not loopback"
    probe = " ".join(str(part) for part in service["healthcheck"]["test"])
    assert f"127.0.0.1:8780{LIVENESS_PATH}" in probe
    assert [str(port).rsplit(":", 1)[1] for port in service["ports"]] == ["8780"]
    for backing in ("postgres", "redis"):
        assert service["depends_on"][backing]["condition"] == "service_healthy", name
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    graceful = server_options(bind, 1, 1)["graceful_timeout"]
    assert duration_seconds(service.get("stop_grace_period", "10s")) > graceful, "let gunicorn finish its requests"


def test_only_the_receiver_and_the_sandbox_standing_in_for_xero_get_the_webhook_key() -> None:
    name, _ = receiver()
    assert "CONNECTOR_XERO_WEBHOOK_KEY" not in compose()["x-connector-env"]
    for other, service in services().items():
        assert ("CONNECTOR_XERO_WEBHOOK_KEY" in environment(service)) == (other in {name, "xero-sandbox"}), other
    assert environment(services()[name])["CONNECTOR_XERO_WEBHOOK_KEY"] == environment(
        services()["xero-sandbox"])["CONNECTOR_XERO_WEBHOOK_KEY"]
    assert REFERENCE.match(environment(services()[name])["CONNECTOR_XERO_WEBHOOK_KEY"])


def test_the_sandbox_sends_its_webhooks_to_the_receiver() -> None:
    from connector.webhooks.receiver import WEBHOOK_PATH

    name, service = receiver()
    port = (option(argv(service), "--bind") or "").rsplit(":", 1)[1]
    assert option(argv(services()["xero-sandbox"]), "--webhook-url") == f"http://{name}:{port}{WEBHOOK_PATH}"


def test_python_commands_import_real_code() -> None:
    snippets = 0
    for name, service in services().items():
        args = argv(service)
        if args[:2] == ["python", "-c"]:
            snippets += 1
            for node in ast.walk(ast.parse(args[2])):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("connector", "workers")):
                    assert node.module is not None
                    for alias in node.names:
                        assert module_defines(node.module, alias.name), f"{name}: {node.module}.{alias.name}"
    assert snippets >= 1  # the one-shot migration


def test_every_connector_variable_is_a_real_setting() -> None:
    envs = [compose()["x-connector-env"], *(environment(service) for service in services().values())]
    for env in envs:
        for key, value in env.items():
            if key.startswith("CONNECTOR_"):
                assert key in ENV_VARS, f"{key} is not in connector.settings.ENV_VARS"
            for referenced in re.findall(r"\$\{(CONNECTOR_[A-Z0-9_]+)", str(value)):
                assert referenced in ENV_VARS, referenced


def test_every_connector_process_gets_the_shared_settings() -> None:
    shared = {key: str(value) for key, value in compose()["x-connector-env"].items()}
    assert shared["CONNECTOR_DATABASE_URL"].startswith("postgresql://")
    assert shared["CONNECTOR_DATABASE_URL"].endswith("@postgres:5432/connector")
    assert shared["CONNECTOR_BROKER_URL"].startswith("redis://redis:6379/")
    assert shared["CONNECTOR_FERNET_KEYS"].startswith("${CONNECTOR_FERNET_KEYS:?")
    for name, service in services().items():
        if runs_our_code(service) and name not in ("xero-sandbox", "flower"):  # flower: the broker only
            env = environment(service)
            assert {key: env.get(key) for key in shared} == shared, name


def test_no_secret_value_is_inline() -> None:
    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for value in node.values() for s in strings(value)]
        if isinstance(node, list):
            return [s for value in node for s in strings(value)]
        return [node] if isinstance(node, str) else []

    for name, service in {"x-connector-env": {"environment": compose()["x-connector-env"]}, **services()}.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert REFERENCE.match(value), f"{name}: {key} must come from the environment, not the file"
    for text in strings(compose()):
        for password in re.findall(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s]+)@", text):
            assert REFERENCE.match(password), f"a URL carries an inline password: {text!r}"
    for user in argv(services()["stampli-sftp"]):  # atmoz/sftp users: name:password:uid:gid:dirs
        password = re.match(r"^[^:]+:(\$\{[^}]*\}|[^:]*):", user)
        assert password, user
        assert REFERENCE.match(password.group(1)), "the SFTP password must come from the environment"


def test_worker_grace_period_outlasts_the_queue_time_limit() -> None:
    _, limits = app_constants()
    for name, args in celery_services("worker").items():
        queue = option(args, "-Q", "--queues")
        assert queue is not None
        grace = duration_seconds(services()[name].get("stop_grace_period", "10s"))
        assert grace > limits[queue], f"{name}: {grace}s would SIGKILL tasks inside their {limits[queue]}s limit"


def test_redis_is_durable_and_never_evicts() -> None:
    args = argv(services()["redis"])
    assert option(args, "--appendonly") == "yes"
    assert option(args, "--maxmemory-policy") == "noeviction"


def test_services_wait_for_healthy_dependencies() -> None:
    assert str(services()["postgres"]["image"]).startswith("postgres:15")
    for backing in ("postgres", "redis"):
        assert services()[backing].get("healthcheck", {}).get("test"), f"{backing} needs a healthcheck"
    for name, service in services().items():
        args = argv(service)
        if args[:1] == ["celery"]:
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        if args[:1] == ["celery"] and ("worker" in args or "beat" in args):
            assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services()["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_restart_policies() -> None:
    for name, service in services().items():
        expected = {"no"} if name == "migrate" else {"unless-stopped", "always", "on-failure"}
        assert str(service.get("restart")) in expected, name


def test_flower_port_and_basic_auth_from_the_environment() -> None:
    (name,) = celery_services("flower")
    flower = services()[name]
    assert option(argv(flower), "--port") == "5555"
    assert REFERENCE.match(environment(flower)["FLOWER_BASIC_AUTH"])


def test_our_services_share_one_image_built_from_this_repository() -> None:
    ours = {name: service for name, service in services().items() if runs_our_code(service)}
    assert {service["image"] for service in ours.values()} == {compose()["x-connector-image"]["image"]}
    for name, service in ours.items():
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (COMPOSE_FILE.parent / context / "Dockerfile").exists(), name


def dockerfile() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_runs_as_non_root_without_entrypoint_or_dev_deps() -> None:
    instructions = dockerfile()
    froms = [arg.split()[0] for op, arg in instructions if op == "FROM"]
    assert froms
    assert all(image == "python:3.11-slim" for image in froms)
    users = [arg for op, arg in instructions if op == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert not any(op in {"ENTRYPOINT", "CMD"} for op, _ in instructions), "compose and k8s give the command"
    runs = " ".join(arg for op, arg in instructions if op == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "install the project itself: pip install ."
    assert "[dev]" not in runs


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "tests", "var"} <= ignored
    assert not {"pyproject.toml", "README.md", "connector", "workers", "beat"} & ignored

