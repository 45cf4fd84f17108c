"""The daily report: per configured site, what was seen and what was abnormal in the window."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from central import cases as casebook
from central import crud, messages, roster
from central.config import CentralConfig
from central.db.models import REVIEW_DISMISSED, Case, Event, Patrol, ReportSignoff, User
from central.reports import record
from central.reports.model import (
    AnomalyItem,
    CaseRecord,
    CategoryCount,
    DailyReport,
    PatrolRecord,
    Photo,
    RosterGap,
    SampleRecord,
    Section,
    Sighting,
    SignOff,
    SiteSection,
    SpeciesCount,
    section_of,
)

__all__ = [
    "AnomalyItem",
    "DailyReport",
    "SiteSection",
    "build_daily_report",
    "for_sites",
    "latest_closed_day",
    "report_day_for",
    "report_window",
]

log = logging.getLogger(__name__)

# Late additions are looked for from this long before the previous report's as-of time, minus
# the anomalies that report already listed: an event received just before a report was built but
# committed just after (ingest batches and retries) is then neither in that report nor lost.
LATE_OVERLAP = timedelta(minutes=30)


def report_window(*, config: CentralConfig, day: date) -> tuple[datetime, datetime]:
    """[previous day cut-off, this day cut-off) as aware local datetimes."""
    tz = ZoneInfo(config.timezone)
    end = datetime.combine(day, config.report.cutoff_time, tzinfo=tz)
    start = datetime.combine(day - timedelta(days=1), config.report.cutoff_time, tzinfo=tz)
    return start, end


def report_day_for(moment: datetime, config: CentralConfig) -> date:
    """The report day whose window contains `moment` (at or after the cut-off → the next day)."""
    local = moment.astimezone(ZoneInfo(config.timezone))
    if local.time() >= config.report.cutoff_time:
        return local.date() + timedelta(days=1)
    return local.date()


def latest_closed_day(now: datetime, config: CentralConfig) -> date:
    """The most recent report day whose window ended at least report.grace_minutes before `now`
    (what arrives later still is not lost: the next report lists it under 补报（迟到数据）)."""
    return report_day_for(now - config.report.grace, config) - timedelta(days=1)


def _photos(event: Event) -> list[Photo]:
    """The evidence the event lists, each marked uploaded or not (uploads trail the event)."""
    stored = {f.name: f.path for f in event.evidence}
    listed = [str(ref.get("name", "")) for ref in (event.payload or {}).get("evidence", [])]
    names = listed + sorted(n for n in stored if n not in listed)
    return [Photo(name=n, uploaded=n in stored, path=stored.get(n)) for n in names if n]


def anomaly_item(event: Event, tz: ZoneInfo, config: CentralConfig, *, late: bool) -> AnomalyItem:
    section = section_of(event.rule)
    return AnomalyItem(
        event_id=event.event_id,
        section=section,
        section_zh=messages.section_zh(section),
        report_day=report_day_for(event.captured_at, config),
        late=late,
        time=event.captured_at.astimezone(tz),
        received_at=event.received_at.astimezone(tz),
        camera=event.camera,
        node=event.node,
        rule=event.rule,
        rule_zh=messages.rule_zh(event.rule),
        category=event.category,
        category_zh=messages.category_zh(event.category),
        species_scientific=event.species_scientific,
        species_chinese=event.species_chinese,
        count=event.count,
        severity=event.severity,
        severity_zh=messages.severity_zh(event.severity),
        review_status=event.review_status,
        review_zh=messages.review_zh(event.review_status),
        reviewer=event.reviewer,
        reviewed_at=event.reviewed_at.astimezone(tz) if event.reviewed_at else None,
        review_note=event.review_note,
        message=event.message_zh or event.message_en,
        photos=_photos(event),
    )


class _Tally:
    """Per species: total, most at once, and where (cameras) seen."""

    def __init__(self) -> None:
        self.total: dict[tuple[str, str], int] = defaultdict(int)
        self.most: dict[tuple[str, str], int] = defaultdict(int)
        self.cameras: dict[tuple[str, str], set[str]] = defaultdict(set)

    def add(self, key: tuple[str, str], total: int, most: int, camera: str | None = None) -> None:
        self.total[key] += total
        self.most[key] = max(self.most[key], most)
        if camera is not None:
            self.cameras[key].add(camera)

    def counts(self, method: str, method_zh: str) -> list[SpeciesCount]:
        return [
            SpeciesCount(
                scientific_name=sci,
                chinese_name=zh,
                count=n,
                max_count=self.most[(sci, zh)],
                method=method,
                method_zh=method_zh,
                cameras=sorted(self.cameras[(sci, zh)]),
            )
            for (sci, zh), n in sorted(self.total.items(), key=lambda kv: (-kv[1], kv[0]))
        ]


def _species(groups: Sequence[crud.ObservationGroup]) -> list[SpeciesCount]:
    tally = _Tally()
    for g in groups:
        if g.species_scientific:
            tally.add((g.species_scientific, g.species_chinese or ""), g.total, g.most, g.camera)
    return tally.counts("camera", messages.OBSERVED_BY_CAMERA)


def case_record(case: Case, event: Event | None, tz: ZoneInfo, config: CentralConfig) -> CaseRecord:
    """A case as the report (and the express report) carries it."""
    species = (
        config.species_catalogue.get(case.species_scientific) if case.species_scientific else None
    )
    gaps = casebook.missing(case)
    return CaseRecord(
        case_id=case.id,
        event_id=case.event_id,
        found_at=case.found_at.astimezone(tz),
        location=case.location,
        species_scientific=case.species_scientific,
        species_chinese=case.species_chinese,
        protection_level=species.protection_level if species else None,
        sick_count=case.sick_count,
        dead_count=case.dead_count,
        flock_count=case.flock_count,
        signs=list(case.signs),
        signs_zh=[casebook.SIGNS_ZH.get(s, s) for s in case.signs],
        signs_note=case.signs_note,
        origin=case.origin,
        origin_zh=casebook.ORIGINS_ZH.get(case.origin, ""),
        human_contact=case.human_contact,
        human_contact_note=case.human_contact_note,
        poultry_farms_3km=case.poultry_farms_3km,
        poultry_check=case.poultry_check,
        samples=[
            SampleRecord(
                kind=str(s.get("kind", "")),
                kind_zh=casebook.SAMPLE_KINDS_ZH.get(str(s.get("kind", "")), ""),
                sample_id=str(s.get("sample_id", "")),
                laboratory=str(s.get("laboratory", "")),
                result=str(s.get("result", "")),
            )
            for s in case.samples
        ],
        no_sample_reason=case.no_sample_reason,
        measures=list(case.measures),
        measures_zh=[casebook.MEASURES_ZH.get(m, m) for m in case.measures],
        measures_note=case.measures_note,
        judgement=case.judgement,
        photos=(_photos(event) if event is not None else [])
        + [Photo(name=str(p["name"]), uploaded=True, path=str(p["path"])) for p in case.photos],
        opened_by=case.opened_by,
        updated_by=case.updated_by,
        missing=gaps,
        missing_zh=[casebook.MISSING_ZH[g] for g in gaps],
    )


def patrol_record(patrol: Patrol, tz: ZoneInfo) -> PatrolRecord:
    return PatrolRecord(
        patrol_id=patrol.id,
        observers=patrol.observers,
        route=patrol.route,
        started_at=patrol.started_at.astimezone(tz),
        ended_at=patrol.ended_at.astimezone(tz),
        weather=patrol.weather,
        sightings=[Sighting.model_validate(s) for s in patrol.sightings],
        note=patrol.note,
        photos=[str(p.get("name", "")) for p in patrol.photos],
        recorded_by=patrol.created_by,
    )


def _patrol_species(patrols: Sequence[PatrolRecord]) -> list[SpeciesCount]:
    tally = _Tally()
    for patrol in patrols:
        for s in patrol.sightings:
            tally.add((s.species_scientific, s.species_chinese), s.count, s.count)
    return tally.counts("patrol", messages.OBSERVED_BY_PATROL)


def _verdict(
    window: Sequence[AnomalyItem], late: Sequence[AnomalyItem], *, zero: str
) -> tuple[bool, str]:
    """(abnormal, summary) of anomalies captured in the window and late additions: only a
    wildlife epidemic abnormality makes it abnormal; `zero` is the summary when none was found."""
    disease = sum(a.section is Section.DISEASE for a in window)
    late_disease = sum(a.section is Section.DISEASE for a in late)
    summary = messages.verdict(
        disease=disease + late_disease,
        late_disease=late_disease,
        other=sum(a.section is Section.OTHER for a in window),
        equipment=sum(a.section is Section.EQUIPMENT for a in window),
        late_other=len(late) - late_disease,
        zero=zero,
    )
    return disease + late_disease > 0, summary


def for_sites(report: DailyReport, keep: Callable[[str], bool]) -> DailyReport:
    """The report cut to the sites `keep` accepts, its verdict and summary recomputed from them
    (a station-wide summary would tell one site's reader another site's anomalies)."""
    sections = [s for s in report.sites if keep(s.site)]
    abnormal, summary = _verdict(
        [a for s in sections for a in s.anomalies],
        [a for s in sections for a in s.late_additions],
        zero=messages.ZERO_REPORT,
    )
    return report.model_copy(
        update={
            "sites": sections,
            "abnormal": abnormal,
            "zero_report": not abnormal,
            "summary_zh": summary,
        }
    )


def _section(
    *,
    site: str,
    seen: Sequence[crud.ObservationGroup],
    anomalies_seen: list[Event],
    late: list[Event],
    config: CentralConfig,
    start: datetime,
    end: datetime,
    gaps: list[RosterGap],
    signoff: SignOff | None = None,
    cases: list[CaseRecord] | None = None,
    patrols: list[PatrolRecord] | None = None,
) -> SiteSection:
    tz = ZoneInfo(config.timezone)
    categories: dict[str, int] = defaultdict(int)
    for group in seen:
        categories[group.category] += group.total
    anomalies = [anomaly_item(event, tz, config, late=False) for event in anomalies_seen]
    late_items = [anomaly_item(e, tz, config, late=True) for e in late]
    abnormal, summary = _verdict(anomalies, late_items, zero=messages.NO_ANOMALY)
    cfg = config.sites.get(site)
    return SiteSection(
        site=site,
        name_zh=cfg.name_zh if cfg else messages.UNCONFIGURED_SITE.format(site=site),
        name_en=cfg.name_en if cfg else site,
        station_code=cfg.station_code if cfg else "",
        latitude=cfg.latitude if cfg else None,
        longitude=cfg.longitude if cfg else None,
        window_start=start,
        window_end=end,
        observation_events=sum(g.events for g in seen),
        categories=[
            CategoryCount(category=c, category_zh=messages.category_zh(c), count=n)
            for c, n in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        species=_species(seen) + _patrol_species(patrols or []),
        anomalies=anomalies,
        late_additions=late_items,
        abnormal=abnormal,
        abnormal_zh=messages.YES if abnormal else messages.NO,
        summary_zh=summary,
        roster_gaps=gaps,
        signoff=signoff,
        cases=cases or [],
        patrols=patrols or [],
        missing_zh=[
            messages.CASE_MISSING.format(id=c.case_id, what="、".join(c.missing_zh))
            for c in cases or []
            if c.missing_zh
        ],
    )


def signoffs(session: Session, day: date, tz: ZoneInfo) -> dict[str, SignOff]:
    """The sign-offs of `day`'s report by site, people by their display names (the reporter is
    the signer, with the signer's phone, when the head left them empty)."""
    rows = session.scalars(sa.select(ReportSignoff).where(ReportSignoff.report_date == day)).all()
    names = {r.signer for r in rows}
    people = (
        {u.name: u for u in session.scalars(sa.select(User).where(User.name.in_(names)))}
        if names
        else {}
    )
    found: dict[str, SignOff] = {}
    for r in rows:
        signer = people.get(r.signer)
        auditor = (signer.display_name if signer else "") or r.signer
        found[r.site] = SignOff(
            reporter=r.reporter or auditor,
            reporter_phone=r.reporter_phone or (signer.phone if signer and signer.phone else ""),
            auditor=auditor,
            signed_at=r.signed_at.astimezone(tz),
            report_as_of=r.report_as_of.astimezone(tz),
            note=r.note,
        )
    return found


