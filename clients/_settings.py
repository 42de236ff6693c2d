"""Configuration: one settings model over the environment, and the files under SAFESHARE_HOME.

Every `SAFESHARE_*` variable (and OpenTelemetry's exporter choice) is a field of `Settings` with its
type, bounds and description; README's Configuration table lists them, and a test keeps the two
together. An empty variable counts as unset; true/false have one spelling, `true` and `false`.

The Temporal connection comes from Temporal's environment configuration (`temporalio.envconfig`):
`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, and a TOML profile
(`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`); environment variables win over the file. The model
holds the profile envconfig loaded, and checks the address it names.

A bad value raises `SettingsError` naming the variable, never repeating the value (exit code 2),
before anything connects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import AliasChoices, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, ClientConnectConfig

from schemas import AgencyId, ContactId

from ._env_types import (
    TRUE_FALSE,
    Bool,
    Count,
    CountOrZero,
    DatabaseUrl,
    Exporter,
    Home,
    HostPort,
    Origins,
    Port,
    Seconds,
    SecondsOrZero,
    Text,
    expected,
    home_file,
)
from ._files import InputError


class SettingsError(InputError):
    """A configuration value is unusable: each line names the variable, never a secret's value."""

    def __init__(self, *problems: str) -> None:
        super().__init__(list(problems))


