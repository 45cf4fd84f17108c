"""What console pages depend on: the logged-in account, the CSRF check, the templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from broker.payloads import RuleName, Severity
from central import accounts
from central.api.deps import ConfigDep, SessionDep
from central.review import DismissReason
from central.web import labels
from models.species import RISK_GROUPS

SESSION_COOKIE = "ww_session"
LOGIN_CSRF_COOKIE = "ww_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals.update(
    labels=labels,
    Severity=Severity,
    RuleName=RuleName,
    DismissReason=DismissReason,
    dismiss_labels={r.value: r.label for r in DismissReason},
    risk_groups=RISK_GROUPS,
    alert_states=labels.ALERT_STATES,
    message_states=labels.MESSAGE_STATES,
)


class LoginRequired(Exception):
    """No live session: pages redirect to the login page, fragments and files answer 401."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


class Forbidden(Exception):
    """The account may not do this (e.g. a bureau viewer reviewing)."""


def get_account(request: Request, session: SessionDep) -> accounts.Account:
    token = request.cookies.get(SESSION_COOKIE)
    account = (
        accounts.account_for(session=session, token=token, now=datetime.now(UTC)) if token else None
    )
    if account is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(quote(target, safe="/"))
    return account


AccountDep = Annotated[accounts.Account, Depends(get_account)]


async def check_csrf(request: Request, account: AccountDep) -> accounts.Account:
    """The account, once the request proved it comes from one of our pages (synchroniser token
    in a form field or, for htmx, a header)."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not accounts.same_token(given, account.csrf_token):
        raise CsrfRefused()
    return account


CsrfAccountDep = Annotated[accounts.Account, Depends(check_csrf)]


def reviewer(account: CsrfAccountDep) -> accounts.Account:
    if not account.role.may_review:
        raise Forbidden()
    return account


ReviewerDep = Annotated[accounts.Account, Depends(reviewer)]


def render(
    request: Request,
    name: str,
    config: ConfigDep,
    account: accounts.Account | None,
    status_code: int = 200,
    **context: Any,
) -> Any:
    """A page or fragment, with what every template uses."""
    tz = ZoneInfo(config.timezone)
    return templates.TemplateResponse(
        request,
        name,
        {
            "account": account,
            "tz": tz,
            "site_names": {k: v.name_zh for k, v in config.sites.items()},
            "catalogue": config.species_catalogue,
            "csrf_field": CSRF_FIELD,
            **context,
        },
        status_code=status_code,
    )
