"""The DPO's records: `safeshare records export` and `safeshare records ID`.

Rule protected: golden rule 7 and the ICO data-sharing code — every decision is recorded with
purpose, lawful basis, condition, consent or override ground, recipient, categories shared, who
decided and when, outcome, retention and deletion dates; the export never carries content.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta

from typer.testing import CliRunner

from clients import EXPORT_FIELDS
from clients._cli import app
from schemas import ShareRequest
from workers import CONSENT_GIVEN, DECLINE

from .conftest import Stack
from .test_notifications import personal_data


async def cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = {"SAFESHARE_HOME": str(stack.settings.home)}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def shared_and_declined(stack: Stack) -> tuple[ShareRequest, ShareRequest]:
    """Two routine requests consented to: one shared and acknowledged, one declined by the DSL."""
    shared, declined = await stack.routine("retention"), await stack.request("routine-consent")
    await stack.client.submit(declined)
    await stack.actors.drive(declined, [CONSENT_GIVEN, DECLINE], "retention")
    return shared, declined


async def test_export_has_the_ico_fields_for_each_outcome_and_no_content(stack: Stack) -> None:
    first = (await stack.env.get_current_time()).date().isoformat()
    shared, declined = await shared_and_declined(stack)
    day = (await stack.env.get_current_time()).date().isoformat()
    code, out, err = await cli(stack, "records", "export", "--from", first, "--to", day, "--json")
    assert code == 0, err
    rows = {r["request_id"]: r for r in json.loads(out)}
    assert set(rows) == {shared.request_id, declined.request_id}
    s, d = rows[shared.request_id], rows[declined.request_id]
    assert s["outcome"] == "shared" and d["outcome"] == "not_shared"
    assert s["purpose"] == shared.purpose.category and s["lawful_basis"] == shared.lawful_basis
    assert s["consent_status"] == "given" and s["override_ground"] is None
    assert s["recipient_agency"] == "county-childrens-services"
    assert s["categories_shared"] == ["attendance", "behaviour"] and d["categories_shared"] == []
    assert s["decided_by"] == ["np-dsl (approve)"] and d["decided_by"] == ["np-dsl (decline)"]
    assert s["decided_at"] is not None and s["shared_at"] is not None and s["acknowledged_at"] is not None
    assert s["retention_until"].startswith(str(shared.subject.date_of_birth.year + 26))
    assert s["deleted_at"] is None
    for canary in personal_data(shared):
        assert canary not in out

    code, out, _ = await cli(stack, "records", "export", "--from", first, "--to", day)  # csv by default
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and tuple(table[0]) == EXPORT_FIELDS and len(table) == 2
    assert {r["categories_shared"] for r in table} == {"attendance; behaviour", ""}

    await stack.run_to_end(shared.request_id)  # retention ends: the record shows the deletion
    code, out, _ = await cli(stack, "records", "export", "--from", first, "--to", day, "--json")
    assert [r["deleted_at"] is not None for r in json.loads(out) if r["request_id"] == shared.request_id] == [True]


async def test_export_selects_requests_by_the_day_they_were_accepted(stack: Stack) -> None:
    req = await stack.request("police-inbound-declined")
    await stack.client.submit(req)
    await stack.until(req.request_id, lambda s: s.stage == "manager_review")
    now = await stack.env.get_current_time()
    await stack.store.record_steps(req.request_id, [], record=("{}", now), now=now)  # a record exists
    today = (await stack.env.get_current_time()).date()
    code, out, _ = await cli(stack, "records", "export", "--from", (today + timedelta(days=1)).isoformat(),
                             "--to", (today + timedelta(days=9)).isoformat(), "--json")
    assert code == 0 and json.loads(out) == []


async def test_bad_export_options_are_named_and_exit_2(stack: Stack) -> None:
    for args, option in (
        (["--from", "2026-02-30", "--to", "2026-03-01"], "--from"),
        (["--from", "2026-03-01", "--to", "yesterday"], "--to"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "--to"),
    ):
        code, out, err = await cli(stack, "records", "export", *args)
        assert code == 2 and err.startswith(f"error: {option}:") and out == "", (args, err)


async def test_records_id_shows_the_full_trail_with_hashes_and_notifications(stack: Stack) -> None:
    shared, _ = await shared_and_declined(stack)
    rid = shared.request_id
    code, out, err = await cli(stack, "records", rid, "--json")
    assert code == 0, err
    trail = json.loads(out)
    assert trail["record"]["outcome"] == "shared" and trail["ico"]["decided_by"] == ["np-dsl (approve)"]
    events = [e["event"] for e in trail["trail"]]
    assert events[:2] == ["request_accepted", "consent_requested"] and "bundle_delivered" in events
    assert all(len(e["hash"]) == 64 for e in trail["trail"])
    assert {(n["kind"], n["channel"]) for n in trail["notifications"]} >= {("consent_requested", "email")}
    assert all(n["sent_at"] for n in trail["notifications"])
    for canary in personal_data(shared):
        assert canary not in out
    # No SMTP server configured: development e-mails are files, one per notification.
    assert len(list(stack.settings.mail_dir.glob("*.eml"))) >= len(trail["notifications"])

    code, _, err = await cli(stack, "records", "no-such-request")
    assert code == 2 and "no record" in err