ROSTER_AHEAD = timedelta(hours=24)


def _roster_gaps(
    session: Session, config: CentralConfig, site: str, start: datetime, end: datetime
) -> list[RosterGap]:
    """When nobody reachable was, or will be, on duty: the window and the day after it. Only
    with duty alerting: the per-event path texts duty_phones and has no roster."""
    if config.alerts.escalation is None or site not in config.sites:
        return []
    tz = ZoneInfo(config.timezone)
    return [
        RosterGap(start=g.start.astimezone(tz), end=g.end.astimezone(tz))
        for g in roster.gaps(session=session, site=site, start=start, end=end + ROSTER_AHEAD, tz=tz)
    ]


def late_anomalies(
    *, session: Session, captured_before: datetime, stored_since: datetime, exclude: frozenset[str]
) -> Sequence[Event]:
    """Anomalies captured before a window but received from `stored_since` on, not dismissed and
    not already listed (`exclude`), oldest capture first.

    A capture may be any number of windows old, so what bounds the rows read is when they arrived:
    ix_events_received_at (PostgreSQL's planner takes it; SQLite's, without histograms, keeps to
    ix_events_kind_captured_at). `exclude` (every anomaly of the reports built since, a whole
    catch-up's) is applied here: in SQL it would be one bind parameter per id."""
    rows = session.scalars(
        sa.select(Event)
        .where(
            Event.received_at >= stored_since,
            Event.kind == "anomaly",
            Event.captured_at < captured_before,
            Event.review_status != REVIEW_DISMISSED,
        )
        .order_by(Event.captured_at, Event.id)
    ).all()
    return [e for e in rows if e.event_id not in exclude]


