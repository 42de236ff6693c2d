"""Working-hours deadlines (issue 16): waits counted in a partnership's working time, England's
bank holidays and local closure days off; the escalation timer fires at the working moment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from clients import Refused, Settings
from clients._cli import app
from schemas import Policy, RateAction, WorkingCalendar, WorkingHours, add_working_hours
from workers import ROUTINE

from .conftest import Stack, open_stack
from .test_reasons import records, unique

LONDON = ZoneInfo("Europe/London")
FOUR_HOURS = timedelta(hours=4)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), LONDON).astimezone(UTC)


# --- the pure function -------------------------------------------------------------------------

def test_a_wait_within_one_working_day_ends_the_same_day() -> None:
    """Working time inside the day is counted as it passes."""
    cal = WorkingCalendar()
    tuesday = date(2027, 3, 2)
    assert add_working_hours(_at(tuesday, 10), FOUR_HOURS, cal) == _at(tuesday, 14)
    assert add_working_hours(_at(tuesday, 13), FOUR_HOURS, cal) == _at(tuesday, 17)


def test_a_wait_begun_on_friday_afternoon_runs_on_after_the_weekend() -> None:
    """Saturday and Sunday do not count: Friday 16:00 + 4 working hours is Monday 12:00."""
    friday = date(2027, 3, 5)
    assert add_working_hours(_at(friday, 16), FOUR_HOURS, WorkingCalendar()) == _at(friday + timedelta(3), 12)


def test_bank_holidays_of_england_are_days_off() -> None:
    """The policy's calendar takes England's bank holidays from the `holidays` package: the Friday
    before the late May bank holiday + 4 working hours ends on Tuesday, not Monday."""
    friday = date(2027, 5, 28)  # Monday 31 May 2027 is the spring bank holiday
    cal = WorkingHours().calendar(date(2027, 1, 1))
    assert date(2027, 5, 31) in cal.days_off and date(2027, 12, 27) in cal.days_off  # a substitute day too
    assert add_working_hours(_at(friday, 16), FOUR_HOURS, cal) == _at(friday + timedelta(4), 12)
    # Christmas Eve 2027 is a Friday; Christmas and Boxing Day fall at the weekend, substituted.
    assert add_working_hours(_at(date(2027, 12, 24), 16), FOUR_HOURS, cal) == _at(date(2027, 12, 29), 12)


def test_local_closure_days_are_days_off() -> None:
    """A closure day configured in the policy (e.g. a training day) does not count."""
    wednesday = date(2027, 3, 3)
    cal = WorkingHours(closure_days=[wednesday], bank_holidays="none").calendar(date(2027, 1, 1))
    assert add_working_hours(_at(wednesday - timedelta(1), 15), FOUR_HOURS, cal) == _at(wednesday + timedelta(1), 11)


def test_a_wait_begun_out_of_hours_counts_from_the_next_opening() -> None:
    """At night or at the weekend, the clock starts at the next working day's opening."""
    cal = WorkingCalendar(opens=time(8, 30), closes=time(16, 30))
    tuesday, saturday = date(2027, 3, 2), date(2027, 3, 6)
    assert add_working_hours(_at(tuesday, 22), FOUR_HOURS, cal) == _at(tuesday + timedelta(1), 12, 30)
    assert add_working_hours(_at(tuesday, 6), FOUR_HOURS, cal) == _at(tuesday, 12, 30)
    assert add_working_hours(_at(saturday, 11), timedelta(hours=9), cal) == _at(saturday + timedelta(3), 9, 30)


def test_working_hours_follow_local_time_across_the_clock_change() -> None:
    """Hours are the partnership's local hours: after the clocks go forward, 09:00 is 08:00 UTC."""
    friday = date(2027, 3, 26)  # the clocks go forward on Sunday 28 March 2027
    assert add_working_hours(_at(friday, 16), FOUR_HOURS, WorkingCalendar()) == datetime(2027, 3, 29, 11, tzinfo=UTC)


