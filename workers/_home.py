"""The demo home under SAFESHARE_HOME: keys, directory and policy, created on first run only."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import yaml

import crypto
from clients import Settings, read_directory, read_policy
from schemas import Directory, Policy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ensure_demo_home(settings: Settings) -> bool:
    """Write demo keys, directory and policy if absent. Existing files are never overwritten."""
    if settings.directory_file.exists():
        return False
    settings.home.mkdir(parents=True, exist_ok=True)
    if not settings.store_key_file.exists():
        crypto.write_secret(settings.store_key_file, crypto.new_key())
    template = yaml.safe_load((EXAMPLES / "directory.yaml").read_text())
    for agency in template["agencies"]:
        keys = crypto.AgencyKeys.generate()
        keys.save(settings.agency_key_file(agency["id"]))
        agency["hpke_public_key"] = keys.hpke_public_b64
        agency["signing_public_key"] = keys.signing_public_b64
    Directory.model_validate(template)
    shutil.copyfile(EXAMPLES / "policy.yaml", settings.policy_file)
    settings.directory_file.write_text(yaml.safe_dump(template, sort_keys=False))
    return True


def load_home(settings: Settings) -> tuple[Directory, Policy, bytes]:
    return (
        read_directory(settings.directory_file),
        read_policy(settings.policy_file),
        crypto.read_secret(settings.store_key_file),
    )


def agency_keys(settings: Settings):
    @cache
    def load(agency_id: str) -> crypto.AgencyKeys:
        return crypto.AgencyKeys.load(settings.agency_key_file(agency_id))

    return load
