"""日报 reports: today's report as it stands, the reports on file (each person sees the sections
of their own sites), downloads (JSON, XLSX) and the station head's sign-off."""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from broker.topics import ID_PATTERN
from central import accounts
from central.api.deps import ConfigDep, SessionDep
from central.reports import record
from central.reports.daily import build_daily_report, report_day_for
from central.reports.model import DailyReport
from central.reports.xlsx import write_xlsx
from central.web import queries
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
    return report.model_copy(update={"sites": [s for s in report.sites if scope.allows(s.site)]})


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
    )
    return response


@router.get("/reports/{day}.{fmt}")
def download(
    config: ConfigDep, account: AccountDep, day: date, fmt: Literal["json", "xlsx"]
) -> Response:
    report = _on_file(config, day)
    json_path, xlsx_path = record.paths(config.report_dir, day)
    if account.scope.sites is None:  # every site: the file itself, as sent to the bureau
        path = json_path if fmt == "json" else xlsx_path
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
    day: date,
    site: Annotated[str, Form(pattern=ID_PATTERN)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The station head signs the site's report of `day` (审核签发); once per site and day."""
    if not account.scope.allows(site):
        raise HTTPException(status_code=404, detail="无此站点 no such site")
    signed = queries.sign_report(
        session=session,
        day=day,
        site=site,
        signer=account.name,
        note=note.strip(),
        now=datetime.now(UTC),
    )
    session.commit()
    if signed:
        log.info("report %s of %s signed by %s", day, site, account.name)
    return RedirectResponse("/reports", status_code=303)
