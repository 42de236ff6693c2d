"""No traceback, ever (issue 12): each class of fault ends in one line naming the field, option or
variable and what is expected, exit code 2 for bad input and 1 for the environment, and nothing of
the input's content echoed.

Rules protected: errors name the field, never the value (personal data); every command goes
through one error mapping; text is shown as text, never read as markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from clients import Settings
from clients._cli import _recipient, _resources
from clients._files import MAX_DEPTH, parse_document
from schemas import ChallengeAction
from store import InboxEntry
from workers import APPROVE, ROUTINE
from workers.cli import app

from .conftest import BIN, Stack, example
from .test_records_export import cli

CANARY = "CanaryZq7"
ROOT = Path(__file__).resolve().parent.parent
SAFESHARE = str(BIN / "safeshare")
AGENCY = "county-childrens-services"


@pytest.fixture
def home_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """A demo home, and Temporal's configuration isolated from the machine's own profile file."""
    (tmp_path / "empty.toml").write_text("")
    return {"SAFESHARE_HOME": str(settings.home), "TEMPORAL_CONFIG_FILE": str(tmp_path / "empty.toml")}


def invoke(env: dict[str, str | None], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def refused(result: Any, code: int, *named: str) -> None:
    """Ended by the CLI's own mapping: the exit code, one `error:` line naming what is wrong, no
    exception escaping (CliRunner keeps it where a terminal would print a traceback), no canary."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.startswith("error: "), result.stderr
    assert all(n in result.stderr for n in named), result.stderr
    assert "Traceback" not in result.output and CANARY not in result.output


def request_text(**changes: Any) -> str:
    """The routine example, its child's name a canary, as JSON (which a .yaml file may hold too)."""
    doc = example("routine-consent").model_dump(mode="json")
    doc["subject"]["name"] = CANARY
    doc.update(changes)
    return json.dumps(doc, indent=1)


# --- 1. parsing is bounded: depth, duplicated keys, aliases --------------------------------------


def nested(depth: int, kind: str) -> str:
    """A request whose `notes` nest `depth` collections deep, holding the canary at the bottom."""
    if kind == "flow":
        inner = "[" * depth + json.dumps(CANARY) + "]" * depth
    elif kind == "mapping":
        inner = '{"a": ' * depth + json.dumps(CANARY) + "}" * depth
    else:  # YAML block style: each level indented under the last
        return "notes:\n" + "".join("  " * n + "- \n" for n in range(1, depth)) + "  " * depth + f"- {CANARY}\n"
    return f'{{"request_id": "deep-1", "notes": {inner}}}'


# Just too deep, past the decoders' recursion limit, and as deep as 2 MB allows (block style
# indents each level, so it stops at 1,000).
DEEP = [(fmt, kind, depth) for fmt, kind in (("yaml", "flow"), ("yaml", "mapping"), ("yaml", "block"),
                                             ("json", "flow"), ("json", "mapping"))
        for depth in (MAX_DEPTH + 1, 1_000, 200_000) if kind != "block" or depth <= 1_000]


