"""登录 / 退出: log in with name and password (throttled), log out."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from central import accounts
from central.api.deps import ConfigDep, SessionDep
from central.web.deps import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CsrfAccountDep,
    render,
)

log = logging.getLogger(__name__)
router = APIRouter()
throttle = accounts.LoginThrottle()


def _safe_next(value: str | None) -> str:
    # only our own paths: never "//host" or "https://..." (open redirect)
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _login_page(
    request: Request, config: ConfigDep, next_url: str, error: str = "", status: int = 200
) -> Response:
    token = secrets.token_urlsafe(32)
    response: Response = render(
        request,
        "login.html",
        config,
        None,
        status_code=status,
        next_url=next_url,
        error=error,
        login_csrf=token,
    )
    # double-submit cookie: there is no session yet to hold the token
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, config: ConfigDep, next: str | None = None) -> Response:
    return _login_page(request, config, _safe_next(next))


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    config: ConfigDep,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = _safe_next(next)
    if not accounts.same_token(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE, "\0")):
        return _login_page(
            request, config, target, "页面已过期，请重试 page expired: try again", 403
        )
    address = request.client.host if request.client else "-"
    wait = throttle.retry_after(name=name, address=address)
    if wait > 0:
        log.warning("login for %r from %s refused: too many failures", name, address)
        minutes = int(wait // 60) + 1
        return _login_page(
            request,
            config,
            target,
            f"失败次数过多，请 {minutes} 分钟后再试 too many failed logins: wait {minutes} min",
            429,
        )
    user = accounts.authenticate(session=session, name=name, password=password)
    if user is None:
        throttle.failed(name=name, address=address)
        session.commit()
        log.warning("failed login for %r from %s", name, address)
        return _login_page(request, config, target, "用户名或密码错误 wrong name or password", 401)
    throttle.succeeded(name=name, address=address)
    token = accounts.open_session(session=session, user=user, now=datetime.now(UTC))
    session.commit()
    log.info("%s logged in from %s", name, address)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(accounts.SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, account: CsrfAccountDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        accounts.close_session(session=session, token=token)
        session.commit()
    log.info("%s logged out", account.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
