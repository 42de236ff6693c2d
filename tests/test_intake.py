"""Intake: every rejection names the field, echoes no personal value, exits 2, starts nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from workers.cli import app

from .conftest import Stack, example

CANARY_NAME = "Canary-Name-Qx81"
CANARY_TEXT = "canary-content-Zp42"
# The CLI checks dates against the real day of intake.
TODAY = datetime.now(UTC).date()


def _subject(born: date, **more: object) -> dict:
    return {"subject": {"name": CANARY_NAME, "date_of_birth": born.isoformat(), **more}}


def _item(recorded: date) -> dict:
    return {"items": [{"id": "a1", "category": "attendance", "kind": "fact", "recorded_on": recorded.isoformat(),
                       "content": CANARY_TEXT}]}

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
    # Dates that make no sense for a child, against the day of intake.
    "child_born_forty_years_ago": (_subject(TODAY - timedelta(days=40 * 365)),
                                   "subject.date_of_birth: a child's date of birth, under 18 today"),
    "child_born_in_the_future": (_subject(TODAY + timedelta(days=30)),
                                 "subject.date_of_birth: a date not in the future"),
    "adult_born_in_the_nineteenth_century": (_subject(date(1890, 5, 1), age_group="adult"),
                                             "subject.date_of_birth: a date of birth within the last 120 years"),
    "adult_who_is_a_child": (_subject(TODAY - timedelta(days=5 * 365), age_group="adult"),
                             "subject.date_of_birth: an adult's date of birth"),
    "unborn_due_after_a_year": (_subject(TODAY + timedelta(days=365), age_group="unborn"),
                                "subject.date_of_birth: for an unborn child, the expected date of delivery"),
    "unborn_already_born": (_subject(TODAY - timedelta(days=3), age_group="unborn"),
                            "subject.date_of_birth: for an unborn child"),
    "item_recorded_in_the_future": (_item(TODAY + timedelta(days=9)), "items.0.recorded_on: a date not in the future"),
    "item_recorded_before_the_child_was_conceived": (
        {**_subject(TODAY - timedelta(days=3 * 365)), **_item(TODAY - timedelta(days=5 * 365))},
        "items.0.recorded_on: a date after the subject's conception"),
    # A request id is a plaintext key everywhere: never a date, never upper case.
    "request_id_holding_a_date_of_birth": ({"request_id": "forename-surname-2014-07-09"},
                                           "request_id: an opaque reference without a date"),
    "request_id_holding_a_compact_date": ({"request_id": "case-09072014"}, "request_id: an opaque reference"),
    "request_id_in_upper_case": ({"request_id": "Case-ABC-1"}, "request_id: String should match pattern"),
    # The consistent child identifier: a mistyped NHS number is refused, never echoed.
    "nhs_number_with_a_wrong_check_digit": (_subject(TODAY - timedelta(days=3 * 365), nhs_number="9434765918"),
                                            "subject.nhs_number: an NHS number: 10 digits"),
    # Art. 6(1)(ea) is not for a public authority's public tasks; the school is one.
    "recognised_legitimate_interest_by_a_public_authority": (
        {"lawful_basis": "recognised_legitimate_interest"},
        "lawful_basis: a basis other than recognised_legitimate_interest: northfield-primary is a public authority"),
    "agreement_ref_holding_a_line_break": ({"agreement_ref": f"ISA\n{CANARY_TEXT}"},
                                           "agreement_ref: String should match pattern"),
}


def as_teacher(stack: Stack) -> list[str]:
    """The requester's signing key option: a submission is signed by its requester."""
    return ["--key", str(stack.settings.contact_key_file("np-teacher"))]


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
    code, output = await run_cli(stack, "submit", str(path), *as_teacher(stack))
    assert code == 2, output
    assert expected in output
    assert CANARY_NAME not in output and CANARY_TEXT not in output
    nhs_number = data["subject"].get("nhs_number") or CANARY_NAME
    for value in (data["subject"]["date_of_birth"], nhs_number, *(i["recorded_on"] for i in data["items"])):
        assert str(value) not in output  # a date of birth is personal data: never echoed
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
    code, output = await run_cli(stack, "submit", str(path), *as_teacher(stack))
    assert code == 2 and expected in output and CANARY_NAME not in output


