"""Request dependencies as Annotated aliases; the app factory puts their sources on app.state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from central.config import CentralConfig


def get_db(request: Request) -> Iterator[Session]:
    """A session per request from the factory the app was built with."""
    with request.app.state.session_factory() as session:
        yield session


def get_config(request: Request) -> CentralConfig:
    """The configuration the app was built with."""
    config: CentralConfig = request.app.state.config
    return config


SessionDep = Annotated[Session, Depends(get_db)]
ConfigDep = Annotated[CentralConfig, Depends(get_config)]