class Settings(BaseSettings):
    """The process's configuration. `Settings.from_env()` is the constructor; fields with a
    variable are read from the environment given, the Temporal ones from envconfig's profile."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", case_sensitive=True, env_ignore_empty=True, validate_by_name=True,
        arbitrary_types_allowed=True,  # envconfig's profile
    )

    home: Home = Field(
        Path("var"), validation_alias="SAFESHARE_HOME",
        description="The directory, policy, keys and SQLite store.")
    # Never in a repr: a database URL may hold a password.
    database_url: DatabaseUrl = Field(
        default_factory=home_file("safeshare.db"), validation_alias="SAFESHARE_DATABASE_URL", repr=False,
        description="The store: any SQLAlchemy async URL.")
    task_queue: Text = Field("safeshare", validation_alias="SAFESHARE_TASK_QUEUE",
                             description="The Temporal task queue of the share workflow and its activities.")
    smtp_host: Text | None = Field(
        None, validation_alias="SAFESHARE_SMTP_HOST",
        description="SMTP server for notifications; unset, e-mails are written as .eml files under home/mail.")
    smtp_port: Port = Field(25, validation_alias="SAFESHARE_SMTP_PORT", description="Its port.")
    smtp_from: Text = Field("safeshare@localhost", validation_alias="SAFESHARE_SMTP_FROM",
                            description="The From address of notifications.")
    smtp_starttls: Bool = Field(False, validation_alias="SAFESHARE_SMTP_STARTTLS",
                                description="`true` to require STARTTLS.")
    webhook_timeout: Seconds = Field(10.0, validation_alias="SAFESHARE_WEBHOOK_TIMEOUT",
                                     description="Seconds per webhook POST.")
    checkpoint_every: Count = Field(100, validation_alias="SAFESHARE_AUDIT_CHECKPOINT_EVERY",
                                    description="Sign an audit checkpoint every N audit entries.")
    checkpoint_interval: Seconds = Field(3600.0, validation_alias="SAFESHARE_AUDIT_CHECKPOINT_SECONDS",
                                         description="And at least this often (seconds).")
    # The history-key vault sits apart from the store: keys and the data they protect are not
    # backed up or stolen together.
    keys_url: DatabaseUrl = Field(
        default_factory=home_file("keys", "vault.db"), validation_alias="SAFESHARE_KEYS_URL", repr=False,
        description="The history-key vault, kept apart from the store: any SQLAlchemy async URL.")
    key_cache_seconds: SecondsOrZero = Field(
        1.0, validation_alias="SAFESHARE_KEY_CACHE_SECONDS",
        description="How long a process keeps a history key it read; retiring or destroying a key waits as long.")
    codec_port: Port = Field(8234, validation_alias="SAFESHARE_CODEC_PORT", description="The codec server's port.")
    ui_origins: Origins = Field(
        ("http://localhost:8233", "http://127.0.0.1:8233"), validation_alias="SAFESHARE_UI_ORIGINS",
        description="Origins the codec server answers (the Web UI's), separated by commas.")
    service_port: Port = Field(8235, validation_alias="SAFESHARE_SERVICE_PORT",
                               description="The service's port (`safeshare serve`, `make run`).")
    service_audience: Text = Field(
        "safeshare", validation_alias="SAFESHARE_SERVICE_AUDIENCE",
        description="This deployment's name in callers' tokens (`aud`): a token for another is refused.")
    service_max_body: Count = Field(2_000_000, validation_alias="SAFESHARE_SERVICE_MAX_BODY",
                                    description="The largest request body the service reads, in bytes.")
    service_rate_limit: Count = Field(600, validation_alias="SAFESHARE_SERVICE_RATE_LIMIT",
                                      description="Calls a minute each principal may make, per service replica.")
    metrics_port: Port | None = Field(
        None, validation_alias="SAFESHARE_METRICS_PORT",
        description="A worker's Prometheus endpoint (Temporal's metrics and Safeshare's); unset: off.")
    metrics_host: Text = Field("127.0.0.1", validation_alias="SAFESHARE_METRICS_HOST",
                               description="The metrics endpoint's bind address.")
    census_seconds: SecondsOrZero = Field(
        60.0, validation_alias="SAFESHARE_CENSUS_SECONDS",
        description="How often a worker counts open requests by stage for the metrics (0: never).")
    otlp_endpoint: Text | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="An OTLP/HTTP collector for traces (the exporter reads it itself).")
    tracing: Exporter = Field(
        default_factory=lambda data: "otlp" if data.get("otlp_endpoint") else "none",
        validation_alias="OTEL_TRACES_EXPORTER",
        description="OpenTelemetry traces: none, console, or otlp (the default when an endpoint is set).")
    # Worker options (docs/PERFORMANCE.md says how they were measured); unset, the SDK's defaults,
    # except the sticky cache: each cached workflow holds its sandbox (a few hundred KB) and
    # thousands of requests park for years: with 10,000 parked, 500 held a worker at 313 MB; 300
    # plateaus near 245 MB. An evicted request is replayed (its run's events) when it wakes.
    max_cached_workflows: CountOrZero = Field(300, validation_alias="SAFESHARE_MAX_CACHED_WORKFLOWS",
                                              description="A worker's sticky workflow cache.")
    max_concurrent_workflow_tasks: Count | None = Field(
        None, validation_alias="SAFESHARE_MAX_CONCURRENT_WORKFLOW_TASKS",
        description="A worker's concurrent workflow tasks (unset: the SDK's default).")
    max_concurrent_activities: Count | None = Field(
        None, validation_alias="SAFESHARE_MAX_CONCURRENT_ACTIVITIES",
        description="A worker's concurrent activities (unset: the SDK's default).")
    build_id: Text | None = Field(
        None, validation_alias="SAFESHARE_BUILD_ID",
        description="Worker Versioning: the build this worker runs; unset, an unversioned worker.")
    deployment_name: Text = Field("safeshare", validation_alias="SAFESHARE_DEPLOYMENT",
                                  description="Worker Versioning: the Worker Deployment the worker belongs to.")
    # From Temporal's envconfig (`from_env`), not read by this model: see _ENVCONFIG.
    temporal_address: HostPort = Field("localhost:7233", description="The Temporal frontend, host:port.")
    namespace: Text = Field("default", description="The Temporal namespace.")
    # TLS, mTLS client certificate, API key and gRPC metadata, as envconfig loaded them (paths, not
    # contents: files are read when connecting). Never in a repr: it may hold the API key.
    temporal_profile: ClientConfigProfile = Field(
        default_factory=ClientConfigProfile, repr=False, exclude=True,
        description="Temporal's envconfig profile: TLS, mTLS, API key, gRPC metadata.")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what `from_env` passes: the environment it reads is a parameter, never os.environ behind it.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        profile = load_temporal_profile(env)
        temporal = {"temporal_profile": profile, "temporal_address": profile.address or "localhost:7233",
                    "namespace": profile.namespace or "default"}
        try:
            return cls(**_Environment(cls, env)(), **temporal)
        except ValidationError as err:
            raise SettingsError(*_problems(err, env)) from None

    @classmethod
    def variables(cls) -> dict[str, tuple[str, ...]]:
        """Each field's variables: its own, or those of Temporal's envconfig it comes from."""
        return {name: _variables(field) or _ENVCONFIG[name][0] for name, field in cls.model_fields.items()}

    @property
    def worker_tuning(self) -> dict[str, int]:
        """`Worker` keyword arguments an operator may tune; those unset are left to the SDK."""
        tuning = {"max_cached_workflows": self.max_cached_workflows,
                  "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
                  "max_concurrent_activities": self.max_concurrent_activities}
        return {option: value for option, value in tuning.items() if value is not None}

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


# The fields set from envconfig's profile: their variable, and their key in the TOML profile.
_ENVCONFIG: dict[str, tuple[tuple[str, ...], str]] = {
    "temporal_address": (("TEMPORAL_ADDRESS",), "address"),
    "namespace": (("TEMPORAL_NAMESPACE",), "namespace"),
    "temporal_profile": (("TEMPORAL_CONFIG_FILE", "TEMPORAL_PROFILE"), ""),
}


def _variables(field: FieldInfo) -> tuple[str, ...]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    return (alias,) if isinstance(alias, str) else ()


_VARIABLES = {v: name for name, field in Settings.model_fields.items() for v in _variables(field)}


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over the mapping `from_env` was given, asking it only
    for the model's own variables (one by one, so a caller can see which were read)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name in _VARIABLES if (value := self._env.get(name))}


def _problems(err: ValidationError, env: Mapping[str, str]) -> list[str]:
    """One line per bad variable: its name (or the profile key it came from) and what it must hold."""
    problems = []
    for error in err.errors(include_url=False, include_input=False):
        if error["type"] == "default_factory_not_called":  # a default that follows from a bad value
            continue
        key = str(error["loc"][0])
        name = _VARIABLES.get(key, key)
        where = key if key in _VARIABLES else _source(env, _ENVCONFIG[name][0][0], _ENVCONFIG[name][1])
        problems.append(f"{where}: {expected(Settings.model_fields[name])}")
    return list(dict.fromkeys(problems))


def _source(env: Mapping[str, str], variable: str, key: str) -> str:
    """Where envconfig took a value from: the variable, else the key of the profile in the file."""
    profile = env.get("TEMPORAL_PROFILE", "default")
    return variable if variable in env else f"TEMPORAL_CONFIG_FILE [profile.{profile}] {key}"


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


# The TLS sources a profile may name, with the variable that sets each and its TOML key.
_TLS_SOURCES = (
    ("server_root_ca_cert", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "tls.server_ca_cert_path"),
    ("client_cert", "TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.client_cert_path"),
    ("client_private_key", "TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.client_key_path"),
)


def load_temporal_profile(env: Mapping[str, str]) -> ClientConfigProfile:
    """Temporal's envconfig profile from `env` (over the TOML file), checked so that a mistake is
    reported by the variable's name before anything connects."""
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    if config_file and not Path(config_file).is_file():
        raise SettingsError("TEMPORAL_CONFIG_FILE: no such file")
    tls = env.get("TEMPORAL_TLS")
    if tls is not None and tls not in TRUE_FALSE:  # envconfig takes more spellings; Safeshare takes one
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
    for attr, variable, key in _TLS_SOURCES:
        source = getattr(tls, attr)
        if isinstance(source, Path) and not source.is_file():
            raise SettingsError(f"{_source(env, variable, key)}: no such file")
    if (tls.client_cert is None) != (tls.client_private_key is None):
        raise SettingsError(
            "TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH: mTLS needs both the "
            "client certificate and its key"
        )
