"""Connection and process settings: one model of every variable (each read, each bad value exiting
2 named, one spelling of true/false, all in the README), and Temporal's environment configuration
(address, namespace, TLS / mTLS, API key, profiles) under the codec."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from clients import Settings, SettingsError, connect, create_deployment_keys, open_codec
from clients._env_types import expected
from workers.cli import app

SAFESHARE = str(Path(sys.executable).parent / "safeshare")
ROOT = Path(__file__).resolve().parent.parent
# The variables the model reads itself, by field (the rest are Temporal's envconfig).
OWN_VARIABLES = {name: variables for name, variables in Settings.variables().items()
                 if Settings.model_fields[name].validation_alias is not None}


def empty_profile(tmp_path: Path) -> Path:
    """Temporal's configuration isolated from the machine's own profile file."""
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_bytes(f"-----BEGIN {name}-----\n".encode())
    return tmp_path


def profile_file(tmp_path: Path, certs: Path) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(f"""
[profile.default]
address = "localhost:7233"

[profile.prod]
address = "temporal.internal:7233"
namespace = "safeshare"

[profile.prod.tls]
server_name = "temporal.internal"
server_ca_cert_path = "{certs / 'ca.pem'}"
client_cert_path = "{certs / 'client.pem'}"
client_key_path = "{certs / 'client.key'}"
""")
    return path


def test_a_profile_file_with_mtls_paths_gives_the_client_its_certificates(tmp_path: Path, certs: Path) -> None:
    """Production connects with mTLS from a TOML profile: the files are named, read at connect time."""
    s = Settings.from_env({"TEMPORAL_CONFIG_FILE": str(profile_file(tmp_path, certs)), "TEMPORAL_PROFILE": "prod",
                           "SAFESHARE_HOME": str(tmp_path / "home")})
    assert (s.temporal_address, s.namespace) == ("temporal.internal:7233", "safeshare")
    config = s.connect_config()
    assert config["target_host"] == "temporal.internal:7233" and config["namespace"] == "safeshare"
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.domain == "temporal.internal"
    assert tls.server_root_ca_cert == b"-----BEGIN ca.pem-----\n"
    assert tls.client_cert == b"-----BEGIN client.pem-----\n"
    assert tls.client_private_key == b"-----BEGIN client.key-----\n"
    assert "api_key" not in config


def test_environment_variables_override_the_profile_and_an_api_key_turns_tls_on(tmp_path: Path, certs: Path) -> None:
    """Secrets come from the orchestrator's environment; they win over the file (envconfig's order)."""
    env = {"TEMPORAL_CONFIG_FILE": str(profile_file(tmp_path, certs)), "TEMPORAL_ADDRESS": "other:7233",
           "TEMPORAL_NAMESPACE": "ns2", "TEMPORAL_API_KEY": "k-123"}
    config = Settings.from_env(env).connect_config()
    assert config["target_host"] == "other:7233" and config["namespace"] == "ns2"
    assert config["api_key"] == "k-123" and config["tls"] is True
    config = Settings.from_env({**env, "TEMPORAL_TLS": "false"}).connect_config()
    assert config["api_key"] == "k-123" and config["tls"] is False
    assert "k-123" not in repr(Settings.from_env(env))  # settings may be logged; the key never is


def test_nothing_set_gives_the_one_machine_stack(tmp_path: Path) -> None:
    """Nothing set: the one-machine stack's values, an unversioned worker, tracing off."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    s = Settings.from_env({"TEMPORAL_CONFIG_FILE": str(empty)})
    assert (s.temporal_address, s.namespace, s.codec_port, s.task_queue) == ("localhost:7233", "default", 8234,
                                                                             "safeshare")
    assert (s.metrics_port, s.tracing, s.smtp_host, s.smtp_starttls) == (None, "none", None, False)
    assert (s.build_id, s.deployment_name) == (None, "safeshare")
    assert s.home == Path("var").resolve()
    assert s.database_url == f"sqlite+aiosqlite:///{s.home / 'safeshare.db'}"
    assert s.keys_url == f"sqlite+aiosqlite:///{s.home / 'keys' / 'vault.db'}"
    assert s.worker_tuning == {"max_cached_workflows": 300}
    assert s.connect_config() == {"target_host": "localhost:7233", "namespace": "default"}


