"""Configuration from the environment, and the files under SAFESHARE_HOME.

The Temporal connection comes from Temporal's environment configuration (`temporalio.envconfig`):
`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, and a TOML profile
(`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`); environment variables win over the file. A bad value
raises `SettingsError` naming the variable (exit code 2), before anything connects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, ClientConnectConfig

from schemas import AgencyId, ContactId

from ._files import InputError

N = TypeVar("N", int, float)
Tracing = Literal["none", "console", "otlp"]
_BOOLS = {"true", "false", "1", "0"}
# The TLS sources a profile may name, with the variable that sets each and its TOML key.
_TLS_SOURCES = (
    ("server_root_ca_cert", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.server_ca_cert_path"),
    ("client_cert", "TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.client_cert_path"),
    ("client_private_key", "TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.client_key_path"),
)


class SettingsError(InputError):
    """A configuration value is unusable: the message names the variable, never a secret's value."""

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


def _number(env: Mapping[str, str], name: str, default: str, kind: type[N]) -> N:
    raw = env.get(name) or default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: a positive {kind.__name__} expected") from None
    if value <= 0:
        raise SettingsError(f"{name}: a positive {kind.__name__} expected")
    return value


@dataclass(frozen=True)
class Settings:
    temporal_address: str
    namespace: str
    home: Path
    database_url: str
    task_queue: str = "safeshare"
    # Notifications. No SMTP host: e-mails are written as .eml files under home/mail (dev).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "safeshare@localhost"
    smtp_starttls: bool = False
    webhook_timeout: float = 10.0
    checkpoint_every: int = 100
    checkpoint_interval: float = 3600.0
    keys_url: str = ""
    codec_port: int = 8234
    ui_origins: tuple[str, ...] = ("http://localhost:8233", "http://127.0.0.1:8233")
    # TLS, mTLS client certificate, API key and gRPC metadata, as Temporal's envconfig loaded them
    # (paths, not contents: files are read when connecting).
    temporal_profile: ClientConfigProfile = field(default_factory=ClientConfigProfile, repr=False)
    # Prometheus endpoint of a worker process (Temporal's metrics and Safeshare's); None: off.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # How often a worker counts open requests by stage for the metrics (seconds; 0: never).
    census_seconds: float = 60.0
    tracing: Tracing = "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        home = Path(env.get("SAFESHARE_HOME", "var")).resolve()
        profile = load_temporal_profile(env)
        metrics_port = env.get("SAFESHARE_METRICS_PORT", "").strip()
        return cls(
            temporal_address=_address(env, profile.address or "localhost:7233"),
            namespace=profile.namespace or "default",
            home=home,
            database_url=_database_url(env, "SAFESHARE_DATABASE_URL", f"sqlite+aiosqlite:///{home / 'safeshare.db'}"),
            task_queue=env.get("SAFESHARE_TASK_QUEUE", "safeshare"),
            smtp_host=env.get("SAFESHARE_SMTP_HOST") or None,
            smtp_port=_port(env, "SAFESHARE_SMTP_PORT", "25"),
            smtp_from=env.get("SAFESHARE_SMTP_FROM", "safeshare@localhost"),
            smtp_starttls=env.get("SAFESHARE_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"),
            webhook_timeout=_number(env, "SAFESHARE_WEBHOOK_TIMEOUT", "10", float),
            checkpoint_every=_number(env, "SAFESHARE_AUDIT_CHECKPOINT_EVERY", "100", int),
            checkpoint_interval=_number(env, "SAFESHARE_AUDIT_CHECKPOINT_SECONDS", "3600", float),
            # The history-key vault sits apart from the store: keys and the data they protect
            # are not backed up or stolen together.
            keys_url=_database_url(env, "SAFESHARE_KEYS_URL", f"sqlite+aiosqlite:///{home / 'keys' / 'vault.db'}"),
            codec_port=_port(env, "SAFESHARE_CODEC_PORT", "8234"),
            ui_origins=tuple(
                o.strip() for o in env.get(
                    "SAFESHARE_UI_ORIGINS", "http://localhost:8233,http://127.0.0.1:8233").split(",")
                if o.strip()
            ),
            temporal_profile=profile,
            metrics_port=_port(env, "SAFESHARE_METRICS_PORT", metrics_port) if metrics_port else None,
            metrics_host=env.get("SAFESHARE_METRICS_HOST", "127.0.0.1"),
            census_seconds=_seconds(env, "SAFESHARE_CENSUS_SECONDS", "60"),
            tracing=_tracing(env),
        )

    def connect_config(self) -> ClientConnectConfig:
        """`Client.connect` keyword arguments: the profile's TLS, API key and metadata, with this
        address and namespace (which the dev stack and tests may have replaced)."""
        try:
            config = self.temporal_profile.to_client_connect_config()
        except OSError as err:
            raise SettingsError(f"TEMPORAL_TLS_*: a TLS file cannot be read ({err.strerror})") from None
        config["target_host"] = self.temporal_address
        config["namespace"] = self.namespace
        return config

    @property
    def directory_file(self) -> Path:
        return self.home / "directory.yaml"

    @property
    def policy_file(self) -> Path:
        return self.home / "policy.yaml"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def store_key_file(self) -> Path:
        return self.keys_dir / "store.key"

    @property
    def audit_key_file(self) -> Path:
        """The deployment's Ed25519 key that signs audit checkpoints (mode 0600)."""
        return self.keys_dir / "audit.key"

    @property
    def audit_public_key_file(self) -> Path:
        """Its public half, base64: what an auditor verifies checkpoints with."""
        return self.keys_dir / "audit.pub"

    @property
    def webhook_secret_file(self) -> Path:
        """The per-deployment HMAC-SHA256 secret webhook receivers check bodies with (mode 0600)."""
        return self.keys_dir / "webhook.key"

    @property
    def mail_dir(self) -> Path:
        return self.home / "mail"

    def agency_key_file(self, agency_id: str) -> Path:
        """An agency's key file; the id must be a directory id (`--agency`)."""
        return _key_file(self.keys_dir / "agencies", agency_id, _AGENCY_ID, "--agency")

    def contact_key_file(self, contact_id: str) -> Path:
        """A person's signing key file; the id must be a directory id (`--contact`)."""
        return _key_file(self.keys_dir / "contacts", contact_id, _CONTACT_ID, "--contact")

    @property
    def codec_ring_file(self) -> Path:
        return self.keys_dir / "codec-ring.json"

    @property
    def codec_token_file(self) -> Path:
        """The bearer token the Web UI presents to the codec server."""
        return self.keys_dir / "codec-token"

    @property
    def temporal_db(self) -> Path:
        return self.home / "temporal.db"


