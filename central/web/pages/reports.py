"""日报 reports: today's report as it stands, the reports on file (each person sees the sections
of their own sites), downloads (JSON, XLSX) and the station head's sign-off."""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi import Path as Path_
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from broker.topics import ID_PATTERN
from central import accounts, messages
from central.api.deps import ConfigDep, SessionDep
from central.reports import record
from central.reports.daily import build_daily_report, for_sites, report_day_for, report_window
from central.reports.delivery import OUTBOX, draft_time
from central.reports.model import DailyReport
from central.reports.pdf import PdfError
from central.reports.xlsx import write_xlsx
from central.web import labels, queries
from central.web.deps import AccountDep, CsrfAccountDep, Forbidden, render

log = logging.getLogger(__name__)
router = APIRouter()
SHOWN_REPORTS = 60
NO_REPORT = "该日报尚未生成 no report for that day"


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink(missing_ok=True)
    folder.rmdir()


def _scoped(report: DailyReport, scope: accounts.Scope) -> DailyReport:
    """The report with only the sections of the sites this person may see."""
    if scope.sites is None:
        return report
    return for_sites(report, scope.allows)


def _on_file(config: ConfigDep, day: date) -> DailyReport:
    json_path, _ = record.paths(config.report_dir, day)
    try:
        return DailyReport.model_validate_json(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HTTPException(
            status_code=404, detail="该日报尚未生成 no report for that day"
        ) from None
    except ValueError as exc:
        log.warning("report %s unreadable: %s", json_path, exc)
        raise HTTPException(status_code=404, detail="日报文件无法读取 report unreadable") from exc


@router.get("/reports")
def reports_page(
    request: Request, session: SessionDep, config: ConfigDep, account: AccountDep
) -> Response:
    now = datetime.now(UTC)
    today = report_day_for(now, config)
    on_file = record.records(config.report_dir)
    current = _scoped(
        build_daily_report(session=session, config=config, day=today, reports=on_file, now=now),
        account.scope,
    )
    days = sorted(on_file, reverse=True)[:SHOWN_REPORTS]
    signoffs = queries.signoffs(session=session, scope=account.scope, days=[today, *days])
    listed = [a.event_id for s in current.sites for a in s.anomalies + s.late_additions]
    cases = queries.cases_for(session=session, event_ids=listed)
    response: Response = render(
        request,
        "reports.html",
        config,
        account,
        page="reports",
        report=current,
        today=today,
        days=days,
        finals={d: on_file[d].final for d in days},
        signoffs=signoffs,
        cases=cases,
        draft_ready=now >= draft_time(config, today),
    )
    return response


@router.get("/reports/{day}.{fmt}")
def download(
    config: ConfigDep, account: AccountDep, day: date, fmt: Literal["json", "xlsx", "pdf"]
) -> Response:
    report = _on_file(config, day)
    json_path, xlsx_path = record.paths(config.report_dir, day)
    if account.scope.sites is None:  # every site: the file itself, as sent to the bureau
        path = {"json": json_path, "xlsx": xlsx_path}.get(fmt) or record.pdf_path(
            config.report_dir, day
        )
        if not path.is_file():
            raise HTTPException(status_code=404, detail="文件不存在 file missing")
        return FileResponse(path, filename=path.name)
    mine = _scoped(report, account.scope)
    name = f"{json_path.stem}_{'-'.join(sorted(account.scope.sites))}.{fmt}"
    if fmt == "json":
        return Response(
            mine.model_dump_json(indent=2),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    folder = Path(tempfile.mkdtemp(prefix="ww-report-"))
    if fmt == "pdf":
        try:
            path = record.write_pdf(
                mine, folder / name, evidence_dir=config.evidence_dir, font=config.report.pdf_font
            )
        except PdfError as exc:
            _remove(folder)
            raise HTTPException(status_code=503, detail=f"PDF 无法生成: {exc}") from exc
    else:
        path = write_xlsx(mine, folder / name)
    return FileResponse(
        path,
        filename=name,
        background=BackgroundTask(_remove, folder),
    )


def _signer(account: CsrfAccountDep) -> accounts.Account:
    if not account.role.may_sign:
        raise Forbidden()
    return account


@router.post("/reports/{day}/sign")
def sign(
    session: SessionDep,
    account: Annotated[accounts.Account, Depends(_signer)],
    config: ConfigDep,
    day: date,
    site: Annotated[str, Form(pattern=ID_PATTERN)],
    as_of: Annotated[datetime, Form()],
    note: Annotated[str, Form(max_length=500)] = "",
    reporter: Annotated[str, Form(max_length=64)] = "",
    reporter_phone: Annotated[str, Form(max_length=32, pattern=r"^[0-9+\- ]*$")] = "",
) -> Response:
    """The station head signs the site's report of `day` as it stood at `as_of` (the time of
    the page they read; 审核签发); once per site and day. Only the report due next or one on
    file can be signed."""
    if not account.scope.allows(site):
        raise HTTPException(status_code=404, detail="无此站点 no such site")
    now = datetime.now(UTC)
    due = report_day_for(now, config)
    if day != due and day not in record.records(config.report_dir):
        raise HTTPException(status_code=404, detail=NO_REPORT)
    if as_of.tzinfo is None or as_of > now:
        raise HTTPException(status_code=422, detail="报告时间无效 invalid report time")
    if queries.queued(session=session, day=day, site=site):
        raise HTTPException(status_code=409, detail=messages.SIGNED_TOO_LATE)
    signed = queries.sign_report(
        session=session,
        day=day,
        site=site,
        signer=account.name,
        note=note.strip(),
        reporter=reporter.strip(),
        reporter_phone=reporter_phone.strip(),
        as_of=as_of,
        now=now,
    )
    session.commit()
    if signed:
        log.info("report %s of %s signed by %s", day, site, account.name)
    return RedirectResponse("/reports", status_code=303)


@router.get("/reports/delivery")
def delivery_page(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    account: AccountDep,
    day: date | None = None,
) -> Response:
    """报送: each site's report of the day on its way to the bureau (for a bureau account, every
    site: the provincial view), every try, the receipts, and the sites not reported."""
    now = datetime.now(UTC)
    latest = report_day_for(now, config) - timedelta(days=1)
    shown = day or latest
    _start, end = report_window(config=config, day=shown)
    settings = config.report.delivery
    missing_at = end + timedelta(minutes=settings.missing_after_minutes if settings else 10)
    rows = queries.deliveries(
        session=session, scope=account.scope, sites=list(config.sites), day=shown
    )
    response: Response = render(
        request,
        "delivery.html",
        config,
        account,
        page="reports",
        day=shown,
        days=[latest - timedelta(days=n) for n in range(14)],
        rows=rows,
        configured=settings is not None,
        channels=settings.channels() if settings else [],
        missing_at=missing_at,
        late=now >= missing_at,
        labels=labels,
    )
    return response


@router.get("/reports/delivery/{day}/{site}.{fmt}")
def sent_file(
    config: ConfigDep,
    account: AccountDep,
    day: date,
    site: Annotated[str, Path_(pattern=ID_PATTERN)],
    fmt: Literal["json", "xlsx", "pdf"],
) -> Response:
    """A file exactly as it was sent to the bureau (its sha256 is on the 报送 page)."""
    if not account.scope.allows(site):
        raise HTTPException(status_code=404, detail="无此站点 no such site")
    folder = config.report_dir / OUTBOX / day.isoformat() / site
    path = folder / f"{record.STEM.format(day=day.isoformat())}.{fmt}"
    if not path.is_file():
        raise HTTPException(status_code=404, detail=NO_REPORT)
    return FileResponse(path, filename=f"daily_report_{day.isoformat()}_{site}.{fmt}")
