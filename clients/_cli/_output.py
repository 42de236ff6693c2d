"""What the CLI prints: text, never markup; tables that never cut an id; failures as `error:` lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

# Everything printed is text, never markup: content, ids, file names and error messages hold
# brackets ("[fact]", a pattern's "[a-z0-9]") and colons (":smile:"). Styles are given as styles.
out = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)


def fail(code: int, problems: list[str]) -> NoReturn:
    for p in problems:
        err.print(Text.assemble(("error:", "red"), " ", p), soft_wrap=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """A line of text, wrapped by the terminal rather than by rich, so an id is never split."""
    out.print(text, soft_wrap=True)


def show(model: BaseModel | list[Any] | dict[str, Any], as_json: bool) -> None:
    if as_json:
        data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif isinstance(model, BaseModel):
        pairs((key, json.dumps(value) if isinstance(value, dict | list) else str(value))
              for key, value in model.model_dump(mode="json").items())
    else:
        out.print_json(json.dumps(model, default=str))


# Tables never cut a cell: rich would shorten an id to fit the terminal ("northfi…"), and an id
# shown in part is useless, or worse, names another request.


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Rows as a table if it fits the terminal whole; otherwise each row as a block of
    `header value` lines, where any id up to 64 characters fits an 80-column line."""
    grid = Table(*(Column(h, no_wrap=True) for h in headers))
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))
    if out.measure(grid, options=out.options.update_width(sys.maxsize)).maximum <= out.width:  # unclamped
        out.print(grid)
        return
    for n, row in enumerate(rows):
        if n:
            out.print()
        pairs(zip(headers, row, strict=True))


def pairs(rows: Iterable[tuple[str, str]]) -> None:
    """Names and values, one pair a line. A value that does not fit beside its name starts the next
    line, indented, so an id of up to 64 characters is never broken on an 80-column terminal."""
    rows = list(rows)
    indent = max((len(key) for key, _ in rows), default=0) + 2
    for key, value in rows:
        beside = indent + len(value) <= out.width
        out.print(Text.assemble((key.ljust(indent) if beside else key, "bold"), "" if beside else "\n  ", value),
                  overflow="fold")


def recorded(request_id: str, what: str) -> None:
    # What the update returned is already history: the request moves on by itself (a decision
    # seals and delivers, consent calls the manager), so say what was recorded, not a stage.
    say(f"{request_id}: recorded {what}; `safeshare status {request_id}` shows where it is now")
