"""Safeshare's processes: the worker and the one-machine dev stack."""

from ._home import agency_keys, end_retention_at_record, ensure_demo_home, load_home
from ._logging import configure_logging
from ._worker import RUNNER, channels, run_worker, running_worker

__all__ = [
    "RUNNER",
    "agency_keys",
    "channels",
    "configure_logging",
    "end_retention_at_record",
    "ensure_demo_home",
    "load_home",
    "run_worker",
    "running_worker",
]
