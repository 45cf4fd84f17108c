"""How the daily report reaches the bureau (report.delivery in central.yaml): by mail, by HTTP
upload, or both; when the draft is announced, when a site counts as not reported, when an
undelivered report pages the station head. Validated at start-up like the rest of the config."""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Address = Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$", max_length=254)]


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


def secret(env: str | None, what: str) -> str | None:
    """The secret held by environment variable `env` (None when no variable is configured);
    ValueError when the variable is configured but unset, so the server refuses to start."""
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise ValueError(f"{what}: environment variable {env} is not set")
    return value


class SmtpTarget(_Settings):
    """The bureau's mailbox, through the station's mail server (STARTTLS, login)."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = Field(True, description="upgrade to TLS before login (refused if offered not)")
    ca_file: Path | None = Field(
        None, description="CA certificate that signed the mail server's (default: system CAs)"
    )
    username: str | None = Field(None, max_length=254)
    password_env: EnvName | None = Field(None, description="env var holding the password")
    sender: Address = Field(description="From: address")
    to: list[Address] = Field(min_length=1, max_length=20)
    cc: list[Address] = Field(default_factory=list, max_length=20)
    timeout_s: float = Field(30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login_over_tls(self) -> SmtpTarget:
        if self.username and not self.starttls:
            raise ValueError("report.delivery.smtp: a login needs starttls (no password in clear)")
        if self.username and not self.password_env:
            raise ValueError("report.delivery.smtp: username given without password_env")
        return self


class HttpTarget(_Settings):
    """The bureau's upload endpoint: multipart POST with a bearer token and sha256 per file."""

    url: str = Field(pattern=r"^https?://", max_length=2000)
    token_env: EnvName | None = Field(None, description="env var holding the bearer token")
    ca_file: Path | None = Field(None, description="CA for an https endpoint (default: system)")
    timeout_s: float = Field(30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _token_over_tls(self) -> HttpTarget:
        host = urlsplit(self.url).hostname or ""
        if self.token_env and self.url.startswith("http://") and host not in LOOPBACK:
            raise ValueError("report.delivery.http: a token is sent over https only (or loopback)")
        return self


class DeliveryConfig(_Settings):
    """Delivery of each site's daily report to the bureau, with retries and receipts."""

    smtp: SmtpTarget | None = None
    http: HttpTarget | None = None
    draft_at: str = Field(
        "14:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="local time the draft is announced to the station heads (before cut-off)",
    )
    missing_after_minutes: int = Field(
        10,
        ge=1,
        le=600,
        description="after the cut-off: sites not yet delivered are listed "
        "as not reported (未上报) and their heads alerted",
    )
    overdue_after_minutes: int = Field(
        30,
        ge=1,
        le=1440,
        description="after the cut-off: a report still undelivered pages the "
        "station head (送达超时)",
    )
    retry_initial_s: float = Field(30.0, gt=0, le=3600, description="first pause between tries")
    retry_max_s: float = Field(300.0, gt=0, le=3600, description="longest pause (doubling)")

    @model_validator(mode="after")
    def _a_channel(self) -> DeliveryConfig:
        if self.smtp is None and self.http is None:
            raise ValueError("report.delivery needs smtp, http or both")
        return self

    @property
    def draft_time(self) -> time:
        hours, minutes = self.draft_at.split(":")
        return time(int(hours), int(minutes))

    def channels(self) -> list[str]:
        """The configured channels, in the order they are tried."""
        return [name for name in ("smtp", "http") if getattr(self, name) is not None]

    def check_secrets(self) -> None:
        """Every configured secret is set (ValueError names the missing variable)."""
        if self.smtp is not None:
            secret(self.smtp.password_env, "report.delivery.smtp.password_env")
        if self.http is not None:
            secret(self.http.token_env, "report.delivery.http.token_env")
