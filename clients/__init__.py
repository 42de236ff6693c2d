"""The Python client and the files it reads: how every actor reaches Safeshare."""

from ._client import (
    Conflict,
    Refused,
    SafeshareClient,
    Submitted,
    Unavailable,
    connect,
    create_deployment_keys,
    database,
    history_runs,
    open_codec,
    open_store,
    open_vault,
    opened,
    sign,
)
from ._files import (
    InputError,
    describe_errors,
    describe_validation_error,
    read_directory,
    read_model,
    read_policy,
    read_request,
)
from ._inbox import open_delivery, read_delivery
from ._records import EXPORT_FIELDS, export_row, export_window, full_record
from ._settings import Settings, SettingsError

__all__ = [
    "EXPORT_FIELDS",
    "Conflict",
    "InputError",
    "Refused",
    "SafeshareClient",
    "Settings",
    "SettingsError",
    "Submitted",
    "Unavailable",
    "connect",
    "create_deployment_keys",
    "database",
    "describe_errors",
    "describe_validation_error",
    "export_row",
    "export_window",
    "full_record",
    "history_runs",
    "open_codec",
    "open_delivery",
    "open_store",
    "open_vault",
    "opened",
    "read_delivery",
    "read_directory",
    "read_model",
    "read_policy",
    "read_request",
    "sign",
]
