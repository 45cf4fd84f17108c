"""GET /api/datasets/coco-camera-traps.zip: reviewed events' frames as a labelled dataset
(COCO Camera Traps and MegaDetector JSON with the images, central/datasets.py), staff token
required, limited to the token's sites."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from central import datasets
from central.api.deps import ConfigDep, SessionDep, StaffScope, get_current_staff
from central.schemas import QueryTime

router = APIRouter(
    prefix="/api/datasets", tags=["datasets"], dependencies=[Depends(get_current_staff)]
)


@router.get("/coco-camera-traps.zip", response_class=FileResponse)
def read_coco_dataset(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    since: Annotated[QueryTime, Query(description="captured at or after (ISO 8601)")],
    until: Annotated[QueryTime, Query(description="captured before (ISO 8601)")],
    site: Annotated[list[str] | None, Query(max_length=50, description="only these sites")] = None,
) -> FileResponse:
    """训练数据集 The zip: coco_camera_traps.json, megadetector.json and the frames."""
    problem = datasets.check_window(since, until)
    if problem is not None:
        raise HTTPException(status_code=422, detail=problem)
    # every site the token may see, or those of them asked for (another site's: nothing)
    sites = scope.visible(sorted(set(site))) if site else scope.sites
    summary = datasets.export_for_download(
        session=session, config=config, since=since, until=until, sites=sites
    )
    return FileResponse(
        summary.path,
        media_type="application/zip",
        filename=datasets.download_name(since, until, ZoneInfo(config.timezone)),
        background=BackgroundTask(Path(summary.path).unlink, missing_ok=True),
    )
