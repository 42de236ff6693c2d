"""The `safeshare` command line: a module per actor of README's walk-through. A command gets what
it opens from `_resources` and ends through `_app`'s one mapping of failures to exit codes."""

# Imported for their commands: the order they are imported in is the order `--help` lists them.
# isort: off
from . import _practitioner, _manager, _recipient, _auditor, _deployment  # noqa: F401
# isort: on
from ._app import AUDIT_BROKEN, PIPE_CLOSED, app, command

__all__ = ["AUDIT_BROKEN", "PIPE_CLOSED", "app", "command"]
