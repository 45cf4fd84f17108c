"""训练数据集 the console's download of reviewed events' frames as a labelled dataset (COCO Camera
Traps and MegaDetector JSON with the images; central/datasets.py), for the account's sites."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from broker.topics import ID_PATTERN
from central import datasets
from central.api.deps import ConfigDep, SessionDep
from central.web.deps import AccountDep

log = logging.getLogger(__name__)
router = APIRouter()

DEFAULT_DAYS = 30  # without dates: the last 30 days, today included


@router.get("/datasets/coco.zip")
def download_coco(
    session: SessionDep,
    config: ConfigDep,
    account: AccountDep,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    site: Annotated[str | None, Query(pattern=f"^(|{ID_PATTERN[1:-1]})$")] = None,
) -> FileResponse:
    tz = ZoneInfo(config.timezone)
    last = date_to or datetime.now(tz).date()
    first = date_from or last - timedelta(days=DEFAULT_DAYS - 1)
    since, until = datasets.day_window(first, last, tz)
    problem = datasets.check_window(since, until)
    if problem is not None:
        raise HTTPException(status_code=422, detail=problem)
    sites = account.scope.visible([site]) if site else account.scope.sites
    summary = datasets.export_for_download(
        session=session, config=config, since=since, until=until, sites=sites
    )
    log.info("%s downloaded the dataset %s..%s (%s)", account.name, first, last, site or "*")
    return FileResponse(
        summary.path,
        media_type="application/zip",
        filename=datasets.download_name(since, until, tz),
        background=BackgroundTask(Path(summary.path).unlink, missing_ok=True),
    )