def given(tmp_path: Path) -> dict[str, tuple[str, object]]:
    """For each field the model reads, a value unlike its default and what it becomes."""
    home = tmp_path / "home"
    store, vault = "postgresql+asyncpg://safeshare@db:5432/safeshare", "sqlite+aiosqlite:////srv/vault.db"
    return {
        "home": (str(home), home), "database_url": (store, store), "keys_url": (vault, vault),
        "key_cache_seconds": ("0", 0.0), "task_queue": ("tq", "tq"), "smtp_host": ("mail.example", "mail.example"),
        "smtp_port": ("587", 587), "smtp_from": ("noreply@example.org", "noreply@example.org"),
        "smtp_starttls": ("true", True), "webhook_timeout": ("2.5", 2.5), "checkpoint_every": ("7", 7),
        "checkpoint_interval": ("60", 60.0), "codec_port": ("9000", 9000),
        "ui_origins": ("https://ui.example, http://localhost:8080", ("https://ui.example", "http://localhost:8080")),
        "service_port": ("9100", 9100), "service_audience": ("prod", "prod"), "service_max_body": ("1000", 1000),
        "service_rate_limit": ("60", 60),
        "metrics_port": ("9464", 9464), "metrics_host": ("192.0.2.7", "192.0.2.7"), "census_seconds": ("0", 0.0),
        "otlp_endpoint": ("http://collector:4318", "http://collector:4318"), "tracing": ("console", "console"),
        "max_cached_workflows": ("0", 0), "max_concurrent_workflow_tasks": ("5", 5),
        "max_concurrent_activities": ("50", 50), "build_id": ("b-2026.1", "b-2026.1"),
        "deployment_name": ("safeshare-eu", "safeshare-eu"),
    }


