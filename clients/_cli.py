"""The `safeshare` command line for every actor. Exit codes: 0 ok, 2 bad input or refused, 1 other."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError
from typer.core import TyperGroup

import crypto
from schemas import (
    AckAction,
    Agency,
    ChallengeAction,
    ConsentAction,
    Contact,
    DecisionAction,
    DecisionRecord,
    HoldAction,
    IntakeError,
    OverrideAction,
    ShareRequest,
)
from store import ContentDestroyed, NotFound, Store, StoreError, upgrade_database

from ._client import (
    STAGES,
    Refused,
    SafeshareClient,
    Unavailable,
    check_stage,
    connect,
    create_deployment_keys,
    database,
    open_codec,
    open_store,
)
from ._files import InputError, describe_validation_error, read_bytes, read_directory, read_request
from ._inbox import open_delivery
from ._records import (
    REASON_MISMATCH,
    decision_reasons,
    export_row,
    export_window,
    render,
    trail_with_notes,
)
from ._settings import Settings

AUDIT_BROKEN = 3  # exit code: the audit log does not verify
PIPE_CLOSED = 141  # exit code: the reader of our output went away (128 + SIGPIPE, as the shell reports it)


class _Group(TyperGroup):
    """Every command, whatever its kind, ends through the one mapping of failures to exit codes."""

    def invoke(self, ctx: Any) -> Any:
        with _errors():
            return super().invoke(ctx)


class _RecordsGroup(TyperGroup):
    """`safeshare records ID` is short for `safeshare records show ID`."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().resolve_command(ctx, args)

