"""Reading request, directory and policy files, with errors that name the field, never the value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from schemas import Directory, Policy, ShareRequest

M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 2_000_000

_KINDS = {str: "text", int: "number", float: "number", bool: "true/false", dict: "mapping",
          list: "list", type(None): "nothing"}


class InputError(ValueError):
    """Bad input: each line names a field and what is expected. Exit code 2."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")


def describe_validation_error(err: ValidationError) -> list[str]:
    """pydantic's own rendering includes the input value, which may be personal data: not used."""
    problems = []
    for e in err.errors(include_url=False, include_input=True):
        where = ".".join(str(p) for p in e["loc"])
        if e["type"] == "safeshare":
            problems.append(e["msg"])
        elif e["type"] == "missing":
            problems.append(f"{where}: required field is missing")
        elif e["type"] == "extra_forbidden":
            # The key itself came from the file: named only if it looks like a field name.
            *parent, key = (str(p) for p in e["loc"])
            named = ".".join([*parent, key]) if _FIELD_NAME.fullmatch(key) else ".".join([*parent, "<field>"])
            problems.append(f"{named}: unknown field")
        else:
            kind = _KINDS.get(type(e.get("input")), "value")
            problems.append(f"{where}: {e['msg'].rstrip('.')} (got {kind})")
    return problems


def parse_document(text: str, name: str) -> Any:
    """YAML or JSON. A parse error reports its position only: the parser's snippet is content."""
    try:
        return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise InputError([f"file: valid JSON expected (error at line {err.lineno}, column {err.colno})"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (error at line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InputError([f"file: valid YAML expected{at}"]) from None


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InputError(["file: a mapping of fields expected at the top level"])
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError(describe_validation_error(err)) from None


def read_model(model: type[M], path: Path) -> M:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError([f"file: at most {MAX_FILE_BYTES} bytes expected"])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError([f"file: {path.name} not found"]) from None
    except UnicodeDecodeError:
        raise InputError(["file: UTF-8 text expected"]) from None
    return validate(model, parse_document(text, path.name))


def read_request(path: Path) -> ShareRequest:
    return read_model(ShareRequest, path)


def read_directory(path: Path) -> Directory:
    return read_model(Directory, path)


def read_policy(path: Path) -> Policy:
    return read_model(Policy, path)
