"""Staff accounts for the API tests: fixed tokens, the config that knows them, auth headers."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.config import CentralConfig, token_sha256

# Test tokens only; a station makes its own with central.config.new_staff_token().
TOKENS = {
    "王五": "staff-token-wangwu-0123456789abcdef",
    "赵六": "staff-token-zhaoliu-fedcba9876543210",
    "钱七": "staff-token-qianqi-00112233445566778",  # xiazhuhu only
}
SITES = {"钱七": ["xiazhuhu"]}


def staff_accounts(known_sites: Collection[str] = ()) -> list[dict[str, object]]:
    """The `staff:` config entries of the test accounts (token hashes, never tokens); a token
    limited to sites is left out unless `known_sites` (the config's sites) has them, as the
    config refuses a token limited to a site it does not know."""
    return [
        {"name": n, "token_sha256": token_sha256(t), "sites": SITES.get(n, [])}
        for n, t in TOKENS.items()
        if all(site in known_sites for site in SITES.get(n, []))
    ]


def with_staff(config: CentralConfig) -> CentralConfig:
    """The config with the test staff accounts added (validated again, like a loaded file)."""
    data = config.model_dump(mode="json")
    data["staff"] = staff_accounts(config.sites)
    return CentralConfig.model_validate(data)


def auth(name: str = "王五") -> dict[str, str]:
    """The Authorization header of a test staff member."""
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@contextmanager
def staff_client(
    config: CentralConfig, session_factory: sessionmaker[Session], name: str = "王五"
) -> Iterator[TestClient]:
    """The API as a staff member calls it; commands to nodes count as taken by the broker."""
    app = create_app(
        config=with_staff(config),
        session_factory=session_factory,
        send_command=lambda topic, payload: True,
    )
    with TestClient(app, headers=auth(name)) as test_client:
        yield test_client