@pytest.mark.parametrize(("fmt", "kind", "depth"), DEEP)
def test_a_deeply_nested_file_is_refused_naming_the_limit(
    fmt: str, kind: str, depth: int, home_env: dict[str, str], tmp_path: Path
) -> None:
    """Unbounded recursion in a parser (RecursionError) is refused as input: the depth is capped
    before the parsers or pydantic recurse, for YAML and JSON alike."""
    path = tmp_path / f"request.{fmt}"
    path.write_text(nested(depth, kind))
    refused(invoke(home_env, "submit", str(path)), 2, f"file: nesting deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_nesting_up_to_the_limit_is_read(fmt: str) -> None:
    """The bound is exact: MAX_DEPTH levels parse, in both formats."""
    for kind in ("flow", "mapping"):
        assert parse_document(nested(MAX_DEPTH - 1, kind), f"r.{fmt}")["request_id"] == "deep-1"


DUPLICATES = [
    # (YAML, JSON, what the error names): a field name is named; other keys (content) are not.
    ("subject:\n  name: CanaryZq7\n  name: Other\n", '{"subject": {"name": "CanaryZq7", "name": "Other"}}',
     "subject.name: key given twice"),
    ("request_id: a-1\nrequest_id: a-2\n", '{"request_id": "a-1", "request_id": "a-2"}', "request_id: key given twice"),
    ("items:\n  - {id: a, content: x, content: y}\n", '{"items": [{"id": "a", "content": "x", "content": "y"}]}',
     "items.0.content: key given twice"),
    ("subject:\n  CanaryZq7 x: 1\n  CanaryZq7 x: 2\n", '{"subject": {"CanaryZq7 x": 1, "CanaryZq7 x": 2}}',
     "subject.<field>: key given twice"),
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize(("yaml_text", "json_text", "named"), DUPLICATES)
def test_a_key_given_twice_is_refused_naming_its_path(
    fmt: str, yaml_text: str, json_text: str, named: str, home_env: dict[str, str], tmp_path: Path
) -> None:
    """Both parsers keep the last of two equal keys silently: what was validated would not be what
    the practitioner reviewed. Refused, naming the key's path only where it looks like a field."""
    path = tmp_path / f"request.{fmt}"
    path.write_text(yaml_text if fmt == "yaml" else json_text)
    refused(invoke(home_env, "submit", str(path)), 2, named)


BILLION_LAUGHS = "a: &a [CanaryZq7, CanaryZq7]\n" + "".join(
    f"{chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)}, *{chr(97 + n)}, *{chr(97 + n)}]\n" for n in range(9))


@pytest.mark.parametrize(("text", "named"), [
    (BILLION_LAUGHS, "file: YAML aliases"),
    ("subject: &s {name: CanaryZq7}\nitems: *s\n", "file: YAML aliases"),
    ("subject:\n  <<: {name: CanaryZq7}\n  name: Other\n", "file: YAML merge keys"),
    ("request_id: a-1\nnotes: " + "9" * 5_000 + "\n", "file: valid YAML expected"),  # int() refuses 5,000 digits
    ("request_id: a-1\nnotes: 2026-13-45\n", "file: valid YAML expected"),  # a 13th month
])
def test_yaml_that_would_expand_or_override_is_refused(text: str, named: str, home_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    """Aliases expand exponentially ("billion laughs") and merge keys override silently: neither
    has a use in a request file. A value the parser cannot convert is a parse error, not a crash."""
    path = tmp_path / "request.yaml"
    path.write_text(text)
    refused(invoke(home_env, "submit", str(path)), 2, named)


# --- 2. files, pipes and the database: each failure is named for what it is ----------------------


@pytest.mark.parametrize(("make", "named"), [
    (lambda d: d, "is a directory; a file expected"),
    (lambda d: d / "absent.yaml", "file: absent.yaml not found"),
    (lambda d: d / "request.yaml" / "x.yaml", "file: x.yaml cannot be read (Not a directory)"),
])
def test_a_request_path_that_is_not_a_readable_file_is_bad_input(make: Any, named: str, home_env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    """Reading the argument's file fails as input (exit 2, naming it), never as the database."""
    (tmp_path / "request.yaml").write_text(request_text())
    result = invoke(home_env, "submit", str(make(tmp_path)))
    refused(result, 2, named)
    assert "store" not in result.stderr


def test_a_device_is_read_no_further_than_the_size_limit(home_env: dict[str, str]) -> None:
    """A path with no size to check (a device) is read up to the limit, not until memory runs out."""
    refused(invoke(home_env, "submit", "/dev/zero"), 2, "file: at most 2000000 bytes expected")


@pytest.mark.parametrize(("url", "code", "named"), [
    ("postgresql+asyncpg://u@127.0.0.1:1/db", 1, "store: cannot use the database (ConnectionRefusedError); "
                                                 "check SAFESHARE_DATABASE_URL"),
    ("postgresql://u@127.0.0.1:1/db", 2, "SAFESHARE_DATABASE_URL: an SQLAlchemy URL with an async driver expected"),
    ("not a url", 2, "SAFESHARE_DATABASE_URL: an SQLAlchemy URL"),
])
def test_only_the_database_failing_says_store(url: str, code: int, named: str, home_env: dict[str, str]) -> None:
    """An unreachable database is the environment (exit 1); an unusable URL is a setting (exit 2).
    The URL itself is never shown: it may hold a password."""
    result = invoke({**home_env, "SAFESHARE_DATABASE_URL": url}, "inbox", "list", "--agency", AGENCY)
    refused(result, code, named)
    assert "127.0.0.1" not in result.output


async def run_into_closed_pipe(env: dict[str, str], *args: str) -> tuple[int | None, bytes]:
    """The command's stdout is a pipe whose reader has already gone: its first write fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = await asyncio.create_subprocess_exec(SAFESHARE, *args, env={**os.environ, **env}, stdout=write_end,
                                                stderr=asyncio.subprocess.PIPE)
    os.close(write_end)
    _, stderr = await proc.communicate()
    return proc.returncode, stderr


async def test_a_closed_output_pipe_ends_quietly(home_env: dict[str, str]) -> None:
    """`safeshare list | head`: the reader leaving is nobody's error. The command stops with 141
    (or 1), writes nothing to stderr, and is not reported as a database failure."""
    commands = [("schema",), ("keys", "token"), ("records", "export", "--from", "2026-01-01", "--to", "2026-01-31"),
                ("inbox", "list", "--agency", AGENCY), ("inbox", "list", "--agency", AGENCY, "--json")]
    for args, (code, stderr) in zip(
            commands, await asyncio.gather(*(run_into_closed_pipe(home_env, *c) for c in commands)), strict=True):
        assert code in (1, 141) and stderr == b"", (args, code, stderr)


async def test_a_reader_that_stops_early_ends_it_quietly(home_env: dict[str, str]) -> None:
    """The shell's own pipe (`safeshare schema | head -c1`): one byte read, nothing on stderr."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-o", "pipefail", "-c", f"{SAFESHARE} schema | head -c1", env={**os.environ, **home_env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert out == b"{" and err == b"" and proc.returncode in (0, 1, 141), (proc.returncode, err)


# --- 3. text is shown as text, never read as markup ----------------------------------------------

HOSTILE = ["[bold]x[/]", "[/]", "[fact]", "[link=http://x]y[/link]", ":smile:", "^[a-z0-9][a-z0-9._-]{2,63}$",
           "[red]r[/red][/bold]"]


class _Status(BaseModel):
    request_id: str
    stage: str
    awaiting: dict[str, str]


class _Client:
    def __init__(self, text: str) -> None:
        self.text = text

    async def status(self, _: str) -> _Status:
        return _Status(request_id=self.text, stage=self.text, awaiting={"who": self.text})

    async def list(self, **_: Any) -> list[dict[str, Any]]:
        keys = ("request_id", "stage", "outcome", "urgency", "disclosing_agency", "recipient_agency")
        return [{**dict.fromkeys(keys, self.text), "escalation_tier": 1, "overdue": True}]


class _Store:
    def __init__(self, text: str) -> None:
        self.text = text

    async def inbox_for(self, _: str) -> list[InboxEntry]:
        return [InboxEntry(**dict.fromkeys((f.name for f in dataclasses.fields(InboxEntry)), self.text))]


def _delivery(text: str) -> Any:
    async def read_delivery(*_: Any) -> tuple[str, dict[str, Any]]:
        item = {"kind": text, "category": text, "recorded_on": text, "content": text, "historical": True}
        return text, {"purpose": {"category": text}, "lawful_basis": text, "items": [item, {**item, "kind": "fact"}],
                      "withheld_identities": 1}
    return read_delivery


VIEWS = {  # each text view, given data that holds the text (ids are validated: only fakes can)
    "status": ("status", "r-1"),
    "list": ("list",),
    "inbox list": ("inbox", "list", "--agency", AGENCY),
    "inbox open": ("inbox", "open", "TEXT", "--agency", AGENCY, "--key", "KEY"),
}


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("view", VIEWS)
def test_every_text_view_shows_text_as_it_is(view: str, text: str, home_env: dict[str, str], settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Markup in data (content, ids, patterns) is printed verbatim: never a style, a link, an emoji,
    swallowed, or a MarkupError."""
    monkeypatch.setattr(_resources, "client", lambda _: contextlib.nullcontext(_Client(text)))
    monkeypatch.setattr(_resources, "store", lambda _: contextlib.nullcontext(_Store(text)))
    monkeypatch.setattr(_recipient, "read_delivery", _delivery(text))
    key = str(settings.agency_key_file(AGENCY))
    result = invoke(home_env, *(key if a == "KEY" else text if a == "TEXT" else a for a in VIEWS[view]))
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    assert text in result.stdout, result.stdout
    if view == "inbox open":
        assert f"- [{text}] {text} (historical)" in result.stdout and "- [fact] " in result.stdout


@pytest.mark.parametrize("text", HOSTILE)
def test_error_lines_show_text_as_it_is(text: str, home_env: dict[str, str], settings: Settings) -> None:
    """An error naming an argument (here a request id that has no bundle) prints it verbatim."""
    key = str(settings.agency_key_file(AGENCY))
    result = invoke(home_env, "inbox", "open", text, "--agency", AGENCY, "--key", key)
    refused(result, 2, f"error: request {text}: no bundle for {AGENCY}")


def test_a_validation_pattern_is_shown_whole(home_env: dict[str, str], tmp_path: Path) -> None:
    """pydantic's message quotes the id pattern: its brackets are shown, not read as tags."""
    path = tmp_path / "request.json"
    path.write_text(request_text(request_id="Not An Id"))
    refused(invoke(home_env, "submit", str(path)), 2, "request_id: String should match pattern '^[a-z0-9][a-z0-9._-]")


async def test_a_delivered_bundle_and_its_record_show_hostile_text_as_text(stack: Stack) -> None:
    """End to end: content, a challenge and a decision's reason holding markup are shown verbatim by
    `inbox open` (with each item's kind, e.g. "[fact]") and by `records`."""
    hostile = " ".join(HOSTILE)
    req = await stack.request("routine-consent")
    items = [req.items[0].model_copy(update={"content": hostile}), *req.items[1:]]
    req = req.model_copy(update={"items": items})
    rid = req.request_id
    await stack.client.submit(req)
    await stack.actors.drive(req, ROUTINE, "manager_review")
    await stack.client.challenge(rid, ChallengeAction(by="np-teacher", text=hostile))
    await stack.actors.drive(req, [dataclasses.replace(APPROVE, reason=hostile)], "receipt")

    key = str(stack.settings.agency_key_file(AGENCY))
    code, opened, err = await cli(stack, "inbox", "open", rid, "--agency", AGENCY, "--key", key)
    assert code == 0, err
    assert "- [fact] attendance" in opened and "- [opinion] behaviour" in opened
    code, record, err = await cli(stack, "records", rid)
    assert code == 0, err
    for text in HOSTILE:
        assert text in opened and text in record, text


# --- 4. dates: bounded before any arithmetic ----------------------------------------------------


@pytest.mark.parametrize(("start", "end", "named"), [
    ("0001-01-01", "9999-12-31", "--from"),
    ("2026-01-01", "9999-12-31", "--to"),  # the day after --to is where the window ends
    ("9999-12-31", "9999-12-31", "--from"),
    ("1969-12-31", "2026-01-01", "--from"),
    ("2026-01-01", "+99999-01-01", "--to"),
])
def test_an_extreme_export_date_is_refused_naming_the_option(start: str, end: str, named: str,
                                                             home_env: dict[str, str]) -> None:
    """Date arithmetic on an unbounded date overflows: the range is checked first, and named."""
    result = invoke(home_env, "records", "export", "--from", start, "--to", end)
    refused(result, 2, f"{named}: a date YYYY-MM-DD from 1970-01-01 to 9999-12-30 expected")
    assert result.stdout == ""


# --- 5. secret and key files, and the commands that are not async --------------------------------


def test_keys_token_in_a_home_without_one_names_the_file(home_env: dict[str, str], tmp_path: Path) -> None:
    """A synchronous command goes through the same mapping as the others."""
    refused(invoke({**home_env, "SAFESHARE_HOME": str(tmp_path / "empty")}, "keys", "token"), 2, "codec-token")


@pytest.mark.parametrize(("key", "named"), [
    (lambda s: s.audit_key_file, "--public-key: audit.key does not hold a base64 Ed25519 public key"),
    (lambda s: s.agency_key_file(AGENCY), "does not hold a base64 Ed25519 public key"),
    (lambda s: s.store_key_file.parent, "--public-key: keys is a directory"),
    (lambda s: Path("/dev/zero"), "--public-key: at most 1024 bytes expected"),
    (lambda s: s.home / "absent.pub", "--public-key: absent.pub not found"),
])
def test_audit_verify_given_anything_but_a_public_key_names_the_option(key: Any, named: str, home_env: dict[str, str],
                                                                       settings: Settings) -> None:
    """A private key file given as --public-key is refused as such, its bytes never shown."""
    refused(invoke(home_env, "audit", "verify", "--public-key", str(key(settings))), 2, named)


# --- 6. TEMPORAL_ADDRESS: checked before connecting, and a failed connection named --------------


@pytest.mark.parametrize("address", ["not a host", "host:99999", "http://x", "https://x:7233", "localhost",
                                     "host:", ":7233", "host:0", "[::1", "host:7233/path"])
def test_a_malformed_temporal_address_is_refused_naming_the_variable(address: str, home_env: dict[str, str]) -> None:
    """A bad value stops any command with exit code 2 naming the variable (README, Configuration)."""
    refused(invoke({**home_env, "TEMPORAL_ADDRESS": address}, "status", "r-1"), 2,
            "TEMPORAL_ADDRESS: host:port expected")


def test_a_malformed_address_in_the_profile_file_is_named_by_its_key(home_env: dict[str, str], tmp_path: Path) -> None:
    toml = tmp_path / "temporal.toml"
    toml.write_text('[profile.default]\naddress = "http://temporal"\n')
    refused(invoke({**home_env, "TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_ADDRESS": None}, "status", "r-1"), 2,
            "TEMPORAL_CONFIG_FILE [profile.default] address: host:port expected")


@pytest.mark.parametrize("address", ["127.0.0.1:1", "nohost.invalid:7233"])
def test_an_unreachable_temporal_is_the_environment_and_named(address: str, home_env: dict[str, str]) -> None:
    """Nothing answering is not the user's input: exit 1, naming the address and the variable."""
    refused(invoke({**home_env, "TEMPORAL_ADDRESS": address}, "status", "r-1"), 1,
            f"Temporal: cannot connect to {address}", "TEMPORAL_ADDRESS")


# --- 7. the last line of defence ------------------------------------------------------------------

UNEXPECTED = """
import sys
from clients._cli import app, command
from workers.cli import main

@app.command("explode")
def explode() -> None:
    raise KeyError("CanaryZq7")

@app.command("explode-async")
@command
async def explode_async() -> None:
    raise ZeroDivisionError("CanaryZq7")

sys.argv = ["safeshare", sys.argv[1]]
main()
"""


async def test_an_unexpected_exception_is_one_line_without_its_message() -> None:
    """A bug still ends in one line, exit 1, naming only the exception's type: its message and the
    traceback's values may hold personal data."""

    async def run(command: str) -> tuple[int | None, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", UNEXPECTED, command, cwd=ROOT,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode, out, err

    (code, out, err), (code_async, out_async, err_async) = await asyncio.gather(run("explode"), run("explode-async"))
    assert (code, out, err) == (1, b"", b"error: internal error (KeyError); nothing more was done\n")
    assert (code_async, out_async, err_async) == (
        1, b"", b"error: internal error (ZeroDivisionError); nothing more was done\n")
