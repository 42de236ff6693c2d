"""The commands of whoever deploys Safeshare and holds its keys: the request file's schema, the
store's database schema, key pairs for the directory, the codec key ring and token."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, get_args

import typer
from pydantic import BaseModel

import crypto
from clients._client import create_deployment_keys, database
from clients._files import InputError
from clients._settings import Settings
from schemas import Agency, Contact, ShareRequest
from store import upgrade_database

from . import _resources as resources
from ._app import app, command
from ._output import err, fail, out

db_app = typer.Typer(no_args_is_help=True, help="The store's database schema.")
app.add_typer(db_app, name="db")
keys_app = typer.Typer(no_args_is_help=True, help="Key pairs, the codec key ring, the codec server token.")
app.add_typer(keys_app, name="keys")


@app.command()
def schema(name: Annotated[str, typer.Argument(help="request")] = "request") -> None:
    """Print the JSON Schema of a request file."""
    if name != "request":
        fail(2, ["name: 'request' expected"])
    sys.stdout.write(json.dumps(ShareRequest.model_json_schema(), indent=2) + "\n")


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
            fail(2, ["keys init: --deployment takes neither --agency nor --contact"])
        for path in create_deployment_keys(settings):
            err.print(f"written: {path} (mode {path.stat().st_mode & 0o777:o})")
        return
    if (agency is None) == (contact is None):
        fail(2, ["keys init: exactly one of --agency, --contact or --deployment"])
    if suite not in crypto.SUITES:
        fail(2, [f"suite: one of {', '.join(crypto.SUITES)}"])
    # The id goes into the directory entry even with --out: checked either way.
    default = settings.agency_key_file(agency) if agency else settings.contact_key_file(contact or "")
    path = out_file or default
    if path.exists():
        fail(2, [f"out: {path} exists; keys are never overwritten (move it away to replace it)"])
    if agency:
        keys = crypto.AgencyKeys.generate(suite)  # type: ignore[arg-type]
        keys.save(path)
        entry = _agency_entry(agency, keys)
    else:
        key = crypto.SigningKey.generate()
        key.save(path)
        entry = _contact_entry(contact or "", key)
    err.print(f"private key written to {path} (mode 0600); its directory entry, on stdout: fill in each <...>",
              soft_wrap=True)
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
    async with resources.vault(settings, ring) as vault:
        moved = await vault.rewrap()
    out.print(f"codec key {kid} is current; {moved} history keys re-wrapped; keys kept: {', '.join(ring.kids)}")


@keys_app.command("token")
def keys_token() -> None:
    """Print the codec server's operator token (for the Web UI's sign-in and `--codec-auth`)."""
    token_file = Settings.from_env().codec_token_file
    if not token_file.is_file():
        raise InputError([f"codec token: none in this home ({token_file.name}); "
                          "`safeshare keys init --deployment` creates it"])
    sys.stdout.write(crypto.read_secret(token_file).decode().strip() + "\n")
