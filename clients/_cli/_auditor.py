"""The auditor's and DPO's commands: decision records (one request's trail, an export for the ICO
record) and the tamper-evident audit log."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import crypto
from clients._client import Refused
from clients._files import InputError, read_bytes
from clients._records import REASON_MISMATCH, export_row, export_window, full_record, render
from clients._settings import Settings
from schemas import DecisionRecord

from . import _resources as resources
from ._app import AUDIT_BROKEN, JsonOpt, app, command
from ._output import fail, out, say, show


class _RecordsGroup(TyperGroup):
    """`safeshare records ID` is short for `safeshare records show ID`."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().resolve_command(ctx, args)


records_app = typer.Typer(
    cls=_RecordsGroup, no_args_is_help=True,
    help="Decision records: one request's full trail (`records ID`), or an export for the DPO.",
)
app.add_typer(records_app, name="records")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
app.add_typer(audit_app, name="audit")


@records_app.command("show")
@command
async def records_show(request_id: str, as_json: JsonOpt = False) -> None:
    """One request's full trail: its decision record with content hashes, the reasons for each
    decision (checked against their hashes), every audit entry with its note (override reason,
    challenge text, hold reason) and notifications. For the requester, the deciding chain and the DPO."""
    async with resources.store(Settings.from_env()) as store:
        result = await full_record(store, request_id)
    if result is None:
        raise Refused(f"request {request_id}: no record")
    record = DecisionRecord.model_validate(result["record"]) if result["record"] else None
    destroyed = datetime.fromisoformat(result["notes_destroyed_at"]) if result["notes_destroyed_at"] else None
    notes_gone = result["notes_destroyed"]
    if as_json:
        show(result, True)
        return
    gone = f"(destroyed {destroyed:%Y-%m-%d})" if destroyed else "(destroyed)"
    if result["ico"]:
        show(result["ico"], False)
    if record:
        out.print("content hashes", style="bold")
        for i in record.items_shared:
            say(f"  item {i.id:<20} {i.category} ({i.kind})  sha256 {i.sha256}")
        say(f"  bundle  sha256 {record.bundle_sha256 or '(nothing shared)'}")
    out.print("decisions and reasons", style="bold")
    for d in result["decisions"]:
        say(f"  {d['at']}  {d['by']:<22} {d['decision']} ({d['kind']})  reason_sha256 {d['reason_sha256']}")
        say(f"      reason: {d['reason'] if d['reason'] is not None else gone if notes_gone else '(missing)'}")
        if d["reason_matches"] is False:
            say(f"      {REASON_MISMATCH}")
    out.print("audit trail", style="bold")
    if notes_gone:
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
    async with resources.store(Settings.from_env()) as store:
        rows = await store.records_accepted(*window)
    sys.stdout.write(render([export_row(DecisionRecord.model_validate_json(r.body), r.accepted_at) for r in rows],
                            "json" if as_json else "csv"))


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
    async with resources.store(settings) as store:
        report = await store.verify_audit(key)
    summary = {"ok": report.ok, "entries": report.entries, "checkpoints": report.checkpoints,
               "head_seq": report.head_seq, "first_bad_seq": report.first_bad_seq, "problems": report.problems}
    if as_json:
        show(summary, True)
    elif report.ok:
        out.print(f"audit log verified: {report.entries} entries, {report.checkpoints} signed checkpoints")
    if not report.ok:
        fail(AUDIT_BROKEN, [f"audit log broken at entry {report.first_bad_seq}", *report.problems])


@audit_app.command("checkpoint")
@command
async def audit_checkpoint() -> None:
    """Sign the chain's head now with the deployment's key (workers also do so periodically)."""
    settings = Settings.from_env()
    async with resources.store(settings, audit_key=crypto.SigningKey.load(settings.audit_key_file)) as store:
        seq = await store.checkpoint(datetime.now(UTC))
    out.print(f"checkpoint signed at entry {seq}" if seq else "audit log empty: nothing to sign")
