"""The recipient agency's commands: its inbox of sealed bundles, opening one, acknowledging receipt."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

import crypto
from clients._files import read_directory
from clients._inbox import read_delivery
from clients._settings import Settings
from schemas import AckAction

from . import _resources as resources
from ._app import JsonOpt, app, command
from ._output import out, show, table

inbox_app = typer.Typer(no_args_is_help=True, help="Sealed bundles delivered to an agency.")
app.add_typer(inbox_app, name="inbox")
AgencyOpt = Annotated[str, typer.Option("--agency")]


@inbox_app.command("list")
@command
async def inbox_list(agency: AgencyOpt, as_json: JsonOpt = False) -> None:
    """Bundles delivered to an agency."""
    async with resources.store(Settings.from_env()) as store:
        rows = await store.inbox_for(agency)
    if as_json:
        show([dataclasses.asdict(r) for r in rows], True)
        return
    table(("request", "from", "delivered", "downloaded", "acknowledged", "recalled", "deleted"), [
        (r.request_id, r.sender, str(r.delivered_at), str(r.downloaded_at or ""), str(r.acknowledged_at or ""),
         str(r.recalled_at or ""), str(r.destroyed_at or ""))
        for r in rows
    ])


@inbox_app.command("open")
@command
async def inbox_open(
    request_id: str,
    agency: AgencyOpt,
    key: Annotated[Path, typer.Option("--key", help="The agency's private key file")],
    as_json: JsonOpt = False,
) -> None:
    """Verify the sender's signature and open a bundle with the agency's private key."""
    settings = Settings.from_env()
    directory = read_directory(settings.directory_file)
    keys = crypto.AgencyKeys.load(key)
    async with resources.store(settings) as store:
        sender, content = await read_delivery(store, directory, request_id, agency, keys)
    if as_json:
        show(content, True)
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
    agency: AgencyOpt,
    key: Annotated[Path, typer.Option("--key", help="The agency's private key file: it signs the receipt")],
) -> None:
    """Acknowledge receipt of a bundle, signed with the recipient agency's key."""
    signer = crypto.SigningKey(crypto.AgencyKeys.load(key).signing)
    async with resources.client(Settings.from_env()) as client:
        await client.acknowledge(request_id, AckAction(agency=agency), signer)
    out.print(f"{request_id}: receipt acknowledged by {agency}")
