"""The production deployment as files: docker-compose.yml valid under the Compose Specification and
in agreement with the application's settings, the Dockerfile's supply-chain and secret rules.

No Docker engine runs here; the schema is the one check-jsonschema ships (vendor/compose-spec.json,
from the compose-spec project, Apache-2.0; its licence is in the same package), read from the
installed package: nothing is downloaded at test time."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from clients import Settings
from schemas import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# Read by Temporal's envconfig and the OpenTelemetry SDK themselves, not by Settings.from_env.
ENVCONFIG = re.compile(
    r"^(TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|PROFILE|CONFIG_FILE|TLS(_\w+)?|GRPC_META_\w+)|OTEL_\w+)$")


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def interpolate(value: str) -> str:
    """Compose's variable substitution with nothing set: defaults, or a stand-in for required ones."""
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if op == ":-":
            return arg
        return f"x-{name.lower()}" if op == ":?" else ""
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, value).replace("$$", "$")


def env_of(service: str) -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in SERVICES[service].get("environment", {}).items()}


def safeshare_services() -> Iterator[str]:
    return (name for name, svc in SERVICES.items() if svc["image"].startswith("safeshare:"))


def host_port(service: str, container_port: int) -> int:
    for mapping in SERVICES[service].get("ports", []):
        host, _, inside = interpolate(str(mapping)).rpartition(":")
        if int(inside) == container_port:
            return int(host)
    raise AssertionError(f"{service} publishes no port {container_port}")


