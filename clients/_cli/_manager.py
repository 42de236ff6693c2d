"""The discloser's chain: a manager's decision or recall, and a legal hold placed or released by its
DPO or a manager."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clients._settings import Settings
from schemas import DecisionAction, HoldAction, RecallAction

from . import _resources as resources
from ._app import JudgementOpt, KeyOpt, app, command, one_of, signing_key
from ._output import out, recorded

ManagerOpt = Annotated[str, typer.Option("--manager", help="You, a manager of the disclosing agency (directory id)")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why: recorded, and shown to those entitled to the record")]

@app.command()
@command
async def decide(
    request_id: str,
    manager: ManagerOpt,
    reason: ReasonOpt,
    approve: Annotated[bool, typer.Option("--approve")] = False,
    decline: Annotated[bool, typer.Option("--decline")] = False,
    comment: Annotated[bool, typer.Option("--comment")] = False,
    items: Annotated[str | None, typer.Option("--items", help="Comma-separated item ids")] = None,
    judgement: JudgementOpt = None,
    key: KeyOpt = None,
) -> None:
    """Approve (optionally only some items), decline, or comment, with reasons, signed with --key.
    A decline records the duty to share's judgement (s.16LA) with --judgement."""
    decision = one_of(approve=approve, decline=decline, comment=comment)
    action = DecisionAction(
        decision=decision,  # type: ignore[arg-type]
        manager=manager, reason=reason, judgement=judgement,
        items=[i.strip() for i in items.split(",") if i.strip()] if items else None,
    )
    async with resources.client(Settings.from_env()) as client:
        await client.decide(request_id, action, signing_key(key))
    scope = f" of items {', '.join(action.items)}" if action.items else ""
    recorded(request_id, f"decision ({decision}{scope}), by {manager}")


@app.command()
@command
async def recall(
    request_id: str,
    manager: ManagerOpt,
    reason: ReasonOpt,
    key: KeyOpt = None,
) -> None:
    """Take back a shared bundle, signed with --key: out of the recipient's inbox; a recipient who
    had downloaded it is told to destroy every copy. Recorded either way."""
    async with resources.client(Settings.from_env()) as client:
        await client.recall(request_id, RecallAction(manager=manager, reason=reason), signing_key(key))
    recorded(request_id, f"recall of the shared bundle, by {manager}")


HoldByOpt = Annotated[str, typer.Option("--by", help="The discloser's DPO or manager placing or releasing it")]


@app.command()
@command
async def hold(request_id: str, by: HoldByOpt, reason: ReasonOpt, key: KeyOpt = None) -> None:
    """Place a legal hold: deletion waits until it is released. Signed with --key; recorded with who
    placed it and why."""
    await _hold(request_id, hold=True, by=by, reason=reason, key=key)
    out.print(f"{request_id}: legal hold placed by {by}")


@app.command()
@command
async def release(request_id: str, by: HoldByOpt, reason: ReasonOpt, key: KeyOpt = None) -> None:
    """Release a legal hold. Signed with --key; recorded with who released it and why."""
    await _hold(request_id, hold=False, by=by, reason=reason, key=key)
    out.print(f"{request_id}: legal hold released by {by}")


async def _hold(request_id: str, *, hold: bool, by: str, reason: str, key: Path | None) -> None:
    async with resources.client(Settings.from_env()) as client:
        await client.hold(request_id, HoldAction(hold=hold, reason=reason, by=by), signing_key(key))
