"""The `safeshare` command line for every actor. Exit codes: 0 ok, 2 bad input or refused, 1 other."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.service import RPCError

import crypto
from schemas import (
    AckAction,
    ChallengeAction,
    ConsentAction,
    DecisionAction,
    HoldAction,
    IntakeError,
    OverrideAction,
    ShareRequest,
)
from store import Store, StoreError

from ._client import Refused, SafeshareClient, connect
from ._files import InputError, describe_validation_error, read_directory, read_request
from ._inbox import open_delivery
from ._settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Safeshare: safeguarding information sharing.")
inbox_app = typer.Typer(no_args_is_help=True, help="Sealed bundles delivered to an agency.")
app.add_typer(inbox_app, name="inbox")
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _fail(code: int, problems: list[str]) -> NoReturn:
    for p in problems:
        err.print(f"[red]error:[/red] {p}", highlight=False)
    raise typer.Exit(code)


def command(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async command, turning each kind of failure into its exit code and a clear line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            asyncio.run(fn(*args, **kwargs))
        except InputError as e:
            _fail(2, e.problems)
        except ValidationError as e:
            _fail(2, describe_validation_error(e))
        except (IntakeError, Refused) as e:
            _fail(2, [str(e)])
        except crypto.CryptoError as e:
            _fail(2, [str(e)])
        except StoreError as e:
            _fail(1, [str(e)])
        except RPCError as e:
            _fail(1, [f"Temporal: {e.message} (is the stack running? TEMPORAL_ADDRESS)"])

    return wrapper


async def _client(settings: Settings) -> SafeshareClient:
    directory = read_directory(settings.directory_file)
    return SafeshareClient(await connect(settings), directory, settings.task_queue)


async def _store(settings: Settings) -> Store:
    return await Store.open(settings.database_url, crypto.read_secret(settings.store_key_file))


def _show(model: BaseModel | list[Any] | dict[str, Any], as_json: bool) -> None:
    if as_json:
        data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif isinstance(model, BaseModel):
        table = Table(show_header=False, box=None)
        for key, value in model.model_dump(mode="json").items():
            table.add_row(f"[bold]{key}[/bold]", json.dumps(value) if isinstance(value, dict | list) else str(value))
        out.print(table)
    else:
        out.print_json(json.dumps(model, default=str))


# --- practitioner ------------------------------------------------------------------------------


@app.command()
@command
async def submit(
    file: Path,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the request reaches retention")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate a request file (YAML or JSON) and start its workflow. Nothing starts if it is invalid."""
    settings = Settings.from_env()
    request = read_request(file)
    client = await _client(settings)
    result = await client.submit(request)
    word = "already submitted" if result.already_existed else "submitted"
    if not as_json:
        out.print(f"{result.request_id}: {word} (workflow {result.workflow_id})")
    if wait:
        status = await client.wait(result.request_id)
        _show(status, as_json)
    elif as_json:
        _show({"request_id": result.request_id, "workflow_id": result.workflow_id,
               "already_existed": result.already_existed}, True)


@app.command()
@command
async def status(request_id: str, as_json: JsonOpt = False) -> None:
    """Stage, what is awaited from whom, and by when."""
    _show(await (await _client(Settings.from_env())).status(request_id), as_json)