class Recording(Mapping[str, str]):
    """An environment that remembers which variables the application asked for by name (copying
    the whole environment for Temporal's envconfig asks for none)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values, self.asked = dict(values), set()

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self.values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_the_compose_file_is_valid_under_the_compose_specification() -> None:
    """`docker compose` would accept the file; the validator is shown to reject a broken copy."""
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["worker"]["depends_on"]["temporal"]["condition"] = "when_ready"
    broken["services"]["worker"]["scale_to"] = 4
    assert len(list(validator.iter_errors(broken))) >= 2


def test_every_variable_given_to_safeshare_is_one_the_application_reads(tmp_path: Path) -> None:
    """A misspelt variable in compose would be silently ignored: each must be a setting."""
    empty = tmp_path / "temporal.toml"
    empty.write_text("")
    for service in safeshare_services():
        env = Recording({**env_of(service), "TEMPORAL_CONFIG_FILE": str(empty)})
        Settings.from_env(env)
        unknown = {name for name in env_of(service) if name not in env.asked and not ENVCONFIG.match(name)}
        assert unknown == set(), f"{service}: {unknown}"


def test_services_agree_with_the_settings_they_are_given() -> None:
    """Ports, databases, namespace: what each process will read is what compose wires up."""
    worker = Settings.from_env(env_of("worker"))
    codec = Settings.from_env(env_of("codec-server"))
    assert worker.temporal_address == "temporal:7233" and "7233" in SERVICES["temporal"]["expose"]
    assert worker.namespace == env_of("temporal-namespace")["NAMESPACE"] == env_of("ui")["TEMPORAL_DEFAULT_NAMESPACE"]
    assert worker.metrics_port is not None and str(worker.metrics_port) in SERVICES["worker"]["expose"]
    assert worker.metrics_host == "0.0.0.0"  # noqa: S104 - scraped from the compose network
    # The store and the key vault are separate database servers, each a service here.
    store_host = re.search(r"@([\w-]+):", worker.database_url).group(1)
    vault_host = re.search(r"@([\w-]+):", worker.keys_url).group(1)
    assert store_host != vault_host and {store_host, vault_host} <= set(SERVICES)
    assert worker.database_url.startswith("postgresql+asyncpg://")
    # The browser reaches the codec server where the UI says, and the codec server answers the UI's origin.
    ui = env_of("ui")
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{host_port('codec-server', codec.codec_port)}"
    assert f"http://localhost:{host_port('ui', 8080)}" in codec.ui_origins
    assert SERVICES["codec-server"]["command"] == ["codec-server", "--host", "0.0.0.0"]  # noqa: S104 - in its container


def test_workers_scale_and_start_after_the_schema_and_namespace_jobs() -> None:
    """`--scale worker=N` works, and no worker polls before its namespace, attributes and schema exist."""
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker
    needs = {name: dep["condition"] for name, dep in worker["depends_on"].items()}
    assert needs["temporal-namespace"] == needs["store-migrate"] == "service_completed_successfully"
    assert SERVICES["store-migrate"]["command"] == ["db", "upgrade"]
    assert SERVICES["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    assert SERVICES["temporal"]["image"].startswith("temporalio/server:")
    assert not any("auto-setup" in svc["image"] for svc in SERVICES.values())
    for job in ("temporal-schema", "temporal-namespace"):
        assert SERVICES[job]["image"].startswith("temporalio/admin-tools:")
        script = SERVICES[job]["command"][0].replace("/deploy/", "")
        assert (ROOT / "deploy" / "temporal" / script).is_file()


def test_the_namespace_job_registers_every_search_attribute() -> None:
    """Operators filter on every attribute the workflow publishes, with the type it publishes."""
    pairs = dict(p.split("=") for p in env_of("temporal-namespace")["SEARCH_ATTRIBUTES"].split())
    assert pairs == SEARCH_ATTRIBUTES


def test_images_are_pinned_by_version() -> None:
    """A rebuild or a fresh host runs the versions that were tested, never `latest`."""
    for name, svc in SERVICES.items():
        image = interpolate(svc["image"])
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?", image), f"{name}: {image}"
    assert {interpolate(SERVICES[s]["image"]) for s in safeshare_services()} == {f"safeshare:{VERSION}"}


def test_key_material_is_mounted_from_files_where_settings_look_for_it() -> None:
    """Keys reach processes as compose secrets or read-only mounts, at the paths Settings reads."""
    home = Settings.from_env(env_of("worker"))
    assert all(set(spec) == {"file"} for spec in COMPOSE["secrets"].values())
    expected = {"codec_ring": home.codec_ring_file, "codec_token": home.codec_token_file,
                "store_key": home.store_key_file, "child_index_key": home.child_index_key_file}
    for service in safeshare_services():
        for secret in SERVICES[service].get("secrets", []):
            assert Path(secret["target"]) == expected[secret["source"]]
    mounts = {m.split(":")[1]: m for m in SERVICES["worker"]["volumes"]}
    agencies = str(home.agency_key_file("any").parent)
    assert mounts[agencies] == "./secrets/keys/agencies:" + agencies + ":ro"
    # `SAFESHARE_HOME=secrets safeshare keys init --deployment` writes exactly the files compose mounts.
    local = Settings.from_env({"SAFESHARE_HOME": str(ROOT / "secrets")})
    files = {"codec_ring": local.codec_ring_file, "codec_token": local.codec_token_file,
             "store_key": local.store_key_file, "child_index_key": local.child_index_key_file}
    assert {k: (ROOT / v["file"]).resolve() for k, v in COMPOSE["secrets"].items()} == files
    # Passwords come from the environment (.env), never written into the file.
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"PASSWORD: (?!\$\{)", text)


def test_the_image_is_multi_stage_hash_pinned_non_root_and_secret_free() -> None:
    """Supply chain and secrets: locked hashes only, no key or token in any layer, no root."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    assert "--require-hashes" in dockerfile and "requirements-runtime.lock" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    copied = " ".join(re.findall(r"^COPY (?!--from)(.*)$", dockerfile, re.MULTILINE))
    for forbidden in ("var", "secrets", ".env", ".key", "keys"):
        assert not re.search(rf"(^|\s){re.escape(forbidden)}", copied)
    assert not re.search(r"^(ENV|ARG) .*(PASSWORD|TOKEN|SECRET|_KEY)", dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"var", "secrets", ".env"} <= set(ignored)


def test_the_runtime_lock_pins_the_same_versions_as_the_full_lock() -> None:
    """The image runs exactly what the tests ran."""
    def pins(name: str) -> dict[str, str]:
        text = (ROOT / name).read_text()
        return dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", text, re.MULTILINE))

    runtime, full = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert runtime and {k: full.get(k) for k in runtime} == runtime
    assert "pytest" not in runtime and "temporalio" in runtime


@pytest.mark.parametrize("script", sorted((ROOT / "deploy" / "temporal").glob("*.sh")), ids=lambda p: p.name)
def test_the_one_shot_job_scripts_parse(script: Path) -> None:
    assert subprocess.run(["/bin/sh", "-n", str(script)], capture_output=True, check=False).returncode == 0
