"""Console accounts: roles, what each may see and do, passwords, browser sessions, login throttle.

Passwords are hashed with argon2id through pwdlib (the FastAPI full-stack template's choice).
A browser session is a random token in an HttpOnly cookie; the database keeps only its sha256,
with the session's CSRF token, so a stolen database backup opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from pwdlib import PasswordHash
from sqlalchemy.orm import InstrumentedAttribute, Session

from central.db.models import User, WebSession

SESSION_TTL = timedelta(hours=12)  # one duty shift; then log in again
MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHash.recommended()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("wildwatch-no-such-user")


class Role(StrEnum):
    """What a console user is; labels Chinese first."""

    STAFF = "staff"  # 监测员: their site(s), reviews
    HEAD = "head"  # 站长: their site(s), reviews, signs reports, keeps the roster
    BUREAU = "bureau"  # 省局: every site, read-only
    ADMIN = "admin"  # every site, everything

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]

    @property
    def all_sites(self) -> bool:
        return self in (Role.BUREAU, Role.ADMIN)

    @property
    def may_review(self) -> bool:
        return self is not Role.BUREAU

    @property
    def may_sign(self) -> bool:
        return self in (Role.HEAD, Role.ADMIN)


ROLE_LABELS = {
    Role.STAFF: "监测员 staff",
    Role.HEAD: "站长 station head",
    Role.BUREAU: "省局 bureau",
    Role.ADMIN: "管理员 admin",
}


class AccountError(ValueError):
    """A user cannot be created as asked (message Chinese first)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The sites a user may see: None means every site."""

    sites: frozenset[str] | None

    def allows(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def where(self, column: InstrumentedAttribute[str]) -> list[sa.ColumnElement[bool]]:
        """Conditions restricting a query on `column` (a site column) to this scope."""
        return [] if self.sites is None else [column.in_(sorted(self.sites))]

    def visible(self, sites: Iterable[str]) -> list[str]:
        return [s for s in sites if self.allows(s)]


@dataclass(frozen=True, slots=True)
class Account:
    """The logged-in user as routes and templates see it (detached from the ORM session)."""

    id: int
    name: str
    display_name: str
    role: Role
    scope: Scope
    csrf_token: str
    phone: str | None = None

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(
    *,
    session: Session,
    name: str,
    password: str,
    role: Role,
    sites: Sequence[str],
    known_sites: Iterable[str],
    display_name: str = "",
    phone: str | None = None,
    now: datetime,
) -> User:
    """A new console account; AccountError when the name is taken or the role and sites clash."""
    if not name or len(name) > 64 or not name.isprintable() or name.strip() != name:
        raise AccountError("用户名无效 invalid user name (1-64 printable characters)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"密码太短 password too short: at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(display_name) > 64 or (phone is not None and len(phone) > 32):
        raise AccountError("显示名或电话太长 display name (64) or phone (32) too long")
    known = set(known_sites)
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise AccountError(f"未配置的站点 unknown site(s): {', '.join(unknown)}")
    if role.all_sites and sites:
        raise AccountError(f"{role.label} 可查看全部站点 sees every site: give no --site")
    if not role.all_sites and not sites:
        raise AccountError(f"{role.label} 需要至少一个站点 needs at least one --site")
    if session.scalar(sa.select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"用户已存在 user already exists: {name}")
    user = User(
        name=name,
        display_name=display_name,
        role=role.value,
        sites=sorted(set(sites)),
        phone=phone,
        password_hash=hash_password(password),
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(*, session: Session, name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"密码太短 password too short: at least {MIN_PASSWORD_LENGTH} characters"
        )
    user = session.scalar(sa.select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"无此用户 no such user: {name}")
    user.password_hash = hash_password(password)
    # a new password ends every open session of that user
    session.execute(sa.delete(WebSession).where(WebSession.user_id == user.id))


def set_active(*, session: Session, name: str, active: bool) -> None:
    """Disable (or enable again) an account; disabling ends its open sessions at once."""
    user = session.scalar(sa.select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"无此用户 no such user: {name}")
    user.active = active
    if not active:
        session.execute(sa.delete(WebSession).where(WebSession.user_id == user.id))


def authenticate(*, session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, else None (same cost either way)."""
    user = session.scalar(sa.select(User).where(User.name == name))
    if user is None or not user.active:
        _hasher.verify(password, _DUMMY_HASH)
        return None
    ok, new_hash = _hasher.verify_and_update(password, user.password_hash)
    if not ok:
        return None
    if new_hash is not None:  # parameters strengthened since it was hashed
        user.password_hash = new_hash
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(*, session: Session, user: User, now: datetime) -> str:
    """A new browser session for `user`; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_sha256=_digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    # expired sessions of anyone go when someone logs in
    session.execute(sa.delete(WebSession).where(WebSession.expires_at < now))
    return token


def account_for(*, session: Session, token: str, now: datetime) -> Account | None:
    """The account of a live session token, else None."""
    row = session.execute(
        sa.select(User, WebSession)
        .join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.token_sha256 == _digest(token), WebSession.expires_at > now)
    ).first()
    if row is None:
        return None
    user, web = row
    if not user.active:
        return None
    role = Role(user.role)
    return Account(
        id=user.id,
        name=user.name,
        display_name=user.display_name,
        role=role,
        scope=Scope(None if role.all_sites else frozenset(user.sites)),
        csrf_token=web.csrf_token,
        phone=user.phone,
    )


def close_session(*, session: Session, token: str) -> None:
    session.execute(sa.delete(WebSession).where(WebSession.token_sha256 == _digest(token)))


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


SWEEP_ABOVE = 10_000  # keys kept before a failed login sweeps out the stale ones


class LoginThrottle:
    """Failed logins within a sliding window, counted three ways: per name from one address
    (`limit`, the usual case of a forgotten password or a guesser), per address over all names
    (`address_limit`) and per name over all addresses (`name_limit`, a guesser spreading over
    machines). Over any of them a login is refused (429) until the oldest failure counted leaves
    the window; a success from an address clears that name's count there. Someone else failing
    from another machine therefore cannot lock a station head out of their own desk, except by
    `name_limit` failures. In memory: central runs one process, and keys without failures in the
    window are dropped."""

    def __init__(
        self,
        *,
        limit: int = 5,
        window_s: float = 900.0,
        address_limit: int = 20,
        name_limit: int = 50,
    ) -> None:
        self.window_s = window_s
        self.limits = {"pair": limit, "address": address_limit, "name": name_limit}
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(name: str, address: str) -> list[tuple[str, str]]:
        return [("pair", f"{name}\0{address}"), ("address", address), ("name", name)]

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        q = self._failures.get(key)
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if q is not None and not q:
            del self._failures[key]
            return None
        return q

    def retry_after(self, *, name: str, address: str, now: float | None = None) -> float:
        """Seconds until a login for this name from this address may be tried; 0: now."""
        t = time.monotonic() if now is None else now
        with self._lock:
            waits = []
            for key in self._keys(name, address):
                q = self._recent(key, t)
                if q is not None and len(q) >= self.limits[key[0]]:
                    waits.append(q[0] + self.window_s - t)
            return max(waits, default=0.0)

    def prune(self, now: float | None = None) -> None:
        """Drop every key whose failures have all left the window."""
        t = time.monotonic() if now is None else now
        with self._lock:
            for key in list(self._failures):
                self._recent(key, t)

    def failed(self, *, name: str, address: str, now: float | None = None) -> None:
        t = time.monotonic() if now is None else now
        if len(self._failures) > SWEEP_ABOVE:
            self.prune(t)
        with self._lock:
            for key in self._keys(name, address):
                self._recent(key, t)
                self._failures.setdefault(key, deque()).append(t)

    def succeeded(self, *, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop(("pair", f"{name}\0{address}"), None)

    def __len__(self) -> int:
        """Keys with failures kept (bounded by the failures of one window)."""
        return len(self._failures)