@app.command("list")
@command
async def list_(
    stage: Annotated[str | None, typer.Option(help="Only requests at this stage")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue requests")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Requests as operators see them (search attributes only: no personal data)."""
    rows = await (await _client(Settings.from_env())).list(stage=stage, overdue=True if overdue else None)
    if as_json:
        _show(rows, True)
        return
    table = Table("request", "stage", "outcome", "urgency", "from", "to", "tier", "overdue")
    for r in rows:
        table.add_row(r["request_id"], r["stage"], r["outcome"], r["urgency"], r["disclosing_agency"],
                      r["recipient_agency"], str(r["escalation_tier"]), "yes" if r["overdue"] else "")
    out.print(table)


@app.command()
@command
async def consent(
    request_id: str,
    given: Annotated[bool, typer.Option("--given")] = False,
    refused: Annotated[bool, typer.Option("--refused")] = False,
    withdrawn: Annotated[bool, typer.Option("--withdrawn")] = False,
    by: Annotated[str, typer.Option("--by", help="Practitioner recording it")] = "",
) -> None:
    """Record the family's answer to the request for consent."""
    chosen = [name for name, on in (("given", given), ("refused", refused), ("withdrawn", withdrawn)) if on]
    if len(chosen) != 1:
        raise InputError(["status: exactly one of --given, --refused, --withdrawn"])
    action = ConsentAction(status=chosen[0], by=by)
    s = await (await _client(Settings.from_env())).consent(request_id, action)
    out.print(f"{request_id}: consent {chosen[0]} recorded; stage {s.stage}")


@app.command()
@command
async def override(
    request_id: str,
    ground: Annotated[str, typer.Option("--ground", help="e.g. would_cause_harmful_delay")],
    reason: Annotated[str, typer.Option("--reason")],
    by: Annotated[str, typer.Option("--by")],
) -> None:
    """Record a safeguarding override of consent, with its lawful ground and reasons."""
    action = OverrideAction(ground=ground, reason=reason, by=by)  # type: ignore[arg-type]
    s = await (await _client(Settings.from_env())).override(request_id, action)
    out.print(f"{request_id}: override recorded ({ground}); stage {s.stage}")


@app.command()
@command
async def challenge(
    request_id: str, by: Annotated[str, typer.Option("--by")], text: Annotated[str, typer.Option("--text")]
) -> None:
    """Record the subject's challenge; the discloser's manager and DPO are notified."""
    await (await _client(Settings.from_env())).challenge(request_id, ChallengeAction(by=by, text=text))
    out.print(f"{request_id}: challenge recorded")


# --- manager -----------------------------------------------------------------------------------


@app.command()
@command
async def decide(
    request_id: str,
    approve: Annotated[bool, typer.Option("--approve")] = False,
    decline: Annotated[bool, typer.Option("--decline")] = False,
    comment: Annotated[bool, typer.Option("--comment")] = False,
    manager: Annotated[str, typer.Option("--manager")] = "",
    items: Annotated[str | None, typer.Option("--items", help="Comma-separated item ids")] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Approve (optionally only some items), decline, or comment, with reasons."""
    chosen = [n for n, on in (("approve", approve), ("decline", decline), ("comment", comment)) if on]
    if len(chosen) != 1:
        raise InputError(["decision: exactly one of --approve, --decline, --comment"])
    action = DecisionAction(
        decision=chosen[0],  # type: ignore[arg-type]
        manager=manager, reason=reason,
        items=[i.strip() for i in items.split(",") if i.strip()] if items else None,
    )
    s = await (await _client(Settings.from_env())).decide(request_id, action)
    out.print(f"{request_id}: {chosen[0]} recorded; stage {s.stage}")


@app.command()
@command
async def hold(request_id: str, reason: Annotated[str, typer.Option("--reason")]) -> None:
    """Place a legal hold: deletion waits until it is released."""
    await (await _client(Settings.from_env())).hold(request_id, HoldAction(hold=True, reason=reason))
    out.print(f"{request_id}: legal hold placed")


@app.command()
@command
async def release(request_id: str, reason: Annotated[str, typer.Option("--reason")]) -> None:
    """Release a legal hold."""
    await (await _client(Settings.from_env())).hold(request_id, HoldAction(hold=False, reason=reason))
    out.print(f"{request_id}: legal hold released")


# --- recipient ---------------------------------------------------------------------------------


@inbox_app.command("list")
@command
async def inbox_list(agency: Annotated[str, typer.Option("--agency")], as_json: JsonOpt = False) -> None:
    """Bundles delivered to an agency."""
    store = await _store(Settings.from_env())
    try:
        rows = await store.inbox_for(agency)
    finally:
        await store.close()
    if as_json:
        _show(rows, True)
        return
    table = Table("request", "from", "delivered", "acknowledged", "deleted")
    for r in rows:
        table.add_row(r["request_id"], r["sender"], str(r["delivered_at"]), str(r["acknowledged_at"] or ""),
                      str(r["destroyed_at"] or ""))
    out.print(table)


@inbox_app.command("open")
@command
async def inbox_open(
    request_id: str,
    agency: Annotated[str, typer.Option("--agency")],
    key: Annotated[Path, typer.Option("--key", help="The agency's private key file")],
    as_json: JsonOpt = False,
) -> None:
    """Verify the sender's signature and open a bundle with the agency's private key."""
    settings = Settings.from_env()
    directory = read_directory(settings.directory_file)
    sender, content = await open_delivery(settings, directory, request_id, agency, crypto.AgencyKeys.load(key))
    if as_json:
        _show(content, True)
        return
    out.print(f"[bold]{request_id}[/bold] from {sender}: signature verified")
    out.print(f"purpose: {content['purpose']['category']}, basis: {content['lawful_basis']}")
    for item in content["items"]:
        flag = " (historical)" if item.get("historical") else ""
        out.print(f"- [{item['kind']}] {item['category']}{flag}, recorded {item['recorded_on']}:")
        out.print(f"  {item['content']}", highlight=False)
    if content["withheld_identities"]:
        out.print(f"{content['withheld_identities']} third-party identities withheld")


@app.command()
@command
async def ack(request_id: str, agency: Annotated[str, typer.Option("--agency")]) -> None:
    """Acknowledge receipt of a bundle."""
    await (await _client(Settings.from_env())).acknowledge(request_id, AckAction(agency=agency))
    out.print(f"{request_id}: receipt acknowledged by {agency}")


# --- auditor -----------------------------------------------------------------------------------


@app.command()
@command
async def records(request_id: str, as_json: JsonOpt = False) -> None:
    """The decision record and audit trail of one request (no content)."""
    store = await _store(Settings.from_env())
    try:
        body = await store.record(request_id)
        trail = await store.audit_trail(request_id)
    finally:
        await store.close()
    if body is None and not trail:
        raise Refused(f"request {request_id}: no record")
    result = {"record": json.loads(body) if body else None,
              "trail": [{k: r[k] for k in ("at", "event", "actor", "data")} for r in trail]}
    if as_json:
        _show(result, True)
        return
    out.print_json(json.dumps(result["record"], default=str))
    for r in result["trail"]:
        out.print(f"{r['at']}  {r['event']:<26} {r['actor']:<22} {r['data']}", highlight=False)


@app.command()
def schema(name: Annotated[str, typer.Argument(help="request")] = "request") -> None:
    """Print the JSON Schema of a request file."""
    if name != "request":
        _fail(2, ["name: 'request' expected"])
    sys.stdout.write(json.dumps(ShareRequest.model_json_schema(), indent=2) + "\n")
