"""Safeshare's workflows: the process, deterministic."""

from ._share import ShareRequestWorkflow

__all__ = ["ShareRequestWorkflow"]
