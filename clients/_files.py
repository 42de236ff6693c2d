"""Reading request, directory and policy files, with errors that name the field, never the value."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from schemas import Directory, Policy, ShareRequest

M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 2_000_000
# Request, directory and policy files nest a few levels; the parsers recurse per level, so a
# deeper file is refused before it can exhaust the stack.
MAX_DEPTH = 32

_KINDS = {str: "text", int: "number", float: "number", bool: "true/false", dict: "mapping",
          list: "list", type(None): "nothing"}


class InputError(ValueError):
    """Bad input: each line names a field and what is expected. Exit code 2."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_TOO_DEEP = f"file: nesting deeper than {MAX_DEPTH} levels"


def field_path(parts: list[str | int]) -> str:
    """A path into a file. Keys came from the file: each is named only if it looks like a field name."""
    return ".".join(str(p) if isinstance(p, int) or _FIELD_NAME.fullmatch(p) else "<field>" for p in parts)


def describe_validation_error(err: ValidationError) -> list[str]:
    """pydantic's own rendering includes the input value, which may be personal data: not used."""
    return describe_errors(err.errors(include_url=False, include_input=True))


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """pydantic's error details (from the CLI's files or the service's request bodies), each as
    "field: what is expected", naming the kind of value given, never the value."""
    problems = []
    for e in errors:
        where = field_path([*e["loc"]])
        if e["type"] == "safeshare":
            problems.append(e["msg"])
        elif e["type"] == "missing":
            problems.append(f"{where}: required field is missing")
        elif e["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown field")
        else:
            kind = _KINDS.get(type(e.get("input")), "value")
            problems.append(f"{where}: {e['msg'].rstrip('.')} (got {kind})")
    return problems


def _duplicate(path: list[str | int], line: int | None = None) -> InputError:
    at = f" (line {line})" if line is not None else ""
    return InputError([f"{field_path(path)}: key given twice{at}; each key once expected"])


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded: no aliases (a few lines of them expand to gigabytes), at most
    MAX_DEPTH nested collections (its composer recurses per level), and a key given twice refused
    (PyYAML would keep the last one silently)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str | int] = []  # where the collection being composed sits

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            raise InputError(["file: YAML aliases (*name) are not accepted"])
        if parent is None or not self.check_event(yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        # index: the key node of a mapping value, a sequence position, or None for a mapping key.
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else
                          index if isinstance(index, int) else "?")
        if len(self._path) >= MAX_DEPTH:
            raise InputError([_TOO_DEEP])
        node = super().compose_node(parent, index)
        self._path.pop()
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if key.tag == "tag:yaml.org,2002:merge":  # `<<` overrides keys silently, as duplicates do
                raise InputError(["file: YAML merge keys (<<) are not accepted"])
            if isinstance(key, yaml.ScalarNode):
                if (key.tag, key.value) in seen:
                    raise _duplicate([*self._path, key.value], key.start_mark.line + 1)
                seen.add((key.tag, key.value))
        return node


def _load_json(text: str) -> Any:
    """JSON with a key given twice refused (json keeps the last one silently) and depth bounded."""
    repeated: dict[int, tuple[dict[str, Any], str]] = {}  # id → (the object, kept alive; its key)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) < len(items):
            repeated[id(obj)] = obj, next(k for k, n in Counter(k for k, _ in items).items() if n > 1)
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:  # the decoder recurses per level: a file hundreds deep
        raise InputError([_TOO_DEEP]) from None
    # The collections, walked with a stack rather than recursion; depth counted as the YAML loader does.
    stack: list[tuple[Any, list[str | int]]] = [(data, [])] if isinstance(data, dict | list) else []
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise InputError([_TOO_DEEP])
        if isinstance(value, dict) and id(value) in repeated:
            raise _duplicate([*path, repeated[id(value)][1]])
        children = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend((v, [*path, k]) for k, v in children if isinstance(v, dict | list))
    return data


def parse_document(text: str, name: str) -> Any:
    """YAML or JSON, at most MAX_DEPTH levels deep, each key once, no YAML aliases. A parse error
    reports its position only: the parser's snippet is content."""
    try:
        return _load_json(text) if name.endswith(".json") else yaml.load(text, Loader=_Loader)  # noqa: S506
    except json.JSONDecodeError as err:
        raise InputError([f"file: valid JSON expected (error at line {err.lineno}, column {err.colno})"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (error at line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise InputError([f"file: valid YAML expected{at}"]) from None
    except InputError:
        raise
    except ValueError:  # a value the parser cannot convert: an integer of 5,000 digits, a 13th month
        kind = "JSON" if name.endswith(".json") else "YAML"
        raise InputError([f"file: valid {kind} expected (a number or date out of range)"]) from None


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InputError(["file: a mapping of fields expected at the top level"])
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError(describe_validation_error(err)) from None


def read_bytes(path: Path, name: str = "file", limit: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit` bytes of a file given as argument `name`. A failure names the argument and
    the file, never what it holds."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)  # read, not stat: a device or pipe has no size to check first
    except FileNotFoundError:
        raise InputError([f"{name}: {path.name} not found"]) from None
    except IsADirectoryError:
        raise InputError([f"{name}: {path.name} is a directory; a file expected"]) from None
    except OSError as err:
        raise InputError([f"{name}: {path.name} cannot be read ({err.strerror or type(err).__name__})"]) from None
    if len(data) > limit:
        raise InputError([f"{name}: at most {limit} bytes expected"])
    return data


def read_model(model: type[M], path: Path) -> M:
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(["file: UTF-8 text expected"]) from None
    return validate(model, parse_document(text, path.name))


def read_request(path: Path) -> ShareRequest:
    return read_model(ShareRequest, path)


def read_directory(path: Path) -> Directory:
    return read_model(Directory, path)


def read_policy(path: Path) -> Policy:
    return read_model(Policy, path)
