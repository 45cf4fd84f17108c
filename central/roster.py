"""Duty roster (值班表): who is on duty at a site at a given moment, and where nobody is.

Per site, shifts name the duty officer (值班员), the backup (备班) and the station head (站长)
for a kind of day (workdays, weekends, holidays, or every day) and a time of day; a shift may
run past midnight (a night shift 18:00-08:00 belongs to the day it starts on). One-off overrides
("王五 covers 3-5 Dec") replace the shift's person in that role for their span. Holidays and
the make-up workdays of China's official calendar change every year, so they are data
(`roster_days`), not code.

`chain(site, at)` answers who to notify, in escalation order; `gaps(site, start, end)` lists the
spans without a duty officer, which the status page and the daily report show as a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from central.alerts.policy import DutyRole
from central.db.models import DutyOverride, DutyShift, RosterDay, User


class DayKind(StrEnum):
    WORKDAY = "workday"
    WEEKEND = "weekend"
    HOLIDAY = "holiday"
    ANY = "any"


__all__ = ["DayKind", "DutyRole", "Gap", "OnDuty", "RosterError", "chain", "gaps"]


class RosterError(ValueError):
    """A shift or override that cannot be kept (message Chinese first)."""


@dataclass(frozen=True, slots=True)
class OnDuty:
    role: DutyRole
    name: str
    display_name: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class Gap:
    start: datetime
    end: datetime


def kind_of(day: date, special: dict[date, str]) -> DayKind:
    """Workday, weekend or holiday: the official calendar (`special`: date → holiday or
    workday, for make-up working Saturdays) before the weekday."""
    marked = special.get(day)
    if marked == DayKind.HOLIDAY:
        return DayKind.HOLIDAY
    if marked == DayKind.WORKDAY:
        return DayKind.WORKDAY
    return DayKind.WEEKEND if day.weekday() >= 5 else DayKind.WORKDAY


def _covers(shift: DutyShift, at_local: datetime, special: dict[date, str]) -> bool:
    start, end = shift.start_time, shift.end_time
    t = at_local.time()
    if start < end:  # a day shift: the shift's day is today
        day, inside = at_local.date(), start <= t < end
    elif t >= start:  # an overnight shift, evening part: started today
        day, inside = at_local.date(), True
    else:  # its morning part: started yesterday
        day, inside = at_local.date() - timedelta(days=1), t < end
    if not inside:
        return False
    return shift.day_kind == DayKind.ANY or kind_of(day, special) == shift.day_kind


def _special_days(session: Session, site: str, around: Iterable[date]) -> dict[date, str]:
    days = sorted(set(around))
    if not days:
        return {}
    rows = session.execute(
        sa.select(RosterDay.day, RosterDay.kind).where(
            RosterDay.day >= days[0],
            RosterDay.day <= days[-1],
            sa.or_(RosterDay.site == site, RosterDay.site.is_(None)),
        )
    )
    # a site's own entry wins over the national one
    found: dict[date, str] = {}
    for day, kind in sorted(rows, key=lambda r: r[0]):
        found[day] = kind
    return found


class _Roster:
    """One site's shifts, overrides, special days and people for a span, read once."""

    def __init__(
        self, session: Session, site: str, start: datetime, end: datetime, tz: ZoneInfo
    ) -> None:
        self.tz = tz
        first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
        days = [
            first - timedelta(days=1) + timedelta(days=i) for i in range((last - first).days + 2)
        ]
        self.special = _special_days(session, site, days)
        shifts = session.scalars(sa.select(DutyShift).where(DutyShift.site == site)).all()
        self.shifts = sorted(shifts, key=lambda s: s.day_kind == DayKind.ANY)  # specific first
        self.overrides = sorted(
            session.scalars(
                sa.select(DutyOverride).where(
                    DutyOverride.site == site,
                    DutyOverride.starts_at <= end,
                    DutyOverride.ends_at > start,
                )
            ).all(),
            key=lambda o: o.starts_at,
        )
        names = {s.user_name for s in shifts} | {o.user_name for o in self.overrides}
        self.users = {
            u.name: u for u in session.scalars(sa.select(User).where(User.name.in_(sorted(names))))
        }

    def at(self, moment: datetime) -> list[OnDuty]:
        local = moment.astimezone(self.tz)
        holder: dict[DutyRole, str] = {}
        for shift in self.shifts:
            role = DutyRole(shift.role)
            if role not in holder and _covers(shift, local, self.special):
                holder[role] = shift.user_name
        for override in self.overrides:  # the latest override wins
            if override.starts_at <= moment < override.ends_at:
                holder[DutyRole(override.role)] = override.user_name
        found = []
        for role in DutyRole:
            name = holder.get(role)
            if name is None:
                continue
            user = self.users.get(name)
            found.append(
                OnDuty(
                    role=role,
                    name=name,
                    display_name=(user.display_name if user else "") or name,
                    phone=user.phone if user and user.active else None,
                )
            )
        return found


