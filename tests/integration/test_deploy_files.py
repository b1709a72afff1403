"""The deployment files (deploy/, .dockerignore, docs/deploy.md), checked without Docker.

Docker does not run here, so the files are checked as files: the Compose file against the
Compose specification's JSON schema (vendored in tests/fixtures/schemas), the manifests against
Kubernetes' schemas (the `kubernetes-validate` package), every `cxloop` command they run against
the real command tree, every `CXLOOP_*` name against the settings model, and the settings that
must match across processes against docs/deploy.md.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml
from cryptography.fernet import Fernet
from dockerfile_parse import DockerfileParser
from pydantic import SecretStr, ValidationError

from cxloop.cli.main import app
from cxloop.settings import Settings
from cxloop.web.health import router as health_router

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
DOCS = ROOT / "docs" / "deploy.md"
COMPOSE_SCHEMA = ROOT / "tests" / "fixtures" / "schemas" / "compose-spec.json"

IMAGE = "cxloop"
# Variables that are not cxloop's settings but belong in the files: PostgreSQL's.
FOREIGN_VARIABLES = {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}
SAME_EVERYWHERE = "The same on every process"
# Typer ships its own copy of Click (older Typers use Click itself); its UsageError is a base of
# the BadParameter that Typer exports.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
MAY_DIFFER = "May differ per process"


# --- reading the files


def env_name(field: str) -> str:
    return f"CXLOOP_{field.upper()}"


SETTING_NAMES = {env_name(field) for field in Settings.model_fields}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def cxloop_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the cxloop image."""
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("image", "").split(":")[0] == IMAGE
    }


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _path, document in manifests():
        if document["kind"] in {"Deployment", "Job"}:
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def cxloop_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            if container["image"].split(":")[0] == IMAGE:
                yield f"{name}/{container['name']}", container


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as `docker compose` and kustomize read them (no quotes, # comments)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def configmap() -> dict[str, str]:
    (data,) = [d["data"] for _p, d in manifests() if d["kind"] == "ConfigMap"]
    return data


def dockerfile() -> DockerfileParser:
    """The Dockerfile parsed from a copy in memory: a parser on the path writes the file when
    its content is set, and xdist workers collecting this module at once emptied it."""
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


def test_reading_the_dockerfile_never_writes_it() -> None:
    before = DOCKERFILE.stat().st_mtime_ns
    assert final_stage(dockerfile())  # parsed: it has stages
    assert DOCKERFILE.stat().st_mtime_ns == before


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    """The instructions of the last stage (after the last FROM)."""
    structure = parser.structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def instructions(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [ins["value"] for ins in stage if ins["instruction"] == name]


def doc_settings(heading: str) -> list[str]:
    """The `CXLOOP_*` names in the first column of the table under a heading of docs/deploy.md."""
    text = DOCS.read_text()
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^#)", text, re.M | re.S)
    assert match, f"docs/deploy.md has no section {heading!r}"
    return re.findall(r"^\| `(CXLOOP_[A-Z0-9_]+)` \|", match.group(1), re.M)


# --- Compose variable interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}


def interpolate(value: str, environment: dict[str, str]) -> str:
    """A value as `docker compose` interpolates it (defaults may hold braces: `{}`)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            expression = value[i + 2 : j - 1]
            name, operator, rest = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?(.*)", expression,
                                            re.S).groups()  # fmt: skip
            given = environment.get(name)
            if operator in (":-", "-"):
                empty = given is None or (operator == ":-" and given == "")
                out.append(interpolate(rest, environment) if empty else given)
            elif operator in (":?", "?"):
                if given is None or (operator == ":?" and given == ""):
                    raise LookupError(f"{name}: {rest}")
                out.append(given)
            else:
                out.append(given or "")
            i = j
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def anchor_environment() -> dict[str, str]:
    return compose()["x-cxloop-env"]


REQUIRED_VALUES = {
    "POSTGRES_PASSWORD": "correct-horse",
    "CXLOOP_SECRET_KEY": "s" * 64,
    "CXLOOP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def settings_from_environment(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings as a process given exactly this environment builds them (no cxloop.toml)."""
    import os

    for name in [n for n in os.environ if n.startswith("CXLOOP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CXLOOP_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("CXLOOP_DATA_DIR", str(tmp_path / "data"))
    for name, value in environment.items():
        if name.startswith("CXLOOP_"):
            monkeypatch.setenv(name, value)
    return Settings()


# --- commands


def check_command(argv: list[str]) -> None:
    """Parse `cxloop ARGV` with the real command tree, as the CLI would, without running it.

    Raises UsageError (unknown command, unknown option, bad value) when cxloop would refuse it.
    """
    command: Any = typer.main.get_command(app)
    path, rest = ["cxloop"], list(argv)
    while hasattr(command, "get_command"):  # a group of commands
        if not rest:
            raise UsageError(f"`{' '.join(path)}` needs a command")
        name, rest = rest[0], rest[1:]
        found = command.get_command(command.context_class(command, info_name=path[-1]), name)
        if found is None:
            raise UsageError(f"`{' '.join(path)}` has no command {name!r}")
        command, path = found, [*path, name]
    command.make_context(" ".join(path), rest)


def dockerfile_commands() -> list[tuple[str, list[str]]]:
    stage = final_stage(dockerfile())
    (entrypoint,) = instructions(stage, "ENTRYPOINT")
    (cmd,) = instructions(stage, "CMD")
    assert json.loads(entrypoint) == ["cxloop"], "the image's ENTRYPOINT is cxloop"
    return [("Dockerfile CMD", json.loads(cmd))]


def compose_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, service in cxloop_services(compose()).items():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        assert command, f"compose service {name} says which cxloop command it runs"
        found.append((f"compose {name}", command))
    return found


def kubernetes_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, container in cxloop_containers():
        assert container.get("command") in (None, ["cxloop"]), f"{name} keeps the entrypoint"
        assert container.get("args"), f"{name} says which cxloop command it runs"
        found.append((f"kubernetes {name}", container["args"]))
    return found


ALL_COMMANDS = dockerfile_commands() + compose_commands() + kubernetes_commands()


@pytest.mark.parametrize(("where", "argv"), ALL_COMMANDS, ids=[w for w, _ in ALL_COMMANDS])
def test_every_command_the_files_run_exists_with_its_options(where: str, argv: list[str]) -> None:
    check_command(argv)


def test_the_files_run_web_worker_scheduler_and_db_upgrade() -> None:
    for commands in (compose_commands(), kubernetes_commands()):
        heads = {" ".join(argv[:2]) if argv[0] == "db" else argv[0] for _w, argv in commands}
        assert heads == {"serve", "worker", "scheduler", "db upgrade"}
    web = [argv for _w, argv in compose_commands() + kubernetes_commands() if argv[0] == "serve"]
    assert all("--no-worker" in argv and "0.0.0.0" in argv for argv in web)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--no-workers"],  # a misspelled option
        ["workers", "--workers", "2"],  # a command that does not exist
        ["worker", "--workers", "0"],  # out of range
        ["worker", "--workers", "four"],  # not a number
        ["db", "upgrades"],
        ["db"],
    ],
)
def test_the_command_check_refuses_what_cxloop_would_refuse(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        check_command(argv)


# --- the image


def test_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() -> None:
    parser = dockerfile()
    froms = [ins["value"] for ins in parser.structure if ins["instruction"] == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    stage = final_stage(parser)
    users = instructions(stage, "USER")
    assert users, "the runtime stage names its user"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric uid (Kubernetes checks it), not root"
    # The runtime installs wheels made in the build stage, and copies no sources of its own.
    assert not any(v.split()[0] in ("src", ".", "./") for v in instructions(stage, "COPY"))
    assert any("from=build" in run and "--no-index" in run for run in instructions(stage, "RUN"))


def test_dockerfile_health_check_asks_livez_on_the_exposed_port() -> None:
    stage = final_stage(dockerfile())
    (expose,) = instructions(stage, "EXPOSE")
    (check,) = instructions(stage, "HEALTHCHECK")
    argv = json.loads(check[check.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"], "slim images have no curl"
    compile(argv[2], "HEALTHCHECK", "exec")
    url = re.search(r"'(http://[^']+)'", argv[2]).group(1)
    assert url == f"http://127.0.0.1:{expose}/livez"
    assert "/livez" in {route.path for route in health_router.routes}


def test_dockerfile_data_directory_is_a_volume() -> None:
    stage = final_stage(dockerfile())
    env = " ".join(instructions(stage, "ENV"))
    data_dir = re.search(r"CXLOOP_DATA_DIR=(\S+)", env).group(1)
    (volume,) = instructions(stage, "VOLUME")
    assert json.loads(volume) == [data_dir]
    assert set(re.findall(r"(CXLOOP_[A-Z0-9_]+)=", env)) <= SETTING_NAMES


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether `.dockerignore` keeps PATH out of the build context (last match wins)."""
    ignored = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(parts[depth - 1], pattern[3:])
            ):
                ignored = not negate
                break
    return ignored


def test_dockerignore_sends_what_the_image_needs_and_no_local_state() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    build_stage = dockerfile().structure
    copied = [
        source
        for ins in build_stage
        if ins["instruction"] == "COPY" and "--from" not in ins["value"]
        for source in ins["value"].split()[:-1]
    ]
    assert copied, "the build stage copies the sources"
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source, patterns), f".dockerignore leaves out {source}"
    for local in (".venv", "cxloop-data", "deploy/.env", ".git", "tests", "src/x/__pycache__"):
        assert dockerignored(local, patterns), f".dockerignore lets {local} into the image"


def test_images_are_plain_names_without_a_registry_host() -> None:
    images = [s["image"] for s in compose()["services"].values()]
    images += [c["image"] for _n, spec in pod_specs() for c in spec["containers"]]
    images += [v.split()[0] for v in re.findall(r"^ARG PYTHON_IMAGE=(.+)$", DOCKERFILE.read_text(),
                                                   re.M)]  # fmt: skip
    for image in images:
        first = image.split("/")[0]
        assert "/" not in image or not ("." in first or ":" in first), image


# --- Compose


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(compose())


def test_compose_schema_refuses_a_misspelled_key() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    broken = compose()
    broken["services"]["web"]["comand"] = broken["services"]["web"].pop("command")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_compose_runs_every_part_of_the_scaled_out_mode() -> None:
    document = compose()
    services = document["services"]
    by_command = {tuple(s["command"][:2]): (n, s) for n, s in cxloop_services(document).items()}
    web = services["web"]
    assert web["command"][:2] == ["serve", "--no-worker"] and web["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1
    assert ("db", "upgrade") in by_command
    upgrade_name, upgrade = by_command[("db", "upgrade")]
    assert upgrade["restart"] == "no"
    for name, service in cxloop_services(document).items():
        if name == upgrade_name:
            continue
        condition = service["depends_on"][upgrade_name]["condition"]
        assert condition == "service_completed_successfully", name
    images = {s["image"].split(":")[0] for s in services.values()}
    assert {"postgres", "redis"} <= images
    assert any(s.get("image", "").startswith("axllent/mailpit") for s in services.values())
    assert {"postgres", "redis"} <= set(upgrade["depends_on"]) | set(web["depends_on"])
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has a health check"


def test_compose_checks_the_health_of_every_long_running_process_on_its_port() -> None:
    (expose,) = instructions(final_stage(dockerfile()), "EXPOSE")
    for name, service in cxloop_services(compose()).items():
        argv = service["command"]
        if argv[0] == "serve":  # the image's health check asks the port it exposes
            assert argv[argv.index("--port") + 1] == expose, name
            assert "healthcheck" not in service, name
        elif argv[0] in ("worker", "scheduler"):  # their probe server, on --health-port
            port = argv[argv.index("--health-port") + 1]
            check = " ".join(service["healthcheck"]["test"])
            assert f"http://127.0.0.1:{port}/livez" in check, name
        else:  # a one-shot command serves nothing
            assert service["healthcheck"]["disable"] is True, name


def test_every_cxloop_service_takes_the_one_shared_environment() -> None:
    shared = anchor_environment()
    for name, service in cxloop_services(compose()).items():
        environment = service["environment"]
        own = {k: v for k, v in environment.items() if k not in shared or shared[k] != v}
        assert set(own) <= FOREIGN_VARIABLES, f"{name} sets its own {sorted(own)}"
        assert set(shared) <= set(environment), name


def test_compose_names_only_real_settings() -> None:
    names = set(anchor_environment())
    for service in cxloop_services(compose()).values():
        names |= set(service["environment"])
    names |= set(env_file(DEPLOY / "env.example"))
    assert names - FOREIGN_VARIABLES <= SETTING_NAMES, sorted(
        names - FOREIGN_VARIABLES - SETTING_NAMES
    )


def test_env_example_holds_every_variable_compose_requires_and_no_other() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    example = set(env_file(DEPLOY / "env.example"))
    assert required <= example, f"env.example lacks {sorted(required - example)}"
    assert example <= used, f"compose.yaml never reads {sorted(example - used)}"


def test_compose_reads_each_setting_from_its_own_variable() -> None:
    # A copy-paste slip (`CXLOOP_RETRY_BASE_S: ${CXLOOP_RETRY_CAP_S:-2.0}`) would pass every
    # other check; the URLs are put together from parts on purpose.
    for name, value in anchor_environment().items():
        read = re.findall(r"\$\{([A-Z0-9_]+)", value)
        if name in {"CXLOOP_DATABASE_URL", "CXLOOP_QUEUE_URL", "CXLOOP_LOG_JSON"}:
            continue
        assert read == [name], f"{name} reads {read}"
    interpolated = set(re.findall(r"\$\{(CXLOOP_[A-Z0-9_]+)", COMPOSE.read_text()))
    assert interpolated <= SETTING_NAMES, sorted(interpolated - SETTING_NAMES)


def test_compose_shares_every_setting_that_must_match() -> None:
    missing = set(doc_settings(SAME_EVERYWHERE)) - set(anchor_environment())
    assert not missing, f"x-cxloop-env lacks {sorted(missing)}"


def test_compose_refuses_to_start_without_keys() -> None:
    for name in REQUIRED_VALUES:
        environment = {k: v for k, v in REQUIRED_VALUES.items() if k != name}
        with pytest.raises(LookupError, match=name):
            {k: interpolate(v, environment) for k, v in anchor_environment().items()}


def test_compose_shared_values_are_valid_settings_with_the_code_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # With only the required values given, the shared environment must be valid settings, and
    # its defaults those of the code: the file must not quietly change a default.
    environment = {k: interpolate(v, REQUIRED_VALUES) for k, v in anchor_environment().items()}
    loaded = settings_from_environment(environment, monkeypatch, tmp_path)
    defaults = settings_from_environment({}, monkeypatch, tmp_path)
    for name in anchor_environment():
        field = name.removeprefix("CXLOOP_").lower()
        if name in REQUIRED_VALUES or name in {
            "CXLOOP_DATABASE_URL",
            "CXLOOP_QUEUE_URL",
            "CXLOOP_SMTP_HOST",
            "CXLOOP_BASE_URL",
            "CXLOOP_TRUSTED_PROXIES",
            "CXLOOP_LOG_JSON",
        }:
            continue  # set on purpose: the compose network, its proxy, JSON logs
        value, default = plain(getattr(loaded, field)), plain(getattr(defaults, field))
        # Compose cannot leave a variable unset: "" stands for "none" (no SMTP login, no app).
        assert value == default or (default is None and value == ""), name
    assert (
        loaded.database_url.startswith("postgresql://") and "correct-horse" in loaded.database_url
    )
    assert loaded.queue_url.startswith("redis://")


# --- Kubernetes


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_kubernetes_manifests_follow_kubernetes_schemas(path: Path) -> None:
    version = kubernetes_validate.latest_version()
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            kubernetes_validate.validate(document, version, strict=True)


def test_kubernetes_schemas_refuse_a_misspelled_field() -> None:
    web = deployment("web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest_and_makes_the_secret() -> None:
    listed = kustomization()["resources"]
    assert sorted(listed) == [p.name for p in manifest_files()]
    (generator,) = kustomization()["secretGenerator"]
    assert generator["name"] == "cxloop-secrets"
    for source in generator["envs"]:
        assert (KUBERNETES / f"{source}.example").is_file(), f"{source}.example is shipped"


def deployment(component: str) -> dict[str, Any]:
    (found,) = [
        d
        for _p, d in manifests()
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def test_kubernetes_web_is_probed_on_livez_and_readyz() -> None:
    web = deployment("web")
    assert web["spec"]["replicas"] >= 2
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    routes = {route.path for route in health_router.routes}
    assert {"/readyz", "/livez"} <= routes
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    serve = container["args"]
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == int(
        serve[serve.index("--port") + 1]
    )


@pytest.mark.parametrize("component", ["worker", "scheduler"])
def test_kubernetes_workers_and_the_scheduler_are_probed_on_their_health_port(
    component: str,
) -> None:
    (container,) = deployment(component)["spec"]["template"]["spec"]["containers"]
    argv = container["args"]
    port = int(argv[argv.index("--health-port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"]["path"] == path
        assert ports[container[probe]["httpGet"]["port"]] == port


def test_kubernetes_runs_workers_and_exactly_one_scheduler() -> None:
    assert deployment("worker")["spec"]["replicas"] >= 2
    scheduler = deployment("scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"


def test_kubernetes_pods_run_as_the_image_user_and_not_as_root() -> None:
    image_user = int(instructions(final_stage(dockerfile()), "USER")[-1].split(":")[0])
    for name, spec in pod_specs():
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] == image_user, name
    for name, container in cxloop_containers():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert container["resources"]["requests"] and container["resources"]["limits"], name


def test_kubernetes_pods_share_one_configuration() -> None:
    for name, container in cxloop_containers():
        sources = {
            next(iter(source)): source[next(iter(source))]["name"]
            for source in container["envFrom"]
        }
        assert sources == {"configMapRef": "cxloop-config", "secretRef": "cxloop-secrets"}, name
        own = {e["name"] for e in container.get("env", [])}
        assert not own & SETTING_NAMES, f"{name} sets its own {sorted(own & SETTING_NAMES)}"


def test_kubernetes_names_only_real_settings_and_shares_every_one_that_must_match() -> None:
    shared = set(configmap()) | set(env_file(KUBERNETES / "secrets.env.example"))
    assert shared <= SETTING_NAMES, sorted(shared - SETTING_NAMES)
    missing = set(doc_settings(SAME_EVERYWHERE)) - shared
    assert not missing, f"the ConfigMap and the Secret lack {sorted(missing)}"


def test_kubernetes_sets_each_setting_in_one_place() -> None:
    # envFrom lets a later source win silently: a name in both would be set twice.
    both = set(configmap()) & set(env_file(KUBERNETES / "secrets.env.example"))
    assert not both, sorted(both)


def test_kubernetes_keeps_secrets_out_of_the_configmap() -> None:
    secret_fields = {
        env_name(name)
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
        or name in {"database_url", "queue_url", "salesforce_apps"}
    }
    assert not secret_fields & set(configmap()), sorted(secret_fields & set(configmap()))


def test_kubernetes_shared_values_are_valid_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = env_file(KUBERNETES / "secrets.env.example")
    environment = {**configmap(), **secrets, **REQUIRED_VALUES}
    loaded = settings_from_environment(environment, monkeypatch, tmp_path)
    assert loaded.database_url.startswith("postgresql://")
    assert loaded.base_url.startswith("https://")


def test_a_misspelled_or_malformed_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What the checks above rely on: the settings model refuses unknown names and bad values.
    with pytest.raises(ValidationError):
        settings_from_environment({"CXLOOP_LEASE_S": "two minutes"}, monkeypatch, tmp_path)
    assert "CXLOOP_LEASE_SECONDS" not in SETTING_NAMES


# --- docs/deploy.md and the README


def test_docs_classify_every_setting_once() -> None:
    same, differ = doc_settings(SAME_EVERYWHERE), doc_settings(MAY_DIFFER)
    assert len(same) == len(set(same)) and len(differ) == len(set(differ))
    assert not set(same) & set(differ), sorted(set(same) & set(differ))
    named = set(same) | set(differ)
    assert named <= SETTING_NAMES, f"docs/deploy.md names no such setting: {named - SETTING_NAMES}"
    assert named >= SETTING_NAMES, f"docs/deploy.md does not classify {SETTING_NAMES - named}"


def test_docs_name_the_settings_the_issue_asks_about() -> None:
    same = set(doc_settings(SAME_EVERYWHERE))
    assert {
        "CXLOOP_ENCRYPTION_KEYS",
        "CXLOOP_SECRET_KEY",
        "CXLOOP_SALESFORCE_CLIENT_ID",
        "CXLOOP_SALESFORCE_CLIENT_SECRET",
        "CXLOOP_SALESFORCE_APPS",
        "CXLOOP_SALESFORCE_EXTRA_HOSTS",
        "CXLOOP_LEASE_S",
        "CXLOOP_SWEEPER_PERIOD_S",
    } <= same
    text = DOCS.read_text()
    for part in ("## Sizing", "## Upgrades", "## Rotating keys", "cxloop keys generate"):
        assert part in text, part


def test_readme_points_to_the_deployment_docs_and_lists_lease_and_sweeper() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/deploy.md" in readme
    table = {row for row in re.findall(r"^\| `(CXLOOP_[A-Z_]+)`", readme, re.M)}
    assert {"CXLOOP_LEASE_S", "CXLOOP_SWEEPER_PERIOD_S"} <= table
    assert table <= SETTING_NAMES
