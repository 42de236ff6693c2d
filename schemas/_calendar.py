"""Working hours: a partnership's days and hours, bank holidays and closure days, and the pure
function that counts a wait in them. The calendar is resolved to dates at intake, so that the
workflow computes its deadlines from its snapshot alone, deterministically on replay."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

# A wait is never counted further than this: a calendar with no working day left would loop.
_HORIZON_DAYS = 3660


class _Hours(BaseModel, frozen=True, extra="forbid"):
    """Days and hours of work, in the partnership's time zone."""

    timezone: str = Field(default="Europe/London", description="The partnership's time zone (IANA name)")
    days: list[int] = Field(default=[0, 1, 2, 3, 4], description="Working weekdays, 0 = Monday … 6 = Sunday")
    opens: time = Field(default=time(9), description="Local time the working day starts")
    closes: time = Field(default=time(17), description="Local time the working day ends")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError("safeshare", "timezone: an IANA time zone name, e.g. Europe/London") from None
        if not self.days or any(d not in range(7) for d in self.days):
            raise PydanticCustomError("safeshare", "days: at least one weekday, each 0 (Monday) to 6 (Sunday)")
        if self.opens >= self.closes:
            raise PydanticCustomError("safeshare", "closes: a time after opens, on the same day")
        return self


class WorkingCalendar(_Hours, frozen=True, extra="forbid"):
    """The partnership's working time, with its days off as dates (snapshotted into the intake)."""

    days_off: list[date] = Field(default_factory=list, description="Bank holidays and closure days")

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.days_off


def add_working_hours(start: datetime, wait: timedelta, calendar: WorkingCalendar) -> datetime:
    """The moment `wait` of working time has passed after `start` (UTC): out-of-hours time, weekends,
    bank holidays and closure days do not count. A start out of hours counts from the next opening."""
    if wait <= timedelta(0):
        return start
    tz = ZoneInfo(calendar.timezone)
    at, left = start.astimezone(tz), wait
    day = at.date()
    for _ in range(_HORIZON_DAYS):
        if calendar.is_working_day(day):
            opens, closes = (datetime.combine(day, t, tz) for t in (calendar.opens, calendar.closes))
            begin = max(at, opens)
            if begin < closes:
                if begin + left <= closes:
                    return (begin + left).astimezone(UTC)
                left -= closes - begin
        day += timedelta(days=1)
        at = datetime.combine(day, time(0), tz)
    raise ValueError("calendar: no working time within ten years")


class WorkingHours(_Hours, frozen=True, extra="forbid"):
    """The policy's working hours: the calendar, with the bank holidays named rather than listed."""

    bank_holidays: Literal["england", "wales", "none"] = Field(
        default="england", description="Whose bank holidays are days off (from the `holidays` package)"
    )
    closure_days: list[date] = Field(default_factory=list, description="Local closure days, e.g. a training day")

    def calendar(self, start: date, years: int = 2) -> WorkingCalendar:
        """The calendar from `start` with its days off resolved for the years a request can span."""
        off = set(self.closure_days)
        if self.bank_holidays != "none":
            import holidays  # only at intake: workflow code never consults the package

            region = {"england": "ENG", "wales": "WLS"}[self.bank_holidays]
            off |= set(holidays.country_holidays("GB", subdiv=region, years=range(start.year, start.year + years + 1)))
        return WorkingCalendar(
            timezone=self.timezone, days=self.days, opens=self.opens, closes=self.closes,
            days_off=sorted(d for d in off if d >= start),
        )
