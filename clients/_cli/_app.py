"""The `safeshare` app, its one mapping of failures to exit codes, and the options commands share.

Exit codes: 0 ok, 2 bad input or refused, 3 the audit log does not verify, 1 other."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError
from typer.core import TyperGroup

import crypto
from clients._client import Refused, Unavailable
from clients._files import InputError, describe_validation_error
from schemas import IntakeError
from store import StoreError

from ._output import fail

AUDIT_BROKEN = 3  # exit code: the audit log does not verify
PIPE_CLOSED = 141  # exit code: the reader of our output went away (128 + SIGPIPE, as the shell reports it)


class _Group(TyperGroup):
    """Every command, whatever its kind, ends through the one mapping of failures to exit codes."""

    def invoke(self, ctx: Any) -> Any:
        with _errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, help="Safeshare: safeguarding information sharing."
)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Each kind of failure as its exit code and a line naming what is wrong (settings errors are
    InputErrors). What is not here is a bug: workers/cli.py's main says so in one line."""
    try:
        yield
    except InputError as e:
        fail(2, e.problems)
    except ValidationError as e:
        fail(2, describe_validation_error(e))
    except (IntakeError, Refused, crypto.CryptoError) as e:
        fail(2, [str(e)])
    except (StoreError, Unavailable) as e:
        fail(1, [str(e)])
    except SQLAlchemyError as e:  # the store failing mid-command; never the URL: it may hold a password
        fail(1, [f"store: cannot use the database ({type(e).__name__}); check SAFESHARE_DATABASE_URL"])
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        fail(1, ["Temporal: the request did not answer in time (is a worker running?); "
                 "check with `safeshare status` before trying again"])
    except WorkflowFailureError:  # `submit --wait`; its cause may quote the failure: not repeated
        fail(1, ["Temporal: the request ended without completing (terminated, cancelled or failed); "
                 "an operator sees why in the Web UI"])
    except WorkflowQueryFailedError:  # the worker's reason is not repeated: it is for operators
        fail(1, ["Temporal: the request could not answer now (is a worker running?); try again shortly"])
    except RPCError as e:
        fail(1, [f"Temporal: {e.message} (is the stack running? TEMPORAL_ADDRESS)"])
    except BrokenPipeError:
        # Our reader went away (`safeshare list | head`): nothing more to write, nowhere to say so.
        raise typer.Exit(PIPE_CLOSED) from None
    except OSError as e:  # a file the command writes (a key, the key ring), or a connection dropped
        where = f"file {Path(e.filename).name}" if e.filename else "system"
        fail(1, [f"{where}: {e.strerror or type(e).__name__}"])


def command(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async command, as the synchronous callback typer calls."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
JudgementOpt = Annotated[str | None, typer.Option(
    "--judgement", help="A decision not to share: why disclosing would be more detrimental to the child than "
    "not disclosing (Children Act 2004 s.16LA)")]
KeyOpt = Annotated[
    Path | None, typer.Option("--key", help="Your private signing key file: the workflow refuses unsigned actions")
]


def signing_key(path: Path | None) -> crypto.SigningKey | None:
    return crypto.SigningKey.load(path) if path is not None else None


def one_of(**flags: bool) -> str:
    """The one flag given of a set of alternatives (`--given`, `--refused`, ...), by its name; the
    error names the options themselves."""
    chosen = [name for name, on in flags.items() if on]
    if len(chosen) != 1:
        options = "/".join("--" + name for name in flags)
        raise InputError([f"{options}: exactly one of these options expected"])
    return chosen[0]
