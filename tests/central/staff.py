"""Staff accounts for the API tests: fixed tokens, the config that knows them, auth headers."""

from __future__ import annotations

from central.config import CentralConfig, token_sha256

# Test tokens only; a station makes its own with central.config.new_staff_token().
TOKENS = {
    "王五": "staff-token-wangwu-0123456789abcdef",
    "赵六": "staff-token-zhaoliu-fedcba9876543210",
}


def staff_accounts() -> list[dict[str, str]]:
    """The `staff:` config entries of the test accounts (token hashes, never tokens)."""
    return [{"name": n, "token_sha256": token_sha256(t)} for n, t in TOKENS.items()]


def with_staff(config: CentralConfig) -> CentralConfig:
    """The config with the test staff accounts added (validated again, like a loaded file)."""
    data = config.model_dump(mode="json")
    data["staff"] = staff_accounts()
    return CentralConfig.model_validate(data)


def auth(name: str = "王五") -> dict[str, str]:
    """The Authorization header of a test staff member."""
    return {"Authorization": f"Bearer {TOKENS[name]}"}
