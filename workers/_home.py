"""The demo home under SAFESHARE_HOME: keys, directory and policy, created on first run only."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import yaml

import crypto
from clients import Settings, create_deployment_keys, read_directory, read_policy
from schemas import Directory, Policy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"




def ensure_demo_home(settings: Settings) -> bool:
    """Write demo keys, directory and policy if absent. Existing files are never overwritten."""
    settings.home.mkdir(parents=True, exist_ok=True)
    create_deployment_keys(settings)
    if settings.directory_file.exists():
        return False
    template = yaml.safe_load((EXAMPLES / "directory.yaml").read_text())
    for agency in template["agencies"]:
        keys = crypto.AgencyKeys.generate(agency.get("hpke_suite", "X25519"))
        keys.save(settings.agency_key_file(agency["id"]))
        agency["hpke_public_key"] = keys.hpke_public_b64
        agency["signing_public_key"] = keys.signing_public_b64
        # Every person signs their service tokens (and managers their decisions, practitioners
        # their overrides); the agency's own system signs with the agency's signing key.
        for contact in agency["contacts"]:
            contact["signing_public_key"] = _person_key(settings, contact["id"])
    for operator in template.get("operators", []):
        operator["signing_public_key"] = _person_key(settings, operator["id"])
    Directory.model_validate(template)
    shutil.copyfile(EXAMPLES / "policy.yaml", settings.policy_file)
    settings.directory_file.write_text(yaml.safe_dump(template, sort_keys=False))
    return True


def _person_key(settings: Settings, contact_id: str) -> str:
    key = crypto.SigningKey.generate()
    key.save(settings.contact_key_file(contact_id))
    return key.public_b64


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


def end_retention_at_record(settings: Settings) -> None:
    """Rewrite the home's policy so that retention has passed for any child over one, with no
    minimum after intake: deletion follows the record at once. For a real server, which cannot
    skip years: the canary and crash tests and the benchmarks take requests all the way to
    deletion with it."""
    policy = yaml.safe_load(settings.policy_file.read_text())
    policy["retention"]["child_safeguarding"] = {"until_birthday": 1, "looked_after_until_birthday": 1,
                                                 "minimum_years": 0, "disposal": "on_date"}
    settings.policy_file.write_text(yaml.safe_dump(policy))
