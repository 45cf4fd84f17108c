"""Request dependencies as Annotated aliases; the app factory puts their sources on app.state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.orm import Session

from central import evidence, messages
from central.config import CentralConfig


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


SessionDep = Annotated[Session, Depends(get_db)]
ConfigDep = Annotated[CentralConfig, Depends(get_config)]


def get_uploader(
    config: ConfigDep, authorization: Annotated[str | None, Header()] = None
) -> tuple[str, str]:
    """The (site, node) an evidence upload token belongs to; 401 without a known token."""
    try:
        return evidence.authenticate(config=config, authorization=authorization)
    except evidence.EvidenceError as exc:
        raise HTTPException(exc.status, detail=exc.detail, headers=exc.headers) from exc


UploaderDep = Annotated[tuple[str, str], Depends(get_uploader)]
CommandDep = Annotated[CommandSender, Depends(get_command_sender)]
