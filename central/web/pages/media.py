"""Evidence images for the console: the stored JPEG, a thumbnail, or one box cut out, only for
accounts that may see the event's site. Thumbnails are made once and kept beside the evidence."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from broker.payloads import EVIDENCE_NAME_PATTERN
from central import evidence, messages
from central.api.deps import ConfigDep, SessionDep
from central.web import queries, thumbs
from central.web.deps import AccountDep

router = APIRouter()
CACHE = "private, max-age=86400"  # evidence never changes once stored


@router.get("/media/{event_id}/{name}")
def media(
    session: SessionDep,
    config: ConfigDep,
    account: AccountDep,
    event_id: uuid.UUID,
    name: Annotated[str, PathParam(pattern=EVIDENCE_NAME_PATTERN)],
    size: Literal["full", "thumb"] = "full",
    crop: Annotated[int | None, Query(ge=0, le=199)] = None,
) -> Response:
    row = queries.event_in_scope(session=session, scope=account.scope, event_id=str(event_id))
    path = (
        evidence.evidence_file(session=session, config=config, event_id=str(event_id), name=name)
        if row is not None
        else None
    )
    if row is None or path is None:
        raise HTTPException(status_code=404, detail=messages.EVIDENCE_NOT_FOUND)
    if crop is not None:
        if crop >= len(row.boxes):
            raise HTTPException(status_code=404, detail=messages.NO_SUCH_BOX)
        made: Path = thumbs.crop(path, row.boxes[crop], index=crop)
    elif size == "thumb":
        made = thumbs.thumbnail(path)
    else:
        made = path
    return FileResponse(made, media_type="image/jpeg", headers={"Cache-Control": CACHE})