def test_every_variable_is_read_into_its_field(tmp_path: Path) -> None:
    """Each variable the model names reaches the process: a new field without a value here fails."""
    values = given(tmp_path)
    assert set(values) == set(OWN_VARIABLES)
    env = {OWN_VARIABLES[name][0]: raw for name, (raw, _) in values.items()}
    s = Settings.from_env({**env, "TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path))})
    assert {name: getattr(s, name) for name in values} == {name: parsed for name, (_, parsed) in values.items()}
    assert s.worker_tuning == {"max_cached_workflows": 0, "max_concurrent_workflow_tasks": 5,
                               "max_concurrent_activities": 50}
    with pytest.raises(ValidationError):
        s.task_queue = "other"  # type: ignore[misc]  # frozen: what a process was started with stays


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    """Compose's `${X:-}` gives an empty string: it means the default, for every variable alike."""
    empty = {"TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path))}
    unset = Settings.from_env(empty)
    blank = Settings.from_env({**empty, **{v: "" for names in OWN_VARIABLES.values() for v in names}})
    assert blank == unset


def test_an_otlp_endpoint_turns_tracing_on_and_the_traces_one_wins(tmp_path: Path) -> None:
    """OpenTelemetry's own rules: an endpoint means otlp unless an exporter is named; the
    traces-specific endpoint over the general one."""
    base = {"TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path)), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://all:4318"}
    assert (Settings.from_env(base).tracing, Settings.from_env(base).otlp_endpoint) == ("otlp", "http://all:4318")
    s = Settings.from_env({**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318"})
    assert s.otlp_endpoint == "http://traces:4318"
    assert Settings.from_env({**base, "OTEL_TRACES_EXPORTER": "none"}).tracing == "none"


# A value each type refuses, by what the type expects; free text and paths refuse nothing an
# environment can hold. Each bad value is distinctive, so an echo of it would be seen.
BAD = {
    "expected a port number from 1 to 65535": "99999",
    "expected true or false": "yes",
    "expected a positive number of seconds": "-7.5",
    "expected a number of seconds, 0 or more": "soon",
    "expected a whole number, 1 or more": "-3",
    "expected a whole number, 0 or more": "many",
    "expected none, console or otlp": "jaeger",
    "an SQLAlchemy URL with an async driver expected, e.g. sqlite+aiosqlite:///path or "
    "postgresql+asyncpg://user@host/db": "postgresql://safeshare:secret-password@db/safeshare",
    "expected origins separated by commas, each scheme://host[:port] (no path, no trailing slash), e.g. "
    "http://localhost:8233": "http://localhost:8233,http://ui.example/path",
}
FREE = {"expected text", "expected a directory path"}


def test_every_variable_type_has_a_value_it_refuses() -> None:
    """A new type of variable comes with a bad value for the test below, or is declared free."""
    kinds = {expected(Settings.model_fields[name]) for name in OWN_VARIABLES}
    assert kinds - FREE <= set(BAD) and kinds >= FREE


REFUSABLE = [(variable, expected(Settings.model_fields[name]))
             for name, variables in OWN_VARIABLES.items() for variable in variables
             if expected(Settings.model_fields[name]) in BAD]


@pytest.mark.parametrize(("variable", "kind"), REFUSABLE, ids=[v for v, _ in REFUSABLE])
def test_each_bad_value_exits_2_naming_the_variable(variable: str, kind: str, tmp_path: Path) -> None:
    """Operators fix configuration from the message alone: the variable and what it must hold,
    never the value (a database URL holds a password)."""
    env = {"SAFESHARE_HOME": str(tmp_path), "TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path)),
           variable: BAD[kind]}
    result = CliRunner().invoke(app, ["status", "r-1"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {variable}: {kind}\n"
    assert BAD[kind] not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("spelling", ["True", "TRUE", "1", "0", "yes", "no", "on", "off", " true", "false "])
@pytest.mark.parametrize("variable", ["SAFESHARE_SMTP_STARTTLS", "TEMPORAL_TLS"])
def test_true_and_false_have_one_spelling(variable: str, spelling: str, tmp_path: Path) -> None:
    """`true` and `false`, nothing else, for Safeshare's switches and Temporal's: a `0` that meant
    off here and on there would be a silent mistake."""
    env = {"TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path))}
    with pytest.raises(SettingsError, match=f"^{variable}: expected true or false$"):
        Settings.from_env({**env, variable: spelling})


def test_true_and_false_are_that_spelling(tmp_path: Path) -> None:
    env = {"TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path))}
    assert Settings.from_env({**env, "SAFESHARE_SMTP_STARTTLS": "true"}).smtp_starttls is True
    assert Settings.from_env({**env, "SAFESHARE_SMTP_STARTTLS": "false"}).smtp_starttls is False
    assert Settings.from_env({**env, "TEMPORAL_TLS": "true"}).connect_config()["tls"]
    assert not Settings.from_env({**env, "TEMPORAL_TLS": "false"}).connect_config().get("tls")


def test_every_bad_variable_is_named_at_once(tmp_path: Path) -> None:
    """One run tells an operator everything that is wrong, not one mistake per restart."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path)), "SAFESHARE_CODEC_PORT": "http",
                           "SAFESHARE_CENSUS_SECONDS": "-1", "TEMPORAL_ADDRESS": "http://temporal"})
    assert [p.split(":")[0] for p in refused.value.problems] == [
        "SAFESHARE_CODEC_PORT", "SAFESHARE_CENSUS_SECONDS", "TEMPORAL_ADDRESS"]


def test_a_database_password_is_never_shown(tmp_path: Path) -> None:
    """Settings may be logged: neither database URL appears in their repr."""
    s = Settings.from_env({"TEMPORAL_CONFIG_FILE": str(empty_profile(tmp_path)),
                           "SAFESHARE_DATABASE_URL": "postgresql+asyncpg://u:store-pw@db/s",
                           "SAFESHARE_KEYS_URL": "postgresql+asyncpg://u:vault-pw@keys/k"})
    assert "store-pw" not in repr(s) and "vault-pw" not in repr(s)
    assert s.database_url == "postgresql+asyncpg://u:store-pw@db/s"


def test_the_readme_lists_every_variable() -> None:
    """Documentation moves with the code: README's Configuration table names each variable."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration"):].split("\n## ", 1)[0]
    missing = [v for variables in Settings.variables().values() for v in variables if f"`{v}`" not in section]
    assert missing == []


@pytest.mark.parametrize(("env", "named"), [
    ({"TEMPORAL_TLS": "maybe"}, "TEMPORAL_TLS"),
    ({"TEMPORAL_ADDRESS": "http://temporal:7233"}, "TEMPORAL_ADDRESS"),
    ({"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}, "TEMPORAL_CONFIG_FILE"),
    ({"TEMPORAL_PROFILE": "staging"}, "TEMPORAL_PROFILE"),
    ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/c.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/k.pem"},
     "TEMPORAL_TLS_CLIENT_CERT_PATH"),
    ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "CERTS/client.pem"}, "TEMPORAL_TLS_CLIENT_KEY_PATH"),
    ({"TEMPORAL_API_KEY": "secret-key-value", "TEMPORAL_TLS_CLIENT_CERT_PATH": "CERTS/client.pem",
      "TEMPORAL_TLS_CLIENT_CERT_DATA": "x"}, "TEMPORAL_TLS_CLIENT_CERT"),
])
def test_a_bad_temporal_value_is_refused_naming_the_variable(
    env: dict[str, str], named: str, tmp_path: Path, certs: Path
) -> None:
    """Temporal's envconfig, checked the same way: the variable named, a secret never repeated."""
    env = {k: v.replace("CERTS", str(certs)) for k, v in env.items()}
    env.setdefault("TEMPORAL_CONFIG_FILE", str(empty_profile(tmp_path)))
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert named in str(refused.value)
    assert "secret-key-value" not in str(refused.value)


def test_a_missing_certificate_named_in_the_profile_is_refused_by_its_key(tmp_path: Path, certs: Path) -> None:
    """A file named by the TOML profile is reported by the file's key and profile."""
    config = profile_file(tmp_path, certs)
    (certs / "client.key").unlink()
    with pytest.raises(SettingsError, match=r"\[profile.prod\] tls.client_key_path: no such file"):
        Settings.from_env({"TEMPORAL_CONFIG_FILE": str(config), "TEMPORAL_PROFILE": "prod"})


async def test_commands_exit_2_naming_the_variable(tmp_path: Path) -> None:
    """A client command and the worker process both stop at once with exit code 2."""
    env = {**os.environ, "SAFESHARE_HOME": str(tmp_path), "TEMPORAL_TLS": "sometimes"}

    async def run(*args: str) -> tuple[int | None, bytes]:
        proc = await asyncio.create_subprocess_exec(
            SAFESHARE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await proc.communicate()
        return proc.returncode, output

    for code, output in await asyncio.gather(run("status", "r-1"), run("worker")):
        assert code == 2, output
        assert b"TEMPORAL_TLS" in output and b"Traceback" not in output


async def test_connect_uses_envconfig_and_keeps_the_codec(env: WorkflowEnvironment, settings: Settings) -> None:
    """The client built from environment configuration still encrypts every payload."""
    target = env.client.service_client.config.target_host
    s = Settings.from_env({"SAFESHARE_HOME": str(settings.home), "TEMPORAL_ADDRESS": target,
                           "TEMPORAL_NAMESPACE": env.client.namespace, "TEMPORAL_GRPC_META_X_SAFESHARE": "test"})
    codec = await open_codec(s)
    try:
        client = await connect(s, codec)
        assert client.service_client.config.target_host == target
        assert client.service_client.config.rpc_metadata == {"x-safeshare": "test"}
        assert client.data_converter.payload_codec is codec
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
    finally:
        await codec.vault.close()


async def test_keys_init_deployment_writes_the_deployment_keys_once(tmp_path: Path) -> None:
    """Production keys are made by an operator command, owner-only, and never overwritten."""
    proc = await asyncio.create_subprocess_exec(
        SAFESHARE, "keys", "init", "--deployment", env={**os.environ, "SAFESHARE_HOME": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    assert proc.returncode == 0 and output.count(b"written:") == 6, output
    ring = (tmp_path / "keys" / "codec-ring.json").read_bytes()
    for name in ("store.key", "codec-ring.json", "codec-token", "audit.key", "webhook.key"):
        assert oct((tmp_path / "keys" / name).stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "keys" / "audit.pub").read_text().strip()  # public: for auditors
    assert create_deployment_keys(Settings.from_env({"SAFESHARE_HOME": str(tmp_path)})) == []
    assert (tmp_path / "keys" / "codec-ring.json").read_bytes() == ring
