"""Safeshare's activities: every side effect of a share request."""

from ._share import WITHHELD, ShareActivities, bundle_content

__all__ = ["WITHHELD", "ShareActivities", "bundle_content"]
