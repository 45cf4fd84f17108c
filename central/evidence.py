"""Evidence uploads from the nodes: token check, resumable chunks, sha256 check, storage.

A file is written to `<storage>/.partial/<event_id>/<name>.part` chunk by chunk; the last chunk
triggers a sha256 check of the whole file, and only a file that matches is moved to
`<storage>/<site>/<node>/<event_id>/<name>` and recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.orm import Session

from central import messages
from central.config import CentralConfig
from central.db.models import Event, EvidenceFile

log = logging.getLogger(__name__)

HASH_MISMATCH = "sha256"  # X-Evidence-Error value the edge uploader recognises
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_BLOCK = 1024 * 1024
# One node uploads one file at a time; the lock keeps two requests for the same file (a client
# retrying after a timeout) from interleaving their appends in this process.
_WRITE_LOCK = threading.Lock()


class EvidenceError(Exception):
    """An upload refused with an HTTP status and a message for people."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """The bytes one request carries: start..end inclusive of a file of total bytes."""

    start: int
    end: int
    total: int


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """How much of a file central holds."""

    received: int
    complete: bool


def parse_range(value: str) -> ChunkRange:
    """Parse `bytes start-end/total`."""
    match = _RANGE.match(value.strip())
    if match is None:
        raise EvidenceError(400, messages.EVIDENCE_BAD_RANGE.format(detail=value[:80]))
    start, end, total = (int(g) for g in match.groups())
    if not start <= end < total:
        raise EvidenceError(400, messages.EVIDENCE_BAD_RANGE.format(detail=value[:80]))
    return ChunkRange(start, end, total)


def authenticate(*, config: CentralConfig, authorization: str | None) -> tuple[str, str]:
    """The (site, node) whose bearer token this is; 401 when none matches."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token:
        for known, owner in config.evidence.tokens().items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                return owner
    raise EvidenceError(
        401, messages.EVIDENCE_TOKEN_INVALID, headers={"WWW-Authenticate": "Bearer"}
    )


def _event_for(*, session: Session, event_id: str, uploader: tuple[str, str]) -> Event:
    event = session.scalar(sa.select(Event).where(Event.event_id == event_id))
    if event is None:
        raise EvidenceError(404, messages.EVIDENCE_EVENT_UNKNOWN)
    if (event.site, event.node) != uploader:
        raise EvidenceError(
            403,
            messages.EVIDENCE_WRONG_NODE.format(
                token_node="/".join(uploader), event_node=f"{event.site}/{event.node}"
            ),
        )
    return event


def _stored(*, session: Session, event_id: str, name: str) -> EvidenceFile | None:
    return session.scalar(
        sa.select(EvidenceFile).where(EvidenceFile.event_id == event_id, EvidenceFile.name == name)
    )


def _partial(config: CentralConfig, event_id: str, name: str) -> Path:
    return config.evidence_dir / ".partial" / event_id / f"{name}.part"


def upload_status(
    *, session: Session, config: CentralConfig, event_id: str, name: str, uploader: tuple[str, str]
) -> UploadStatus:
    """Bytes held of one file, for the node to resume from."""
    _event_for(session=session, event_id=event_id, uploader=uploader)
    row = _stored(session=session, event_id=event_id, name=name)
    if row is not None:
        return UploadStatus(row.size, True)
    part = _partial(config, event_id, name)
    return UploadStatus(part.stat().st_size if part.exists() else 0, False)


def _check_listed(event: Event, name: str, sha256: str, total: int) -> None:
    """When the event lists its evidence, an upload must be one of those files."""
    refs: list[dict[str, Any]] = (event.payload or {}).get("evidence") or []
    if refs and not any(
        r.get("name") == name and r.get("sha256") == sha256 and r.get("size") == total for r in refs
    ):
        raise EvidenceError(422, messages.EVIDENCE_NOT_LISTED)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def receive_chunk(
    *,
    session: Session,
    config: CentralConfig,
    event_id: str,
    name: str,
    uploader: tuple[str, str],
    chunk: ChunkRange,
    sha256: str,
    body: bytes,
    now: datetime,
) -> UploadStatus:
    """Append one chunk; on the last one check the whole file's sha256 and store it."""
    if not _SHA256.match(sha256):
        raise EvidenceError(400, messages.EVIDENCE_BAD_HASH_HEADER)
    if chunk.total > config.evidence.max_file_mb * 1e6:
        raise EvidenceError(
            413, messages.EVIDENCE_TOO_LARGE.format(limit_mb=config.evidence.max_file_mb)
        )
    if len(body) != chunk.end - chunk.start + 1:
        raise EvidenceError(
            400, messages.EVIDENCE_BAD_RANGE.format(detail=f"body has {len(body)} bytes")
        )
    event = _event_for(session=session, event_id=event_id, uploader=uploader)
    _check_listed(event, name, sha256, chunk.total)
    row = _stored(session=session, event_id=event_id, name=name)
    if row is not None:
        if row.sha256 != sha256:
            raise EvidenceError(409, messages.EVIDENCE_EXISTS)
        return UploadStatus(row.size, True)
    part = _partial(config, event_id, name)
    with _WRITE_LOCK:
        part.parent.mkdir(parents=True, exist_ok=True)
        held = part.stat().st_size if part.exists() else 0
        if chunk.start > held:
            raise EvidenceError(
                409,
                messages.EVIDENCE_OFFSET.format(received=held),
                headers={"Upload-Offset": str(held)},
            )
        with part.open("r+b" if part.exists() else "wb") as f:
            f.truncate(chunk.start)  # a resent chunk replaces what followed it
            f.seek(chunk.start)
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        if chunk.end + 1 < chunk.total:
            return UploadStatus(chunk.end + 1, False)
        actual = _sha256_of(part)
        if actual != sha256:
            part.unlink(missing_ok=True)
            log.warning(
                "evidence %s/%s from %s refused: sha256 %s, expected %s",
                event_id,
                name,
                "/".join(uploader),
                actual,
                sha256,
            )
            raise EvidenceError(
                422, messages.EVIDENCE_HASH_MISMATCH, headers={"X-Evidence-Error": HASH_MISMATCH}
            )
        relative = Path(event.site) / event.node / event_id / name
        final = config.evidence_dir / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
    session.add(
        EvidenceFile(
            event_id=event_id,
            name=name,
            sha256=sha256,
            size=chunk.total,
            path=relative.as_posix(),
            received_at=now,
        )
    )
    session.commit()
    log.info("evidence %s/%s stored (%d bytes)", event_id, name, chunk.total)
    return UploadStatus(chunk.total, True)


async def read_body(request: Request, *, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it grows past `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise EvidenceError(413, messages.EVIDENCE_TOO_LARGE.format(limit_mb=limit / 1e6))
        parts.append(piece)
    return b"".join(parts)


def evidence_file(
    *, session: Session, config: CentralConfig, event_id: str, name: str
) -> Path | None:
    """The stored image of an event, or None."""
    row = _stored(session=session, event_id=event_id, name=name)
    if row is None:
        return None
    path = config.evidence_dir / row.path
    return path if path.is_file() else None
