"""GET /healthz: the process is up and the database answers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import SQLAlchemyError

from central import messages
from central.api.deps import SessionDep
from central.schemas import HealthPublic

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz(session: SessionDep) -> HealthPublic:
    """200 with status ok when the database is reachable, 503 otherwise."""
    try:
        session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable: %s", exc)
        raise HTTPException(status_code=503, detail=messages.DB_UNAVAILABLE) from exc
    return HealthPublic(status="ok", database="ok", time=datetime.now(UTC))
