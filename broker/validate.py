"""Pure validators: raw topic + bytes in, a typed payload or a ContractError with the reason."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from broker.payloads import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    CommandPayload,
    EventPayload,
    HeartbeatPayload,
    StatusPayload,
)
from broker.topics import Topic, TopicError, TopicKind

PAYLOAD_TYPES: dict[TopicKind, type[BaseModel]] = {
    TopicKind.EVENT: EventPayload,
    TopicKind.HEARTBEAT: HeartbeatPayload,
    TopicKind.STATUS: StatusPayload,
    TopicKind.COMMAND: CommandPayload,
}


class ContractError(ValueError):
    """A message that breaks the contract; `reason` is short and safe to store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode_json(payload: bytes) -> object:
    """Decode JSON bytes with a size limit."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"not UTF-8 JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # an over-long integer, nesting deeper than Python
        raise ContractError(f"JSON too deep or too large: {str(exc)[:200]}") from exc


def parse_message(topic: str, payload: bytes) -> tuple[Topic, BaseModel]:
    """Validate one message against the contract, including that it is addressed consistently.

    The site and node inside the payload must equal the ones in the topic, so a node cannot speak
    for another one even if the broker ACL were misconfigured.
    """
    try:
        parsed = Topic.parse(topic)
    except TopicError as exc:
        raise ContractError(str(exc)) from exc
    model = PAYLOAD_TYPES.get(parsed.kind)
    if model is None:
        raise ContractError(f"no payload is defined for topic kind {parsed.kind.value!r}")
    data = decode_json(payload)
    if not isinstance(data, dict):
        raise ContractError("payload is not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ContractError(f"unsupported schema_version {version!r} (expected {SCHEMA_VERSION})")
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(_short(exc)) from exc
    site, node = getattr(obj, "site"), getattr(obj, "node")  # noqa: B009 - all payloads carry them
    if (site, node) != (parsed.site, parsed.node):
        raise ContractError(
            f"payload says site/node {site}/{node} but arrived on {parsed.site}/{parsed.node}"
        )
    return parsed, obj


def encode(payload: BaseModel) -> bytes:
    """Serialise a payload for the wire (compact UTF-8 JSON, Chinese kept readable)."""
    return payload.model_dump_json(exclude_none=True).encode("utf-8")
