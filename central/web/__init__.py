"""The staff console (站务控制台): server-rendered pages (Jinja2, autoescaped) with htmx, served
by central itself with every script, style and font vendored (works without internet).

Pages: 待处理 review queue (`pages/queue.py`), 事件 browse and export (`pages/events.py`),
站点与设备 status (`pages/status.py`), evidence images and thumbnails (`pages/media.py`), login
(`pages/auth.py`). Accounts and sessions: `central/accounts.py`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from central.web.deps import CsrfRefused, Forbidden, LoginRequired
from central.web.pages import (
    alerts,
    auth,
    cases,
    datasets,
    events,
    media,
    queue,
    reports,
    roster,
    stats,
    status,
)

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the console's pages, its static files and its error answers to the app."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (
        auth,
        queue,
        datasets,
        events,
        media,
        status,
        stats,
        reports,
        cases,
        roster,
        alerts,
    ):
        app.include_router(module.router, include_in_schema=False)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(Forbidden, _forbidden)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if request.headers.get("HX-Request") or request.url.path.startswith("/media/"):
        # htmx follows the header to the login page; an <img> simply gets no picture
        return PlainTextResponse(
            "请先登录 login required", status_code=401, headers={"HX-Redirect": "/login"}
        )
    return RedirectResponse(f"/login?next={exc.next_url}", status_code=303)


async def _csrf_refused(_request: Request, _exc: Exception) -> Response:
    return JSONResponse(
        {"detail": "请求来源无法验证，请刷新页面后重试 CSRF token missing or wrong: reload"},
        status_code=403,
    )


async def _forbidden(_request: Request, _exc: Exception) -> Response:
    return JSONResponse({"detail": "无权执行此操作 not allowed for your role"}, status_code=403)
