"""Connection and process settings: Temporal's environment configuration (address, namespace,
TLS / mTLS, API key, profiles) under the codec, and bad values refused by the variable's name."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from clients import Settings, SettingsError, connect, create_deployment_keys, open_codec

SAFESHARE = str(Path(sys.executable).parent / "safeshare")


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


def test_the_existing_settings_keep_their_defaults_and_variables(tmp_path: Path) -> None:
    """Nothing set: the one-machine stack's values, as before envconfig."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    s = Settings.from_env({"TEMPORAL_CONFIG_FILE": str(empty)})
    assert (s.temporal_address, s.namespace, s.codec_port, s.task_queue) == ("localhost:7233", "default", 8234,
                                                                             "safeshare")
    assert (s.metrics_port, s.tracing) == (None, "none")
    assert s.connect_config() == {"target_host": "localhost:7233", "namespace": "default"}
    s = Settings.from_env({"TEMPORAL_CONFIG_FILE": str(empty), "SAFESHARE_CODEC_PORT": "9000",
                           "SAFESHARE_METRICS_PORT": "9464", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                           "SAFESHARE_TASK_QUEUE": "tq"})
    assert (s.codec_port, s.metrics_port, s.tracing, s.task_queue) == (9000, 9464, "otlp", "tq")


@pytest.mark.parametrize(("env", "named"), [
    ({"TEMPORAL_TLS": "maybe"}, "TEMPORAL_TLS"),
    ({"SAFESHARE_CODEC_PORT": "http"}, "SAFESHARE_CODEC_PORT"),
    ({"SAFESHARE_METRICS_PORT": "70000"}, "SAFESHARE_METRICS_PORT"),
    ({"SAFESHARE_CENSUS_SECONDS": "soon"}, "SAFESHARE_CENSUS_SECONDS"),
    ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
    ({"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}, "TEMPORAL_CONFIG_FILE"),
    ({"TEMPORAL_PROFILE": "staging"}, "TEMPORAL_PROFILE"),
    ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/c.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/k.pem"},
     "TEMPORAL_TLS_CLIENT_CERT_PATH"),
    ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "CERTS/client.pem"}, "TEMPORAL_TLS_CLIENT_KEY_PATH"),
    ({"TEMPORAL_API_KEY": "secret-key-value", "TEMPORAL_TLS_CLIENT_CERT_PATH": "CERTS/client.pem",
      "TEMPORAL_TLS_CLIENT_CERT_DATA": "x"}, "TEMPORAL_TLS_CLIENT_CERT"),
])
def test_a_bad_value_is_refused_naming_the_variable(
    env: dict[str, str], named: str, tmp_path: Path, certs: Path
) -> None:
    """Operators fix configuration from the message alone; it never repeats a secret."""
    env = {k: v.replace("CERTS", str(certs)) for k, v in env.items()}
    if "TEMPORAL_CONFIG_FILE" not in env:
        (tmp_path / "empty.toml").write_text("")
        env["TEMPORAL_CONFIG_FILE"] = str(tmp_path / "empty.toml")
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