app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, help="Safeshare: safeguarding information sharing."
)
inbox_app = typer.Typer(no_args_is_help=True, help="Sealed bundles delivered to an agency.")
app.add_typer(inbox_app, name="inbox")
records_app = typer.Typer(
    cls=_RecordsGroup, no_args_is_help=True,
    help="Decision records: one request's full trail (`records ID`), or an export for the DPO.",
)
app.add_typer(records_app, name="records")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
app.add_typer(audit_app, name="audit")
db_app = typer.Typer(no_args_is_help=True, help="The store's database schema.")
app.add_typer(db_app, name="db")
keys_app = typer.Typer(no_args_is_help=True, help="Key pairs, the codec key ring, the codec server token.")
app.add_typer(keys_app, name="keys")
# What a command opened (the codec's key vault), closed when the command ends.
_resources: contextvars.ContextVar[contextlib.AsyncExitStack] = contextvars.ContextVar("resources")
# Everything printed is text, never markup: content, ids, file names and error messages hold
# brackets ("[fact]", a pattern's "[a-z0-9]") and colons (":smile:"). Styles are given as styles.
out = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _fail(code: int, problems: list[str]) -> NoReturn:
    for p in problems:
        err.print(Text.assemble(("error:", "red"), " ", p), soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Each kind of failure as its exit code and a line naming what is wrong (settings errors are
    InputErrors). What is not here is a bug: workers/cli.py's main says so in one line."""
    try:
        yield
    except InputError as e:
        _fail(2, e.problems)
    except ValidationError as e:
        _fail(2, describe_validation_error(e))
    except (IntakeError, Refused, crypto.CryptoError) as e:
        _fail(2, [str(e)])
    except (StoreError, Unavailable) as e:
        _fail(1, [str(e)])
    except SQLAlchemyError as e:  # the store failing mid-command; never the URL: it may hold a password
        _fail(1, [f"store: cannot use the database ({type(e).__name__}); check SAFESHARE_DATABASE_URL"])
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        _fail(1, ["Temporal: the request did not answer in time (is a worker running?); "
                  "check with `safeshare status` before trying again"])
    except RPCError as e:
        _fail(1, [f"Temporal: {e.message} (is the stack running? TEMPORAL_ADDRESS)"])
    except BrokenPipeError:
        # Our reader went away (`safeshare list | head`): nothing more to write, nowhere to say so.
        raise typer.Exit(PIPE_CLOSED) from None
    except OSError as e:  # a file the command writes (a key, the key ring), or a connection dropped
        where = f"file {Path(e.filename).name}" if e.filename else "system"
        _fail(1, [f"{where}: {e.strerror or type(e).__name__}"])


def command(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async command; what it opened (the codec's key vault) is closed when it ends."""

    async def run(*args: Any, **kwargs: Any) -> None:
        async with contextlib.AsyncExitStack() as stack:
            _resources.set(stack)
            await fn(*args, **kwargs)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(run(*args, **kwargs))

    return wrapper


async def _client(settings: Settings) -> SafeshareClient:
    directory = read_directory(settings.directory_file)
    codec = await open_codec(settings)
    _resources.get().push_async_callback(codec.vault.close)
    return SafeshareClient(await connect(settings, codec), directory, settings.task_queue)


KeyOpt = Annotated[
    Path | None, typer.Option("--key", help="Your private signing key file: the workflow refuses unsigned actions")
]


def _signing_key(path: Path | None) -> crypto.SigningKey | None:
    return crypto.SigningKey.load(path) if path is not None else None


async def _store(settings: Settings) -> Store:
    return await open_store(settings)


def _show(model: BaseModel | list[Any] | dict[str, Any], as_json: bool) -> None:
    if as_json:
        data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif isinstance(model, BaseModel):
        _pairs((key, json.dumps(value) if isinstance(value, dict | list) else str(value))
               for key, value in model.model_dump(mode="json").items())
    else:
        out.print_json(json.dumps(model, default=str))


# Tables never cut a cell: rich would shorten an id to fit the terminal ("northfi…"), and an id
# shown in part is useless, or worse, names another request.


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Rows as a table if it fits the terminal whole; otherwise each row as a block of
    `header value` lines, where any id up to 64 characters fits an 80-column line."""
    table = Table(*(Column(h, no_wrap=True) for h in headers))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    if out.measure(table, options=out.options.update_width(sys.maxsize)).maximum <= out.width:  # unclamped
        out.print(table)
        return
    for n, row in enumerate(rows):
        if n:
            out.print()
        _pairs(zip(headers, row, strict=True))


def _pairs(pairs: Iterable[tuple[str, str]]) -> None:
    """Names and values, one pair a line. A value that does not fit beside its name starts the next
    line, indented, so an id of up to 64 characters is never broken on an 80-column terminal."""
    rows = list(pairs)
    indent = max((len(key) for key, _ in rows), default=0) + 2
    for key, value in rows:
        beside = indent + len(value) <= out.width
        out.print(Text.assemble((key.ljust(indent) if beside else key, "bold"), "" if beside else "\n  ", value),
                  overflow="fold")


def _recorded(request_id: str, what: str) -> None:
    # What the update returned is already history: the request moves on by itself (a decision
    # seals and delivers, consent calls the manager), so say what was recorded, not a stage.
    out.print(f"{request_id}: recorded {what}; `safeshare status {request_id}` shows where it is now",
              markup=False, highlight=False, soft_wrap=True)


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
    stage: Annotated[str | None, typer.Option(help=f"Only requests at this stage: {', '.join(STAGES)}")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue requests")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Requests as operators see them, each once (search attributes only: no personal data)."""
    if stage is not None:
        check_stage(stage)  # before connecting: a bad filter asks nothing
    rows = await (await _client(Settings.from_env())).list(stage=stage, overdue=True if overdue else None)
    if as_json:
        _show(rows, True)
        return
    _table(("request", "stage", "outcome", "urgency", "from", "to", "tier", "overdue"), [
        (r["request_id"], r["stage"], r["outcome"], r["urgency"], r["disclosing_agency"], r["recipient_agency"],
         str(r["escalation_tier"]), "yes" if r["overdue"] else "")
        for r in rows
    ])


@app.command()
@command
async def consent(
    request_id: str,
    by: Annotated[str, typer.Option("--by", help="Practitioner recording it")],
    given: Annotated[bool, typer.Option("--given")] = False,
    refused: Annotated[bool, typer.Option("--refused")] = False,
    withdrawn: Annotated[bool, typer.Option("--withdrawn")] = False,
) -> None:
    """Record the family's answer to the request for consent."""
    chosen = [name for name, on in (("given", given), ("refused", refused), ("withdrawn", withdrawn)) if on]
    if len(chosen) != 1:
        raise InputError(["status: exactly one of --given, --refused, --withdrawn"])
    action = ConsentAction(status=chosen[0], by=by)
    await (await _client(Settings.from_env())).consent(request_id, action)
    _recorded(request_id, f"consent {chosen[0]}, by {by}")


@app.command()
@command
async def override(
    request_id: str,
    ground: Annotated[str, typer.Option("--ground", help="e.g. would_cause_harmful_delay")],
    reason: Annotated[str, typer.Option("--reason")],
    by: Annotated[str, typer.Option("--by")],
    key: KeyOpt = None,
) -> None:
    """Record a safeguarding override of consent, with its lawful ground and reasons, signed by you."""
    action = OverrideAction(ground=ground, reason=reason, by=by)  # type: ignore[arg-type]
    await (await _client(Settings.from_env())).override(request_id, action, _signing_key(key))
    _recorded(request_id, f"override ({ground}), by {by}")


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
    manager: Annotated[str, typer.Option("--manager", help="You, the deciding manager (directory id)")],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept with the decision record")],
    approve: Annotated[bool, typer.Option("--approve")] = False,
    decline: Annotated[bool, typer.Option("--decline")] = False,
    comment: Annotated[bool, typer.Option("--comment")] = False,
    items: Annotated[str | None, typer.Option("--items", help="Comma-separated item ids")] = None,
    key: KeyOpt = None,
) -> None:
    """Approve (optionally only some items), decline, or comment, with reasons, signed with --key."""
    chosen = [n for n, on in (("approve", approve), ("decline", decline), ("comment", comment)) if on]
    if len(chosen) != 1:
        raise InputError(["decision: exactly one of --approve, --decline, --comment"])
    action = DecisionAction(
        decision=chosen[0],  # type: ignore[arg-type]
        manager=manager, reason=reason,
        items=[i.strip() for i in items.split(",") if i.strip()] if items else None,
    )
    await (await _client(Settings.from_env())).decide(request_id, action, _signing_key(key))
    _recorded(request_id, f"decision ({chosen[0]}), by {manager}")


HoldByOpt = Annotated[str, typer.Option("--by", help="The discloser's DPO or manager placing or releasing it")]


@app.command()
@command
async def hold(request_id: str, by: HoldByOpt, reason: Annotated[str, typer.Option("--reason")]) -> None:
    """Place a legal hold: deletion waits until it is released. Recorded with who placed it and why."""
    await (await _client(Settings.from_env())).hold(request_id, HoldAction(hold=True, reason=reason, by=by))
    out.print(f"{request_id}: legal hold placed by {by}")


@app.command()
@command
async def release(request_id: str, by: HoldByOpt, reason: Annotated[str, typer.Option("--reason")]) -> None:
    """Release a legal hold. Recorded with who released it and why."""
    await (await _client(Settings.from_env())).hold(request_id, HoldAction(hold=False, reason=reason, by=by))
    out.print(f"{request_id}: legal hold released by {by}")


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
    _table(("request", "from", "delivered", "acknowledged", "deleted"), [
        (r["request_id"], r["sender"], str(r["delivered_at"]), str(r["acknowledged_at"] or ""),
         str(r["destroyed_at"] or ""))
        for r in rows
    ])


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
    out.print(Text.assemble((request_id, "bold"), f" from {sender}: signature verified"))
    out.print(f"purpose: {content['purpose']['category']}, basis: {content['lawful_basis']}")
    for item in content["items"]:
        flag = " (historical)" if item.get("historical") else ""
        out.print(f"- [{item['kind']}] {item['category']}{flag}, recorded {item['recorded_on']}:")
        out.print(f"  {item['content']}")
    if content["withheld_identities"]:
        out.print(f"{content['withheld_identities']} third-party identities withheld")


@app.command()
@command
async def ack(
    request_id: str,
    agency: Annotated[str, typer.Option("--agency")],
    key: Annotated[Path, typer.Option("--key", help="The agency's private key file: it signs the receipt")],
) -> None:
    """Acknowledge receipt of a bundle, signed with the recipient agency's key."""
    signer = crypto.SigningKey(crypto.AgencyKeys.load(key).signing)
    await (await _client(Settings.from_env())).acknowledge(request_id, AckAction(agency=agency), signer)
    out.print(f"{request_id}: receipt acknowledged by {agency}")


# --- auditor -----------------------------------------------------------------------------------


@records_app.command("show")
@command
async def records_show(request_id: str, as_json: JsonOpt = False) -> None:
    """One request's full trail: its decision record with content hashes, the reasons for each
    decision (checked against their hashes), every audit entry with its note (override reason,
    challenge text, hold reason) and notifications. For the requester, the deciding chain and the DPO."""
    store = await _store(Settings.from_env())
    try:
        body = await store.record(request_id)
        trail = await store.audit_trail(request_id)
        sent = await store.outbox_for(request_id)
        accepted = await store.accepted_at(request_id)
        notes, destroyed = await _notes(store, request_id)
    finally:
        await store.close()
    if body is None and not trail:
        raise Refused(f"request {request_id}: no record")
    record = DecisionRecord.model_validate_json(body) if body else None
    result = {
        "record": record.model_dump(mode="json") if record else None,
        "ico": export_row(record, accepted) if record and accepted else None,
        "decisions": decision_reasons(record, trail, notes),
        "trail": trail_with_notes(trail, notes),
        "notes_destroyed_at": destroyed.isoformat() if destroyed else None,
        "notifications": [
            {k: r[k] for k in ("kind", "to_contact", "channel", "created_at", "sent_at", "failed_at", "failure")}
            for r in sent
        ],
    }
    if as_json:
        _show(result, True)
        return
    say = functools.partial(out.print, markup=False, highlight=False, soft_wrap=True)  # text is never markup
    gone = f"(destroyed {destroyed:%Y-%m-%d})" if destroyed else "(destroyed)"
    if result["ico"]:
        _show(result["ico"], False)
    if record:
        out.print("content hashes", style="bold")
        for i in record.items_shared:
            say(f"  item {i.id:<20} {i.category} ({i.kind})  sha256 {i.sha256}")
        say(f"  bundle  sha256 {record.bundle_sha256 or '(nothing shared)'}")
    out.print("decisions and reasons", style="bold")
    for d in result["decisions"]:
        say(f"  {d['at']}  {d['by']:<22} {d['decision']} ({d['kind']})  reason_sha256 {d['reason_sha256']}")
        say(f"      reason: {d['reason'] if d['reason'] is not None else gone if notes is None else '(missing)'}")
        if d["reason_matches"] is False:
            say(f"      {REASON_MISMATCH}")
    out.print("audit trail", style="bold")
    if notes is None:
        say(f"  notes (reasons, challenges, hold reasons): {gone}")
    for r in result["trail"]:
        say(f"{r['seq']:>6}  {r['at']}  {r['event']:<26} {r['actor']:<22} {r['data']}")
        say(f"        hash {r['hash']}")
        if r["note"] is not None:
            say(f"        note: {r['note']}")
    out.print("notifications", style="bold")
    for n in result["notifications"]:
        state = "sent" if n["sent_at"] else ("refused: " + str(n["failure"]) if n["failed_at"] else "queued")
        say(f"  {n['created_at']}  {n['kind']:<26} {n['to_contact']:<22} {n['channel']:<8} {state}")


async def _notes(store: Store, request_id: str) -> tuple[dict[str, str] | None, datetime | None]:
    """The request's notes, or None and when they were shredded with its data key."""
    try:
        return await store.notes_for(request_id), None
    except ContentDestroyed as gone:
        return None, gone.destroyed_at
    except NotFound:  # a record without stored content (none was ever accepted): no notes
        return {}, None


@records_app.command("export")
@command
async def records_export(
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, UTC) a request was accepted")],
    end: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD, UTC), included")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of CSV")] = False,
) -> None:
    """Decision records of the requests accepted in a period, with an ICO data-sharing record's fields."""
    # Purpose, lawful basis, condition, consent or override ground, recipient, categories shared,
    # who decided and when, outcome, retention and deletion dates: see clients/_records.py.
    window = export_window(start, end)
    store = await _store(Settings.from_env())
    try:
        rows = await store.records_accepted(*window)
    finally:
        await store.close()
    sys.stdout.write(render([export_row(DecisionRecord.model_validate_json(b), at) for at, b in rows],
                            "json" if as_json else "csv"))


