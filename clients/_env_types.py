"""The types of the settings' variables: what each must hold, and the one message that says so.

A type's `Expected` is the whole message after the variable's name, whatever check failed, so no
message can carry the value (a database URL may hold a password)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

Tracing = Literal["none", "console", "otlp"]
TRUE_FALSE = ("true", "false")


class Expected:
    """What a type's variables must hold, as said after the variable's name."""

    def __init__(self, text: str) -> None:
        self.text = text


def _one_spelling(value: object) -> object:
    if isinstance(value, str):
        if value not in TRUE_FALSE:
            raise ValueError("not true or false")
        return value == "true"
    return value


def _async_url(url: str) -> str:
    try:
        is_async = make_url(url).get_dialect().is_async
    except ArgumentError:  # not a URL, or no such dialect
        is_async = False
    if not is_async:
        raise ValueError("not an async SQLAlchemy URL")
    return url


# host:port, the host a name, an IPv4 address or a bracketed IPv6 address: what the Temporal client
# dials (a URL scheme or a bad port would fail inside its core, not naming the variable).
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?):([0-9]{1,5})")


def _host_port(address: str) -> str:
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 0 < int(match[3]) < 65536:
        raise ValueError("not host:port")
    return address


def _origins(value: object) -> object:
    return tuple(o.strip() for o in value.split(",") if o.strip()) if isinstance(value, str) else value


def _origin(origin: str) -> str:
    """What a browser sends as `Origin`, compared as text: scheme, host and port, nothing more."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc or \
            parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        raise ValueError("not an origin")
    _ = parts.port  # a bad port raises ValueError
    return origin


def home_file(*parts: str) -> Any:
    """A default SQLite URL under SAFESHARE_HOME (resolved by then, unless it was refused)."""
    return lambda data: f"sqlite+aiosqlite:///{Path(data.get('home', 'var')).joinpath(*parts)}"


Home = Annotated[Path, AfterValidator(Path.resolve), Expected("expected a directory path")]
Bool = Annotated[bool, BeforeValidator(_one_spelling), Expected("expected true or false")]
Port = Annotated[int, Field(ge=1, le=65535), Expected("expected a port number from 1 to 65535")]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False), Expected("expected a positive number of seconds")]
SecondsOrZero = Annotated[float, Field(ge=0, allow_inf_nan=False),
                          Expected("expected a number of seconds, 0 or more")]
Count = Annotated[int, Field(gt=0), Expected("expected a whole number, 1 or more")]
CountOrZero = Annotated[int, Field(ge=0), Expected("expected a whole number, 0 or more")]
DatabaseUrl = Annotated[str, AfterValidator(_async_url), Expected(
    "an SQLAlchemy URL with an async driver expected, "
    "e.g. sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db")]
HostPort = Annotated[str, AfterValidator(_host_port), Expected(
    "host:port expected, e.g. localhost:7233 (no scheme; a port from 1 to 65535)")]
Origins = Annotated[tuple[Annotated[str, AfterValidator(_origin)], ...], NoDecode, BeforeValidator(_origins),
                    Expected("expected origins separated by commas, each scheme://host[:port] "
                             "(no path, no trailing slash), e.g. http://localhost:8233")]
Exporter = Annotated[Tracing, BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
                     Expected("expected none, console or otlp")]
Text = Annotated[str, Expected("expected text")]


def expected(field: FieldInfo) -> str:
    """The field's `Expected`: on its type or, for `X | None`, on X."""
    inner = (m for arg in get_args(field.annotation) for m in getattr(arg, "__metadata__", ()))
    return next(m.text for m in (*field.metadata, *inner) if isinstance(m, Expected))