async def test_valid_request_submits_and_resubmission_returns_it(stack: Stack, tmp_path: Path) -> None:
    """The request id is the idempotency key: the second submit reports the existing request."""
    req = example("routine-consent")  # dated against the real day, which the CLI checks
    path = tmp_path / "request.json"
    path.write_text(req.model_dump_json())
    code, output = await run_cli(stack, "submit", str(path), *as_teacher(stack))
    stack.client.started.append(f"share-{req.request_id}")
    assert code == 0 and "submitted" in output
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    code, output = await run_cli(stack, "submit", str(path), *as_teacher(stack))
    assert code == 0 and "already submitted" in output


async def test_schema_request_prints_the_json_schema(stack: Stack) -> None:
    code, output = await run_cli(stack, "schema", "request")
    schema = json.loads(output)
    assert code == 0 and "request_id" in schema["required"] and schema["additionalProperties"] is False


async def test_a_request_id_reused_with_other_content_is_a_conflict_and_changes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """Idempotency: a request id reused with another body is refused (exit 2, naming request_id);
    the request already running keeps its content, and nothing else starts."""
    req = example("routine-consent")
    path = tmp_path / "request.json"
    path.write_text(req.model_dump_json())
    assert (await run_cli(stack, "submit", str(path), *as_teacher(stack)))[0] == 0
    stack.client.started.append(f"share-{req.request_id}")
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    history = await stack.client.handle(req.request_id).fetch_history()

    changed = req.model_dump(mode="json")
    changed["items"][0]["content"] = CANARY_TEXT
    changed["urgency"] = "urgent"
    path.write_text(json.dumps(changed))
    code, output = await run_cli(stack, "submit", str(path), *as_teacher(stack))
    assert code == 2, output
    assert "request_id: already used by a request with different content" in output
    assert CANARY_TEXT not in output
    # Nothing changed: the same run, no new event, the stored content still the original.
    after = await stack.client.handle(req.request_id).fetch_history()
    assert len(after.events) == len(history.events)
    assert (await stack.client.status(req.request_id)).urgency == "routine"


async def test_a_closed_requests_id_is_never_reused(stack: Stack) -> None:
    """A request id names one request forever: once its run has closed (here, ended by an operator),
    submitting under it again is a conflict, never a new request or "already submitted"."""
    from clients import Conflict

    req = await stack.request("routine-consent")
    await stack.client.submit(req)
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    await stack.client.handle(req.request_id).terminate("test: closed")
    with pytest.raises(Conflict, match="request_id: already used by a closed request"):
        await stack.client.submit(req)


@pytest.mark.parametrize(("age_group", "born"), [
    ("child", TODAY - timedelta(days=17 * 365)),
    ("child", TODAY),
    ("unborn", TODAY + timedelta(days=200)),
    ("adult", TODAY - timedelta(days=40 * 365)),
    ("adult", date(TODAY.year - 110, 1, 1)),
])
def test_plausible_subjects_are_accepted_at_intake(age_group: str, born: date) -> None:
    """An unborn child on a protection plan and an adult whose circumstances bear on a child are
    real subjects; the age group says which, and the date of birth must fit it."""
    data = example("routine-consent").model_dump(mode="json")
    data["subject"].update(age_group=age_group, date_of_birth=born.isoformat())
    data["items"][0]["recorded_on"] = TODAY.isoformat()
    from schemas import ShareRequest

    assert ShareRequest.model_validate(data).at_intake(TODAY).subject.age_group == age_group


def test_date_checks_wait_for_intake_so_a_request_never_goes_stale() -> None:
    """A request validated again years later (a workflow replaying its input) still validates:
    dates are checked against the day of intake only."""
    req = example("routine-consent")
    ten_years_on = TODAY + timedelta(days=3660)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        req.at_intake(ten_years_on)  # the child is now an adult
    assert type(req).model_validate(req.model_dump()) == req


async def test_an_adult_subject_is_kept_for_the_policy_minimum_not_deleted_at_once(stack: Stack) -> None:
    """The fault found: a subject whose retention birthday had passed was deleted seconds after
    the acknowledgement. Now retention lasts at least the policy minimum (6 years) after intake."""
    now = await stack.env.get_current_time()
    req = await stack.request("routine-consent")
    adult = req.subject.model_copy(update={"age_group": "adult",
                                           "date_of_birth": now.date() - timedelta(days=40 * 365)})
    req = req.model_copy(update={"subject": adult})
    await stack.client.submit(req)
    await stack.until(req.request_id, lambda s: s.stage == "consent")
    status = await stack.client.status(req.request_id)
    assert status.retention_until is not None
    assert status.retention_until >= now.replace(year=now.year + 6) - timedelta(days=1)
    assert status.retention_until < now.replace(year=now.year + 8)  # the minimum, not the birthday rule