def chain(*, session: Session, site: str, at: datetime, tz: ZoneInfo) -> list[OnDuty]:
    """Who is on duty at `site` at `at`, in escalation order (duty, backup, head); a role
    nobody holds is left out (and a disabled account has no phone)."""
    return _Roster(session, site, at, at, tz).at(at)


def gaps(*, session: Session, site: str, start: datetime, end: datetime, tz: ZoneInfo) -> list[Gap]:
    """Spans in [start, end) with no reachable duty officer (nobody, or nobody with a phone
    number) at `site`, exact to the minute: who is on duty only changes where a shift or an
    override starts or ends, or at midnight (the kind of day), so only those moments are
    looked at."""
    roster = _Roster(session, site, start, end, tz)
    points = {start}
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    day = first - timedelta(days=1)
    while day <= last:
        moments = [time(0)] + [t for s in roster.shifts for t in (s.start_time, s.end_time)]
        for moment in moments:
            at = datetime.combine(day, moment, tzinfo=tz)
            if start < at < end:
                points.add(at)
        day += timedelta(days=1)
    for o in roster.overrides:
        points.update(t for t in (o.starts_at, o.ends_at) if start < t < end)
    found: list[Gap] = []
    open_at: datetime | None = None
    for t in sorted(points):
        reachable = any(p.role is DutyRole.DUTY and p.phone for p in roster.at(t))
        if not reachable and open_at is None:
            open_at = t
        elif reachable and open_at is not None:
            found.append(Gap(open_at, t))
            open_at = None
    if open_at is not None:
        found.append(Gap(open_at, end))
    return found


def _check_person(session: Session, site: str, role: DutyRole, user_name: str) -> None:
    """The person exists, belongs to the site, and can be reached when on duty."""
    user = session.scalar(sa.select(User).where(User.name == user_name))
    if user is None or not user.active:
        raise RosterError(f"无此用户 no such user: {user_name}")
    if user.sites and site not in user.sites:
        raise RosterError(f"{user_name} 不属于站点 {site} / is not a member of site {site}")
    if role is DutyRole.DUTY and not user.phone:
        raise RosterError(f"{user_name} 没有手机号 has no phone number: set one first")


def add_shift(
    *,
    session: Session,
    site: str,
    role: DutyRole,
    user_name: str,
    day_kind: DayKind,
    start: time,
    end: time,
) -> DutyShift:
    if start == end:
        raise RosterError("班次开始与结束相同 a shift must not start and end at the same time")
    _check_person(session, site, role, user_name)
    shift = DutyShift(
        site=site,
        role=role.value,
        user_name=user_name,
        day_kind=day_kind.value,
        start_time=start,
        end_time=end,
    )
    session.add(shift)
    session.flush()
    return shift


def add_override(
    *,
    session: Session,
    site: str,
    role: DutyRole,
    user_name: str,
    starts_at: datetime,
    ends_at: datetime,
    note: str = "",
) -> DutyOverride:
    if ends_at <= starts_at:
        raise RosterError("替班结束须晚于开始 an override must end after it starts")
    _check_person(session, site, role, user_name)
    override = DutyOverride(
        site=site,
        role=role.value,
        user_name=user_name,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
    )
    session.add(override)
    session.flush()
    return override


def mark_days(
    *, session: Session, days: Sequence[date], kind: DayKind, site: str | None = None
) -> None:
    """Official holidays or make-up workdays (site None: every site)."""
    if kind not in (DayKind.HOLIDAY, DayKind.WORKDAY):
        raise RosterError("只能标记节假日或调休工作日 mark holidays or make-up workdays only")
    for day in days:
        session.execute(
            sa.delete(RosterDay).where(
                RosterDay.day == day,
                RosterDay.site == site if site is not None else RosterDay.site.is_(None),
            )
        )
        session.add(RosterDay(day=day, kind=kind.value, site=site))
    session.flush()
