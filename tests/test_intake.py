"""Intake: every rejection names the field, echoes no personal value, exits 2, starts nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from workers.cli import app

from .conftest import Stack, example

CANARY_NAME = "Canary-Name-Qx81"
CANARY_TEXT = "canary-content-Zp42"

REJECTIONS = {
    "unknown_agency": ({"recipient_agency": "no-such-agency"}, "recipient_agency: an agency in the directory"),
    "recipient_without_safeguarding_role": ({"recipient_agency": "westside-leisure"},
                                            "recipient_agency: an agency with a safeguarding role"),
    "special_category_without_condition": (
        {"items": [{"id": "h1", "category": "mental_health", "kind": "fact", "recorded_on": "2026-01-02",
                    "content": CANARY_TEXT}]}, "special_condition:"),
    "consent_basis_without_seeking_consent": (
        {"lawful_basis": "consent", "consent": {"action": "do_not_seek", "ground": "person_cannot_consent",
                                                "reason": "r"}}, "consent.action: 'seek'"),
    "override_without_ground": ({"consent": {"action": "do_not_seek", "reason": CANARY_TEXT}}, "consent.ground:"),
    "override_without_reason": ({"consent": {"action": "do_not_seek", "ground": "person_cannot_consent"}},
                                "consent.reason:"),
    "empty_purpose_statement": ({"purpose": {"category": "early_help", "statement": "   "}}, "purpose.statement"),
    "no_information_items": ({"items": []}, "items:"),
    "unknown_field": ({"favourite_colour": CANARY_TEXT}, "favourite_colour: unknown field"),
    "wrong_type": ({"subject": {"name": CANARY_NAME, "date_of_birth": "not-a-date"}}, "subject.date_of_birth"),
}


async def run_cli(stack: Stack, *args: str) -> tuple[int, str]:
    env = {"SAFESHARE_HOME": str(stack.settings.home),
           "TEMPORAL_ADDRESS": stack.env.client.service_client.config.target_host,
           "SAFESHARE_TASK_QUEUE": stack.client.task_queue}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.output


async def assert_nothing_started(stack: Stack, request_id: str) -> None:
    with pytest.raises(RPCError) as err:
        await stack.env.client.get_workflow_handle(f"share-{request_id}").describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert not await stack.store.has_request(request_id)


@pytest.mark.parametrize("case", sorted(REJECTIONS))
async def test_invalid_request_is_rejected_naming_the_field(stack: Stack, tmp_path: Path, case: str) -> None:
    """Intake rule: a clear error naming the field; no personal value echoed; nothing started."""
    changes, expected = REJECTIONS[case]
    data = example("routine-consent").model_dump(mode="json")
    data["subject"]["name"] = CANARY_NAME
    data.update(changes)
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(data))
    code, output = await run_cli(stack, "submit", str(path))
    assert code == 2, output
    assert expected in output
    assert CANARY_NAME not in output and CANARY_TEXT not in output
    await assert_nothing_started(stack, data["request_id"])


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bad.yaml", f"request_id: x1\nsubject: [{CANARY_NAME}\n", "file: valid YAML expected"),
    ("bad.json", '{"request_id": "x1", "subject": "' + CANARY_NAME, "file: valid JSON expected"),
    ("list.yaml", f"- {CANARY_NAME}\n", "file: a mapping of fields expected"),
])
async def test_malformed_file_is_rejected_without_echoing_it(
    stack: Stack, tmp_path: Path, name: str, text: str, expected: str
) -> None:
    """Bad input gets a clear error and exit code 2, and the parser's snippet is never shown."""
    path = tmp_path / name
    path.write_text(text)
    code, output = await run_cli(stack, "submit", str(path))
    assert code == 2 and expected in output and CANARY_NAME not in output


async def test_valid_request_submits_and_resubmission_returns_it(stack: Stack, tmp_path: Path) -> None:
    """The request id is the idempotency key: the second submit reports the existing request."""
    req = await stack.request("routine-consent")
    path = tmp_path / "request.json"
    path.write_text(req.model_dump_json())
    code, output = await run_cli(stack, "submit", str(path))
    stack.client.started.append(f"share-{req.request_id}")
    assert code == 0 and "submitted" in output
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    code, output = await run_cli(stack, "submit", str(path))
    assert code == 0 and "already submitted" in output


async def test_schema_request_prints_the_json_schema(stack: Stack) -> None:
    code, output = await run_cli(stack, "schema", "request")
    schema = json.loads(output)
    assert code == 0 and "request_id" in schema["required"] and schema["additionalProperties"] is False
