"""The Safeshare service: the one HTTP door for every actor, authenticating each by their own key
and showing each only what their role and agency entitle them to."""

from ._access import RULES, Action, Facts, Principal, Role, Scope, principal_of, reaches, render_table
from ._app import create_app
from ._door import DOOR, Door
from ._limits import RateLimit
from ._server import deployment_door, serve

__all__ = [
    "DOOR",
    "RULES",
    "Action",
    "Door",
    "Facts",
    "Principal",
    "RateLimit",
    "Role",
    "Scope",
    "create_app",
    "deployment_door",
    "principal_of",
    "reaches",
    "render_table",
    "serve",
]
