"""Evidence images: resumable uploads from the nodes (node token), and the images for review
(staff token)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from broker.payloads import EVIDENCE_NAME_PATTERN
from central import crud, evidence, messages
from central.api.deps import ConfigDep, SessionDep, StaffScope, UploaderDep
from central.schemas import UploadStatusPublic

router = APIRouter(prefix="/api/evidence", tags=["evidence"])

NameParam = Annotated[str, Path(pattern=EVIDENCE_NAME_PATTERN, description="file name")]
# "bytes start-end/total" with three numbers far larger than any evidence file fits in 80
# characters; the bound also keeps int() away from numbers thousands of digits long.
MAX_CONTENT_RANGE = 80


def _http(exc: evidence.EvidenceError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail, headers=exc.headers)


@router.get("/{event_id}/{name}/status", response_model=UploadStatusPublic)
def read_upload_status(
    session: SessionDep,
    config: ConfigDep,
    uploader: UploaderDep,
    event_id: uuid.UUID,
    name: NameParam,
) -> UploadStatusPublic:
    """How many bytes of the file central holds, so an interrupted upload resumes there."""
    try:
        status = evidence.upload_status(
            session=session, config=config, event_id=str(event_id), name=name, uploader=uploader
        )
    except evidence.EvidenceError as exc:
        raise _http(exc) from exc
    return UploadStatusPublic(received=status.received, complete=status.complete)


@router.put("/{event_id}/{name}", response_model=UploadStatusPublic)
async def upload_chunk(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    uploader: UploaderDep,
    event_id: uuid.UUID,
    name: NameParam,
    content_range: Annotated[
        str, Header(max_length=MAX_CONTENT_RANGE, description="bytes start-end/total")
    ],
    x_content_sha256: Annotated[str, Header(description="sha256 of the whole file (hex)")],
) -> UploadStatusPublic:
    """Append one chunk; the last one is checked against the whole file's sha256 and stored."""
    try:
        chunk = evidence.parse_range(content_range)
        body = await evidence.read_body(request, limit=int(config.evidence.max_chunk_mb * 1e6))
        status = await run_in_threadpool(
            lambda: evidence.receive_chunk(
                session=session,
                config=config,
                event_id=str(event_id),
                name=name,
                uploader=uploader,
                chunk=chunk,
                sha256=x_content_sha256.strip().lower(),
                body=body,
                now=datetime.now(UTC),
            )
        )
    except evidence.EvidenceError as exc:
        raise _http(exc) from exc
    return UploadStatusPublic(received=status.received, complete=status.complete)


@router.get("/{event_id}/{name}", response_class=FileResponse)
def read_evidence(
    session: SessionDep,
    config: ConfigDep,
    scope: StaffScope,
    event_id: uuid.UUID,
    name: NameParam,
) -> FileResponse:
    """The stored JPEG for a staff member; 404 until it has been uploaded and checked (and for
    another site's event when the token is limited to some sites)."""
    row = crud.get_event(session=session, event_id=str(event_id))
    if row is None or not scope.allows(row.site):
        raise HTTPException(status_code=404, detail=messages.EVIDENCE_NOT_FOUND)
    path = evidence.evidence_file(session=session, config=config, event_id=str(event_id), name=name)
    if path is None:
        raise HTTPException(status_code=404, detail=messages.EVIDENCE_NOT_FOUND)
    return FileResponse(path, media_type="image/jpeg")