_AGENCY_ID: TypeAdapter[str] = TypeAdapter(AgencyId)
_CONTACT_ID: TypeAdapter[str] = TypeAdapter(ContactId)


def _key_file(folder: Path, key_id: str, ids: TypeAdapter[str], option: str) -> Path:
    """Where an id becomes a path: only a directory id does, and only as one file name in `folder`
    (never `.`, `..` or a path of its own), so no id can name a file elsewhere."""
    try:
        ids.validate_python(key_id)
        one_name = Path(key_id).name == key_id and key_id not in (".", "..")  # the pattern's promise, checked
    except ValidationError:
        one_name = False
    if not one_name:
        raise InputError([f"{option}: a directory id expected: 2 to 64 of a-z, 0-9, '.', '_' and '-', "
                          "starting with a letter or digit"])
    return folder / f"{key_id}.key"


def load_temporal_profile(env: Mapping[str, str]) -> ClientConfigProfile:
    """Temporal's envconfig profile from `env` (over the TOML file), checked so that a mistake is
    reported by the variable's name before anything connects."""
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise SettingsError("TEMPORAL_CONFIG_FILE: no such file")
    tls = env.get("TEMPORAL_TLS")
    if tls is not None and tls.strip().lower() not in _BOOLS:
        raise SettingsError("TEMPORAL_TLS: expected true or false")
    try:
        profile = ClientConfigProfile.load(
            env.get("TEMPORAL_PROFILE"), config_file_strict=True, override_env_vars=dict(env)
        )
    except RuntimeError as err:  # the loader's ConfigError
        # Its message names the variable, or quotes the TOML position and key (never a value).
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        message = lines[0] if len(lines) == 1 else f"{lines[0]}: {lines[-1]}"
        if "TEMPORAL_" in message:
            raise SettingsError(message) from None
        where = "TEMPORAL_PROFILE" if "not found" in message else "TEMPORAL_CONFIG_FILE"
        raise SettingsError(f"{where}: {message}") from None
    _check_tls(profile.tls, env)
    return profile


def _check_tls(tls: ClientConfigTLS | None, env: Mapping[str, str]) -> None:
    if tls is None:
        return
    profile = env.get("TEMPORAL_PROFILE", "default")
    for attr, variable, key in _TLS_SOURCES:
        source = getattr(tls, attr)
        name = variable if variable in env else f"TEMPORAL_CONFIG_FILE [profile.{profile}] {key}"
        if isinstance(source, Path) and not source.is_file():
            raise SettingsError(f"{name}: no such file")
    if (tls.client_cert is None) != (tls.client_private_key is None):
        raise SettingsError(
            "TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH: mTLS needs both the "
            "client certificate and its key"
        )


# host:port, the host a name, an IPv4 address or a bracketed IPv6 address: what the Temporal client
# dials (a URL scheme or a bad port would fail inside its core, not naming the variable).
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?):([0-9]{1,5})")


def _address(env: Mapping[str, str], address: str) -> str:
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 0 < int(match[3]) < 65536:
        profile = env.get("TEMPORAL_PROFILE", "default")
        name = "TEMPORAL_ADDRESS" if "TEMPORAL_ADDRESS" in env else f"TEMPORAL_CONFIG_FILE [profile.{profile}] address"
        raise SettingsError(f"{name}: host:port expected, e.g. localhost:7233 (no scheme; a port from 1 to 65535)")
    return address


def _database_url(env: Mapping[str, str], name: str, default: str) -> str:
    """An SQLAlchemy URL with an async driver. Never repeated in a message: it may hold a password."""
    url = env.get(name, default)
    try:
        is_async = make_url(url).get_dialect().is_async
    except ArgumentError:  # not a URL, or no such dialect
        is_async = False
    if not is_async:
        raise SettingsError(f"{name}: an SQLAlchemy URL with an async driver expected, "
                            "e.g. sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")
    return url


def _port(env: Mapping[str, str], name: str, default: str) -> int:
    raw = env.get(name, default).strip()
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}: expected a port number from 1 to 65535")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: str) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise SettingsError(f"{name}: expected a number of seconds, 0 or more")
    return value


def _tracing(env: Mapping[str, str]) -> Tracing:
    """OpenTelemetry's own variables: OTEL_TRACES_EXPORTER, else OTLP if an endpoint is set, else off."""
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if endpoint else "none"
    if chosen not in ("none", "console", "otlp"):
        raise SettingsError("OTEL_TRACES_EXPORTER: expected none, console or otlp")
    return chosen  # type: ignore[return-value]