def test_a_calendar_that_cannot_work_is_refused_naming_the_field() -> None:
    """Bad configuration: a clear error naming the field and what is expected."""
    for bad, field in (({"days": []}, "days"), ({"opens": "17:00", "closes": "09:00"}, "closes"),
                       ({"timezone": "Mars/Olympus"}, "timezone"), ({"bank_holidays": "narnia"}, "bank_holidays")):
        with pytest.raises(ValidationError) as err:
            WorkingHours.model_validate(bad)
        assert field in str(err.value)


def test_a_policy_gives_every_rag_rating_a_timescale_or_none() -> None:
    """A rating without a timescale would silently fall back to the urgency's wait: refused."""
    stages = {u: {"consent_wait": "P1D", "manager_wait": "P1D", "receipt_wait": "P1D"}
              for u in ("emergency", "urgent", "routine")}
    assert Policy.model_validate({"stages": stages, "rag": RAG}).rag == RAG
    with pytest.raises(ValidationError, match="rag: a timescale for each rating"):
        Policy.model_validate({"stages": stages, "rag": {"red": "PT4H"}})


# --- the escalation timer on the time-skipping server -------------------------------------------

@pytest.fixture
async def working_stack(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[tuple[Stack, date]]:
    """The demo home, with routine waits counted in working hours (each manager tier has 4), and
    the Friday before the server clock's next bank-holiday Monday."""
    friday, closure = _next_long_weekend((await env.get_current_time()).astimezone(LONDON).date())
    policy = yaml.safe_load(settings.policy_file.read_text())
    policy["stages"]["routine"].update(working_hours=True, manager_wait="PT4H")
    policy["working_hours"] = {"closure_days": closure}
    Policy.model_validate(policy)
    settings.policy_file.write_text(yaml.safe_dump(policy))
    async with open_stack(env, settings) as s:
        yield s, friday


def _next_long_weekend(after: date) -> tuple[date, list[date]]:
    """The Friday before the next bank-holiday Monday whose Friday is a working day (not Easter),
    and the closure days the policy needs for it: none, unless earlier tests moved the server's
    clock past the years the `holidays` package knows (2100), when a closure day stands in."""
    off = set(holidays.country_holidays("GB", subdiv="ENG", years=range(after.year, after.year + 2)))
    fridays = [d - timedelta(3) for d in off if d.weekday() == 0 and d - timedelta(3) not in off
               and d - timedelta(3) > after + timedelta(1)]
    if fridays:
        return min(fridays), []
    soonest = after + timedelta(2)
    friday = soonest + timedelta((4 - soonest.weekday()) % 7)
    return friday, [friday + timedelta(3)]


async def test_manager_escalation_in_working_hours_waits_over_the_weekend_and_bank_holiday(
    working_stack: tuple[Stack, date],
) -> None:
    """Issue 16: submitted at 16:00 on the Friday before a bank-holiday Monday, 4 working hours for
    the first manager end at 12:00 on Tuesday: not escalated a minute before, escalated just after."""
    stack, friday = working_stack
    now = await stack.env.get_current_time()
    await stack.env.sleep(_at(friday, 16) - now)
    req = await stack.request("routine-consent", consent={"action": "seek"})
    await stack.client.submit(req)
    status = await stack.actors.drive(req, ROUTINE, "manager_review")
    asked = await stack.env.get_current_time()
    assert status.escalation_tier == 1 and status.awaiting is not None and status.awaiting.deadline is not None
    tuesday = friday + timedelta(4)
    deadline = status.awaiting.deadline
    assert _at(tuesday, 12) <= deadline < _at(tuesday, 12) + (asked - _at(friday, 16)) + timedelta(seconds=1)
    await stack.env.sleep(_at(tuesday, 11, 59) - await stack.env.get_current_time())
    status = await stack.client.status(req.request_id)
    assert status.escalation_tier == 1 and status.awaiting.from_whom == ["np-dsl"]
    await stack.env.sleep(deadline + timedelta(minutes=2) - await stack.env.get_current_time())
    status = await stack.until(req.request_id, lambda s: s.escalation_tier == 2)
    assert status.awaiting.from_whom == ["np-head"] and not status.overdue
    # Tier 2's own 4 working hours start at the escalation: Tuesday 12:00 to 16:00.
    assert _at(tuesday, 16) <= status.awaiting.deadline < _at(tuesday, 16, 5)


# --- the front door's RAG rating -----------------------------------------------------------------

RAG = {"red": timedelta(hours=4), "amber": timedelta(hours=24), "green": timedelta(hours=72)}


@pytest.fixture
async def rated_stack(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Stack]:
    """The demo home with the front door's timescales: red 4 working hours, amber 24, green 72."""
    policy = yaml.safe_load(settings.policy_file.read_text())
    policy["rag"] = {"red": "PT4H", "amber": "PT24H", "green": "PT72H"}
    settings.policy_file.write_text(yaml.safe_dump(policy))
    async with open_stack(env, settings) as s:
        yield s


async def test_a_change_of_rag_rating_needs_a_reason_is_recorded_and_retimes_the_managers_wait(
    rated_stack: Stack,
) -> None:
    """Issue 16: a rated request's manager decides within the rating's timescale in working hours;
    a change of rating without a reason is refused naming the field, and one with it is recorded
    (who, why) and re-times the wait under way, from when the manager was asked."""
    stack = rated_stack
    before = await stack.env.get_current_time()
    cal = WorkingHours().calendar(before.date())
    req = await stack.request("routine-consent", consent={"action": "seek"}, rag="green")
    rid = req.request_id
    await stack.client.submit(req)
    status = await stack.actors.drive(req, ROUTINE, "manager_review")
    after = await stack.env.get_current_time()
    assert status.rag == "green" and status.awaiting is not None and status.awaiting.deadline is not None
    assert add_working_hours(before, RAG["green"], cal) <= status.awaiting.deadline
    assert status.awaiting.deadline <= add_working_hours(after, RAG["green"], cal)

    env = {"SAFESHARE_HOME": str(stack.settings.home), "SAFESHARE_TASK_QUEUE": stack.client.task_queue,
           "TEMPORAL_ADDRESS": stack.env.client.service_client.config.target_host}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["rate", rid, "--rag", "red", "--by", "np-teacher"],
                                     env=env)
    assert result.exit_code == 2 and "reason: why the RAG rating changes is required" in result.stderr, result.output
    with pytest.raises(Refused, match="reason: why the RAG rating changes is required"):
        await stack.client.rate(rid, RateAction(by="np-teacher", rag="red"))
    with pytest.raises(Refused, match="by: rp-officer is not a contact of northfield-primary"):
        await stack.client.rate(rid, RateAction(by="rp-officer", rag="red", reason="Outsider"))
    with pytest.raises(Refused, match=r"rag: .* already rated green"):
        await stack.client.rate(rid, RateAction(by="np-teacher", rag="green", reason="Same again"))
    with pytest.raises(Refused, match="rating change: unsigned"):
        await stack.client.rate(rid, RateAction(by="np-teacher", rag="red", reason="Unsigned"), key=None)
    reason = unique("A disclosure of injury today")
    assert (await stack.client.rate(rid, RateAction(by="np-teacher", rag="red", reason=reason))).rag == "red"
    red_by = add_working_hours(after, RAG["red"], cal)
    status = await stack.until(rid, lambda s: s.awaiting is not None and s.awaiting.deadline <= red_by)
    assert status.awaiting.deadline >= add_working_hours(before, RAG["red"], cal) and status.escalation_tier == 1
    view, text = await records(stack, rid)
    changes = [(e["actor"], e["note"], json.loads(e["data"])) for e in view["trail"] if e["event"] == "rating_changed"]
    assert [(actor, note, data["from"], data["to"]) for actor, note, data in changes] == [
        ("np-teacher", reason, "green", "red")]
    assert changes[0][2]["signature"]  # signed by the practitioner: the audit chain holds it
    assert f"note: {reason}" in text
    # The red timescale is the one kept: the first manager's silence escalates at its end.
    await stack.env.sleep(status.awaiting.deadline + timedelta(minutes=2) - await stack.env.get_current_time())
    status = await stack.until(rid, lambda s: s.escalation_tier == 2)
    assert status.awaiting.from_whom == ["np-head"] and status.rag == "red"
