"""The Python client and the files it reads: how every actor reaches Safeshare."""

from ._client import Refused, SafeshareClient, Submitted, connect
from ._files import (
    InputError,
    describe_validation_error,
    read_directory,
    read_model,
    read_policy,
    read_request,
)
from ._inbox import open_delivery
from ._settings import Settings

__all__ = [
    "InputError",
    "Refused",
    "SafeshareClient",
    "Settings",
    "Submitted",
    "connect",
    "describe_validation_error",
    "open_delivery",
    "read_directory",
    "read_model",
    "read_policy",
    "read_request",
]
