"""Local policy: how long each stage may wait, and how long records are kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from ._calendar import WorkingHours
from ._common import Rag, Urgency


class StagePolicy(BaseModel, frozen=True, extra="forbid"):
    consent_wait: timedelta = Field(description="How long to wait for the family's consent")
    manager_wait: timedelta = Field(description="How long each manager tier has before escalation")
    receipt_wait: timedelta = Field(description="How long the recipient has to acknowledge, per reminder")
    share_now_review_later: bool = Field(
        default=False,
        description="Share before any manager decision; a manager's retrospective review is still awaited",
    )
    working_hours: bool = Field(
        default=False,
        description="The waits count working time on the policy's calendar (working_hours), not calendar time",
    )


class RetentionRule(BaseModel, frozen=True, extra="forbid"):
    until_birthday: int = Field(default=25, ge=1, le=120, description="Keep until this birthday")
    looked_after_until_birthday: int = Field(
        default=75, ge=1, le=120, description="Keep until this birthday for a looked-after child"
    )
    minimum_years: int = Field(
        default=6, ge=0, le=120,
        description="Kept at least this long after intake, whatever the date of birth (e.g. an adult subject); "
        "0 only in a test deployment whose records are deleted as soon as they are complete",
    )
    disposal: Literal["on_date", "end_of_year"] = Field(
        default="end_of_year",
        description=(
            "end_of_year: dispose at the close of the year the birthday falls in, so that the "
            "retention date visible to operators does not reveal the date of birth"
        ),
    )


class Policy(BaseModel, frozen=True, extra="forbid"):
    stages: dict[Urgency, StagePolicy] = Field(description="Waits per urgency")
    escalation_tiers: int = Field(default=3, ge=1, le=5, description="Manager tiers before overdue")
    receipt_reminders: int = Field(
        default=1, ge=0, le=5, description="Reminders to the recipient before escalating"
    )
    retention: dict[str, RetentionRule] = Field(
        default_factory=lambda: {"child_safeguarding": RetentionRule()},
        description="Retention per record class",
    )
    record_class: str = Field(default="child_safeguarding", description="Record class for share requests")
    rag: dict[Rag, timedelta] = Field(
        default_factory=dict,
        description="Each RAG rating's timescale for the manager's decision, in working hours "
        "(e.g. red PT4H, amber PT24H, green PT72H); none: a rated request waits per its urgency",
    )
    working_hours: WorkingHours = Field(
        default_factory=WorkingHours, description="The partnership's working hours, for waits counted in them"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = {"emergency", "urgent", "routine"} - set(self.stages)
        if missing:
            raise PydanticCustomError("safeshare", "stages: a policy for each urgency (emergency, urgent, routine)")
        if self.rag and set(self.rag) != {"red", "amber", "green"}:
            raise PydanticCustomError("safeshare", "rag: a timescale for each rating (red, amber, green), or none")
        if self.record_class not in self.retention:
            raise PydanticCustomError("safeshare", "retention: a rule for the record class")
        return self

    def retention_until(self, date_of_birth: date, looked_after: bool, accepted_on: date) -> datetime:
        """The birthday the record class keeps until, and never less than its minimum after intake:
        whatever dates a request carries, it cannot reach deletion early."""
        rule = self.retention[self.record_class]
        years = rule.looked_after_until_birthday if looked_after else rule.until_birthday
        until = max(_add_years(date_of_birth, years), _add_years(accepted_on, rule.minimum_years))
        if rule.disposal == "end_of_year":
            until = date(until.year + 1, 1, 1)
        return datetime(until.year, until.month, until.day, tzinfo=UTC)


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February in a non-leap year: the birthday is taken as 1 March
        return date(d.year + years, 3, 1)
