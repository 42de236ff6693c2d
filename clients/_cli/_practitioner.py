"""The practitioner's commands: submit a request, follow it, record the family's answer, an
override of consent, the subject's challenge or a withdrawal; find the agency's requests about one child."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import crypto
from clients._client import check_stage
from clients._files import InputError, read_directory, read_request
from clients._settings import Settings
from schemas import (
    NHS_NUMBER_EXPECTED,
    STAGES,
    ChallengeAction,
    ConsentAction,
    OverrideAction,
    Rag,
    RateAction,
    WithdrawAction,
    nhs_number_digits,
)

from . import _resources as resources
from ._app import JsonOpt, JudgementOpt, KeyOpt, app, command, one_of, signing_key
from ._output import out, recorded, show, table


@app.command()
@command
async def submit(
    file: Path,
    key: KeyOpt = None,
    agency_key: Annotated[Path | None, typer.Option(
        "--agency-key", help="Instead of --key: the requesting agency's own key file, its system signing")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the request reaches retention")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate a request file (YAML or JSON), sign it as the requester (--key) or their agency
    (--agency-key), and start its workflow. Nothing starts if it is invalid or unsigned."""
    settings = Settings.from_env()
    request = read_request(file)
    if key is not None and agency_key is not None:
        raise InputError(["--key/--agency-key: at most one of these options expected"])
    signer, by = signing_key(key), None
    if agency_key is not None:
        signer = crypto.SigningKey(crypto.AgencyKeys.load(agency_key).signing)
        by = request.disclosing_agency if request.direction == "outbound" else request.recipient_agency
    async with resources.client(settings) as client:
        result = await client.submit(request, signer, by=by)
        word = "already submitted" if result.already_existed else "submitted"
        if not as_json:
            out.print(f"{result.request_id}: {word} (workflow {result.workflow_id})")
        if wait:
            show(await client.wait(result.request_id), as_json)
        elif as_json:
            show({"request_id": result.request_id, "workflow_id": result.workflow_id,
                  "already_existed": result.already_existed}, True)


@app.command()
@command
async def status(request_id: str, as_json: JsonOpt = False) -> None:
    """Stage, what is awaited from whom, and by when."""
    async with resources.client(Settings.from_env()) as client:
        show(await client.status(request_id), as_json)


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
    async with resources.client(Settings.from_env()) as client:
        rows = await client.list(stage=stage, overdue=True if overdue else None)
    if as_json:
        show(rows, True)
        return
    table(("request", "stage", "outcome", "urgency", "from", "to", "tier", "overdue"), [
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
    key: KeyOpt = None,
) -> None:
    """Record the family's answer to the request for consent, signed by you with --key."""
    answer = one_of(given=given, refused=refused, withdrawn=withdrawn)
    action = ConsentAction(status=answer, by=by)  # type: ignore[arg-type]
    async with resources.client(Settings.from_env()) as client:
        await client.consent(request_id, action, signing_key(key))
    recorded(request_id, f"consent {answer}, by {by}")


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
    async with resources.client(Settings.from_env()) as client:
        await client.override(request_id, action, signing_key(key))
    recorded(request_id, f"override ({ground}), by {by}")


@app.command()
@command
async def withdraw(
    request_id: str,
    by: Annotated[str, typer.Option("--by", help="You, a practitioner of the disclosing agency")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is not to be shared: kept with the record")],
    judgement: JudgementOpt = None,
    key: KeyOpt = None,
) -> None:
    """Withdraw the request before its decision: a decision not to share, with reasons and the duty
    to share's judgement (s.16LA), signed by you. Nothing is sent."""
    action = WithdrawAction(by=by, reason=reason, judgement=judgement)
    async with resources.client(Settings.from_env()) as client:
        await client.withdraw(request_id, action, signing_key(key))
    recorded(request_id, f"withdrawal, by {by}")


@app.command()
@command
async def challenge(
    request_id: str, by: Annotated[str, typer.Option("--by")], text: Annotated[str, typer.Option("--text")],
    key: KeyOpt = None,
) -> None:
    """Record the subject's challenge, signed by you with --key; the discloser's manager and DPO are notified."""
    async with resources.client(Settings.from_env()) as client:
        await client.challenge(request_id, ChallengeAction(by=by, text=text), signing_key(key))
    out.print(f"{request_id}: challenge recorded")


@app.command()
@command
async def rate(
    request_id: str, rag: Annotated[Rag, typer.Option("--rag", help="The new RAG rating: red, amber or green")],
    by: Annotated[str, typer.Option("--by")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why the rating changes (required)")] = None,
    key: KeyOpt = None,
) -> None:
    """Change the front door's RAG rating, with a reason, signed by you with --key; a manager's
    wait is re-timed to it."""
    async with resources.client(Settings.from_env()) as client:
        status = await client.rate(request_id, RateAction(by=by, rag=rag, reason=reason), signing_key(key))
    due = status.awaiting.deadline if status.awaiting else None
    out.print(f"{request_id}: rated {rag}" + (f"; what is awaited is due {due:%Y-%m-%d %H:%M} UTC" if due else ""))


@app.command("find-child")
@command
async def find_child(
    agency: Annotated[str, typer.Option("--agency", help="Your agency (directory id)")],
    nhs_number: Annotated[str, typer.Option(
        "--nhs-number", prompt="NHS number", hide_input=True,
        help="The child's NHS number; asked for if not given, so that it stays out of shell history")],
    as_json: JsonOpt = False,
) -> None:
    """Your agency's requests about one child, sent or received, found by the child's NHS number:
    repeated concerns about one child, seen together. The number is never printed or stored."""
    digits = nhs_number_digits(nhs_number)
    if digits is None:
        raise InputError([f"--nhs-number: {NHS_NUMBER_EXPECTED}"])
    settings = Settings.from_env()
    if read_directory(settings.directory_file).agency(agency) is None:
        raise InputError(["--agency: an agency in the directory"])
    key = crypto.child_index_key(crypto.read_secret(settings.child_index_key_file), digits)
    async with resources.store(settings) as store:
        found = await store.requests_about(key, agency)
    rows = [{"request_id": r.request_id, "accepted_at": r.accepted_at.isoformat(),
             "disclosing_agency": r.disclosing_agency, "recipient_agency": r.recipient_agency} for r in found]
    if as_json:
        show(rows, True)
        return
    table(("request", "accepted", "from", "to"),
          [(r["request_id"], r["accepted_at"], r["disclosing_agency"], r["recipient_agency"]) for r in rows])
