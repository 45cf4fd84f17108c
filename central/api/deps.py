"""Request dependencies as Annotated aliases; the app factory puts their sources on app.state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from central import evidence, messages
from central.accounts import Scope
from central.config import CentralConfig, StaffConfig

log = logging.getLogger(__name__)


def get_db(request: Request) -> Iterator[Session]:
    """A session per request from the factory the app was built with."""
    with request.app.state.session_factory() as session:
        yield session


def get_config(request: Request) -> CentralConfig:
    """The configuration the app was built with."""
    config: CentralConfig = request.app.state.config
    return config


CommandSender = Callable[[str, bytes], bool]


def get_command_sender(request: Request) -> CommandSender:
    """Publishes a command to a node; 503 when this server has no MQTT link."""
    sender: CommandSender | None = request.app.state.send_command
    if sender is None:
        raise HTTPException(503, detail=messages.NO_BROKER)
    return sender


def get_command_sender_or_none(request: Request) -> CommandSender | None:
    """The command sender, or None when this server has no MQTT link (the caller decides)."""
    sender: CommandSender | None = request.app.state.send_command
    return sender


SessionDep = Annotated[Session, Depends(get_db)]
ConfigDep = Annotated[CentralConfig, Depends(get_config)]

# auto_error=False: a missing or malformed header gets our 401 (Chinese first), not FastAPI's 403.
staff_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffToken",
    description="工作人员令牌 / staff token (config `staff[].token_sha256` holds its sha256)",
)


def get_current_staff(
    request: Request,
    config: ConfigDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(staff_bearer)],
) -> StaffConfig:
    """The staff member whose bearer token the request carries; 401 without a known one."""
    member = config.staff_for_token(credentials.credentials) if credentials else None
    if member is None:
        client = request.client.host if request.client else "-"
        log.warning(
            "staff token refused for %s %s from %s", request.method, request.url.path, client
        )
        raise HTTPException(
            401, detail=messages.STAFF_TOKEN_INVALID, headers={"WWW-Authenticate": "Bearer"}
        )
    return member


def get_staff_scope(staff: Annotated[StaffConfig, Depends(get_current_staff)]) -> Scope:
    """The sites the staff token may see (its `sites`, or every site)."""
    return Scope(frozenset(staff.sites) if staff.sites else None)


StaffScope = Annotated[Scope, Depends(get_staff_scope)]


def get_uploader(
    config: ConfigDep, authorization: Annotated[str | None, Header()] = None
) -> tuple[str, str]:
    """The (site, node) an evidence upload token belongs to; 401 without a known token."""
    try:
        return evidence.authenticate(config=config, authorization=authorization)
    except evidence.EvidenceError as exc:
        raise HTTPException(exc.status, detail=exc.detail, headers=exc.headers) from exc


CurrentStaff = Annotated[StaffConfig, Depends(get_current_staff)]
UploaderDep = Annotated[tuple[str, str], Depends(get_uploader)]
CommandDep = Annotated[CommandSender, Depends(get_command_sender)]