# --- audit and database --------------------------------------------------------------------------


@audit_app.command("verify")
@command
async def audit_verify(
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="The deployment's audit public key (default: keys/audit.pub)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain and check every signed checkpoint; exit 3 at the first bad entry."""
    settings = Settings.from_env()
    key_file = public_key or settings.audit_public_key_file
    text = read_bytes(key_file, "--public-key", limit=1024).decode("utf-8", "replace")
    try:
        key = crypto.check_public_key(text.strip())
    except crypto.CryptoError:  # a private key file is raw bytes, not base64: refused here too
        raise InputError([f"--public-key: {key_file.name} does not hold a base64 Ed25519 public key"]) from None
    store = await _store(settings)
    try:
        report = await store.verify_audit(key)
    finally:
        await store.close()
    summary = {"ok": report.ok, "entries": report.entries, "checkpoints": report.checkpoints,
               "head_seq": report.head_seq, "first_bad_seq": report.first_bad_seq, "problems": report.problems}
    if as_json:
        _show(summary, True)
    elif report.ok:
        out.print(f"audit log verified: {report.entries} entries, {report.checkpoints} signed checkpoints")
    if not report.ok:
        _fail(AUDIT_BROKEN, [f"audit log broken at entry {report.first_bad_seq}", *report.problems])


@audit_app.command("checkpoint")
@command
async def audit_checkpoint() -> None:
    """Sign the chain's head now with the deployment's key (workers also do so periodically)."""
    settings = Settings.from_env()
    store = await open_store(settings, audit_key=crypto.SigningKey.load(settings.audit_key_file))
    try:
        seq = await store.checkpoint(datetime.now(UTC))
    finally:
        await store.close()
    out.print(f"checkpoint signed at entry {seq}" if seq else "audit log empty: nothing to sign")


@db_app.command("upgrade")
@command
async def db_upgrade() -> None:
    """Create or migrate the store's schema to this version (SAFESHARE_DATABASE_URL)."""
    settings = Settings.from_env()
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    with database("store", "SAFESHARE_DATABASE_URL"):
        before, after = await upgrade_database(settings.database_url)
    out.print(f"database schema at {after}" + (f" (was {before or 'empty'})" if before != after else ", up to date"))


# --- keys --------------------------------------------------------------------------------------


@keys_app.command("init")
def keys_init(
    agency: Annotated[str | None, typer.Option("--agency", help="Create an agency's HPKE + signing keys")] = None,
    contact: Annotated[str | None, typer.Option("--contact", help="Create a manager's or practitioner's "
                                                "signing key")] = None,
    suite: Annotated[str, typer.Option("--suite", help="HPKE suite for an agency")] = crypto.DEFAULT_SUITE,
    out_file: Annotated[Path | None, typer.Option("--out", help="Private key file (default: under keys/)")] = None,
    deployment: Annotated[bool, typer.Option("--deployment", help="Create the deployment's store key, codec "
                                             "key ring and codec server token (those absent)")] = False,
) -> None:
    """Create a key pair: the private key in a 0600 file; its directory entry, to fill in, on stdout."""
    settings = Settings.from_env()
    if deployment:
        if agency or contact:
            _fail(2, ["keys init: --deployment takes neither --agency nor --contact"])
        for path in create_deployment_keys(settings):
            err.print(f"written: {path} (mode {path.stat().st_mode & 0o777:o})")
        return
    if (agency is None) == (contact is None):
        _fail(2, ["keys init: exactly one of --agency, --contact or --deployment"])
    if suite not in crypto.SUITES:
        _fail(2, [f"suite: one of {', '.join(crypto.SUITES)}"])
    try:  # the id goes into the directory entry even with --out: checked either way
        default = settings.agency_key_file(agency) if agency else settings.contact_key_file(contact or "")
    except InputError as e:
        _fail(2, e.problems)
    path = out_file or default
    if path.exists():
        _fail(2, [f"out: {path} exists; keys are never overwritten (move it away to replace it)"])
    if agency:
        keys = crypto.AgencyKeys.generate(suite)  # type: ignore[arg-type]
        keys.save(path)
        entry = _agency_entry(agency, keys)
    else:
        key = crypto.SigningKey.generate()
        key.save(path)
        entry = _contact_entry(contact or "", key)
    err.print(f"private key written to {path} (mode 0600); its directory entry, on stdout: fill in each <...>",
              markup=False, highlight=False, soft_wrap=True)
    sys.stdout.write(entry)


def _choices(model: type[BaseModel], field: str) -> str:
    return "<" + " | ".join(get_args(model.model_fields[field].annotation)) + ">"


def _agency_entry(agency_id: str, keys: crypto.AgencyKeys) -> str:
    """A new item of the directory's `agencies:` list, indented to paste there (examples/directory.yaml)."""
    return f"""\
# New agency: fill in each <...>, then add it under `agencies:` (and its contacts under `contacts:`).
  - id: {agency_id}
    name: <the organisation's name>
    kind: {_choices(Agency, "kind")}
    safeguarding_role: <true or false, whether it has a statutory or recognised safeguarding role>
    hpke_suite: {keys.suite}
    hpke_public_key: {json.dumps(keys.hpke_public_b64)}
    signing_public_key: {json.dumps(keys.signing_public_b64)}
    contacts: []
"""


def _contact_entry(contact_id: str, key: crypto.SigningKey) -> str:
    """A new item of an agency's `contacts:` list, indented to paste there."""
    return f"""\
# New contact: fill in each <...>, then add it under its agency's `contacts:`.
      - id: {contact_id}
        role: {_choices(Contact, "role")}
        tier: <managers only, 1 is asked first; delete this line for any other role>
        email: <their e-mail address>
        signing_public_key: {json.dumps(key.public_b64)}
"""


@keys_app.command("rotate")
@command
async def keys_rotate() -> None:
    """Add a new current codec key; re-wrap every request's history key under it. Old keys still decrypt."""
    settings = Settings.from_env()
    ring = crypto.KeyRing.load(settings.codec_ring_file)
    kid = ring.rotate()
    with database("key vault", "SAFESHARE_KEYS_URL"):
        vault = await crypto.HistoryKeys.open(settings.keys_url, ring)
    try:
        moved = await vault.rewrap()
    finally:
        await vault.close()
    out.print(f"codec key {kid} is current; {moved} history keys re-wrapped; keys kept: {', '.join(ring.kids)}")


@keys_app.command("token")
def keys_token() -> None:
    """Print the codec server's operator token (for the Web UI's sign-in and `--codec-auth`)."""
    token_file = Settings.from_env().codec_token_file
    if not token_file.is_file():
        raise InputError([f"codec token: none in this home ({token_file.name}); "
                          "`safeshare keys init --deployment` creates it"])
    sys.stdout.write(crypto.read_secret(token_file).decode().strip() + "\n")


@app.command()
def schema(name: Annotated[str, typer.Argument(help="request")] = "request") -> None:
    """Print the JSON Schema of a request file."""
    if name != "request":
        _fail(2, ["name: 'request' expected"])
    sys.stdout.write(json.dumps(ShareRequest.model_json_schema(), indent=2) + "\n")