def build_daily_report(
    *,
    session: Session,
    config: CentralConfig,
    day: date,
    reports: Mapping[date, record.ReportRecord] | None = None,
    now: datetime | None = None,
) -> DailyReport:
    """Build the report due at `day`'s cut-off; every configured site gets a section.

    `reports` are the reports on file: anomalies of earlier windows stored after the last report
    before this one was built, and listed in none, are late additions. Without an earlier report
    the previous one is taken to have been built report.grace_minutes after the previous cut-off
    (the timer).
    """
    tz = ZoneInfo(config.timezone)
    as_of = (now or datetime.now(UTC)).astimezone(tz)  # before the queries: nothing falls between
    start, end = report_window(config=config, day=day)
    by_site: dict[str, list[Event]] = {site: [] for site in config.sites}
    for event in crud.anomalies_in_window(session=session, start=start, end=end):
        by_site.setdefault(event.site, []).append(event)
    seen: dict[str, list[crud.ObservationGroup]] = defaultdict(list)
    for group in crud.observation_groups(session=session, start=start, end=end):
        seen[group.site].append(group)
        by_site.setdefault(group.site, [])
    earlier = {d: r for d, r in (reports or {}).items() if d < day}
    previous = earlier[max(earlier)] if earlier else None
    if previous is not None:
        since = previous.generated_at - LATE_OVERLAP
        since_zh = messages.LATE_SINCE_PREVIOUS.format(
            day=previous.day.isoformat(),
            at=messages.long_time(previous.generated_at.astimezone(tz)),
        )
    else:
        since = start + config.report.grace
        since_zh = messages.LATE_SINCE_WINDOW.format(at=messages.long_time(since))
    # Any report built from `since` on may have listed some of them (catch-up builds several
    # reports within seconds); one built earlier cannot have.
    exclude = frozenset().union(*(r.event_ids for r in earlier.values() if r.generated_at >= since))
    late_by_site: dict[str, list[Event]] = defaultdict(list)
    for event in late_anomalies(
        session=session, captured_before=start, stored_since=since, exclude=exclude
    ):
        late_by_site[event.site].append(event)
        by_site.setdefault(event.site, [])
    signed = signoffs(session, day, tz)
    cases_by_site: dict[str, list[CaseRecord]] = defaultdict(list)
    late_ids = [e.event_id for events in late_by_site.values() for e in events]
    for case in casebook.cases_in_window(
        session=session, start=start, end=end, also_events=late_ids, opened_since=since
    ):
        if f"case:{case.id}" in exclude:
            continue  # listed by a report built since
        record = case_record(case, casebook.event_of(session, case), tz, config)
        record.late = case.found_at < start
        cases_by_site[case.site].append(record)
        by_site.setdefault(case.site, [])
    patrols_by_site: dict[str, list[PatrolRecord]] = defaultdict(list)
    for patrol in casebook.patrols_in_window(
        session=session, start=start, end=end, recorded_since=since
    ):
        if f"patrol:{patrol.id}" in exclude:
            continue
        patrol_rec = patrol_record(patrol, tz)
        patrol_rec.late = patrol.started_at < start
        patrols_by_site[patrol.site].append(patrol_rec)
        by_site.setdefault(patrol.site, [])
    sections = [
        _section(
            site=site,
            seen=seen.get(site, []),
            anomalies_seen=events,
            late=late_by_site.get(site, []),
            config=config,
            start=start,
            end=end,
            gaps=_roster_gaps(session, config, site, start, end),
            signoff=signed.get(site),
            cases=cases_by_site.get(site, []),
            patrols=patrols_by_site.get(site, []),
        )
        for site, events in by_site.items()
    ]
    abnormal, summary = _verdict(
        [a for s in sections for a in s.anomalies],
        [a for s in sections for a in s.late_additions],
        zero=messages.ZERO_REPORT,
    )
    station = config.report.station_name
    return DailyReport(
        day=day,
        title=messages.report_title(
            station=station, code=config.report.station_code, day=day.isoformat()
        ),
        title_en=messages.REPORT_TITLE_EN,
        station_name=station,
        station_code=config.report.station_code,
        timezone=config.timezone,
        cutoff=config.report.cutoff,
        window_start=start,
        window_end=end,
        generated_at=as_of,
        provisional=as_of < end,
        late_since=since.astimezone(tz),
        late_since_zh=since_zh,
        abnormal=abnormal,
        zero_report=not abnormal,
        summary_zh=summary,
        sites=sections,
    )


def produce(
    *,
    session: Session,
    config: CentralConfig,
    day: date,
    out_dir: Path,
    reports: MutableMapping[date, record.ReportRecord],
    now: datetime | None = None,
) -> tuple[Path, ...]:
    """Build the report of `day` against `reports`, the reports in out_dir (record.records), and
    write it (JSON, XLSX, PDF); its record is added to `reports`, so a catch-up reads the folder
    only once. Without a CJK font the PDF is left out (logged); the JSON and XLSX stand."""
    report = build_daily_report(session=session, config=config, day=day, reports=reports, now=now)
    paths = record.write_files(
        report, out_dir, evidence_dir=config.evidence_dir, font=config.report.pdf_font
    )
    reports[day] = record.record_of(report)
    log.info("daily report %s written (%s): %s", day, report.summary_zh, paths[0])
    return paths
