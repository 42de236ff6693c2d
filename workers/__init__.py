"""Safeshare's processes: the worker, the one-machine dev stack, and the demo's scripted actors."""

from ._actors import (
    ACKNOWLEDGE,
    APPROVE,
    CONSENT_GIVEN,
    CONSENT_REFUSED,
    DECLINE,
    OVERRIDE,
    REVIEW,
    ROUTINE,
    SCRIPTS,
    Actors,
    Cast,
    Step,
    demo_key,
    in_stage,
)
from ._home import agency_keys, end_retention_at_record, ensure_demo_home, load_home
from ._logging import configure_logging
from ._poll import NotReached, Pace, eventually
from ._worker import RUNNER, channels, run_worker, running_worker

__all__ = [
    "ACKNOWLEDGE",
    "APPROVE",
    "CONSENT_GIVEN",
    "CONSENT_REFUSED",
    "DECLINE",
    "OVERRIDE",
    "REVIEW",
    "ROUTINE",
    "RUNNER",
    "SCRIPTS",
    "Actors",
    "Cast",
    "NotReached",
    "Pace",
    "Step",
    "agency_keys",
    "channels",
    "configure_logging",
    "demo_key",
    "end_retention_at_record",
    "ensure_demo_home",
    "eventually",
    "in_stage",
    "load_home",
    "run_worker",
    "running_worker",
]
