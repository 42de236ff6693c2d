"""Safeshare's processes: the worker and the one-machine dev stack."""

from ._home import agency_keys, ensure_demo_home, load_home
from ._logging import configure_logging
from ._worker import run_worker, running_worker

__all__ = [
    "agency_keys",
    "configure_logging",
    "ensure_demo_home",
    "load_home",
    "run_worker",
    "running_worker",
]
