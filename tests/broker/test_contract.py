"""The wire contract: topics and payload validation, good and malformed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.payloads import CommandPayload, EventPayload, HeartbeatPayload, StatusPayload
from broker.topics import Topic, TopicError, TopicKind, event_topic, shared_subscription
from broker.validate import ContractError, encode, parse_message

TOPIC = "wildwatch/v1/changxing/cx-node-01/event"


def event_dict(**over: Any) -> dict[str, Any]:
    """A valid event as a JSON-ready dict."""
    base: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "seq": 7,
        "site": "changxing",
        "node": "cx-node-01",
        "camera": "cx-cam-01",
        "kind": "anomaly",
        "category": "person",
        "captured_at": "2026-11-22T02:13:00+08:00",
        "created_at": "2026-11-22T02:13:01+08:00",
        "rule": "night_intrusion",
        "severity": "alert",
        "count": 1,
        "confidence": 0.86,
        "boxes": [
            {
                "x": 0.1,
                "y": 0.2,
                "w": 0.3,
                "h": 0.4,
                "category": "person",
                "label": "person",
                "confidence": 0.86,
            }
        ],
        "message_zh": "夜间02:13在cx-cam-01发现1个人员，疑似盗猎",
    }
    base.update(over)
    return base


def raw(d: dict[str, Any]) -> bytes:
    return json.dumps(d, ensure_ascii=False).encode()


def test_topic_round_trip() -> None:
    t = Topic.build("changxing", "cx-node-01", TopicKind.EVENT)
    assert str(t) == TOPIC == event_topic("changxing", "cx-node-01")
    assert Topic.parse(TOPIC) == t
    assert (
        shared_subscription("central", TopicKind.EVENT) == "$share/central/wildwatch/v1/+/+/event"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "wildwatch/v1/a/b",
        "wildwatch/v2/a/b/event",
        "x/v1/a/b/event",
        "wildwatch/v1/A B/b/event",
        "wildwatch/v1/a/b/other",
        "wildwatch/v1/+/b/event",
    ],
)
def test_bad_topics_rejected(bad: str) -> None:
    with pytest.raises(TopicError):
        Topic.parse(bad)


def test_valid_event_parses_and_round_trips() -> None:
    topic, ev = parse_message(TOPIC, raw(event_dict()))
    assert isinstance(ev, EventPayload)
    assert topic.kind is TopicKind.EVENT
    assert ev.captured_at == datetime(2026, 11, 21, 18, 13, tzinfo=UTC)
    again = parse_message(TOPIC, encode(ev))[1]
    assert again == ev


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (raw(event_dict(schema_version=2)), "unsupported schema_version 2"),
        (
            raw({k: v for k, v in event_dict().items() if k != "schema_version"}),
            "unsupported schema_version None",
        ),
        (raw(event_dict(seq="many")), "seq"),
        (raw(event_dict(seq=0)), "seq"),
        (raw(event_dict(confidence=1.5)), "confidence"),
        (raw(event_dict(event_id="not-a-uuid")), "event_id"),
        (raw(event_dict(captured_at="2026-11-22T02:13:00")), "captured_at"),
        (raw(event_dict(rule=None)), "must name the rule"),
        (raw(event_dict(unexpected=1)), "unexpected"),
        (raw(event_dict(site="xiazhuhu")), "arrived on changxing/cx-node-01"),
        (raw(event_dict(message_zh="长" * 5000)), "message_zh"),
        (raw(event_dict(boxes=[event_dict()["boxes"][0]] * 500)), "boxes"),
        (b"{" + b'"a":' * 10 + b"1}", "not UTF-8 JSON"),
        (b" " * 300_000, "exceeds"),
    ],
)
def test_malformed_events_rejected_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_message(TOPIC, payload)
    assert reason in err.value.reason


def test_heartbeat_and_status() -> None:
    hb = HeartbeatPayload(
        site="xiazhuhu",
        node="xz-node-01",
        sent_at=datetime.now(UTC),
        uptime_s=12.5,
        outbox_depth=3,
        software_version="0.1.0",
        cameras={"xz-cam-01": "ok"},
    )
    _, back = parse_message("wildwatch/v1/xiazhuhu/xz-node-01/heartbeat", encode(hb))
    assert back == hb
    will = StatusPayload(site="xiazhuhu", node="xz-node-01", state="offline")
    _, st = parse_message("wildwatch/v1/xiazhuhu/xz-node-01/status", encode(will))
    assert isinstance(st, StatusPayload) and st.state == "offline" and st.at is None
    with pytest.raises(ContractError, match="command: Field required"):
        parse_message("wildwatch/v1/xiazhuhu/xz-node-01/cmd", encode(will))


def test_resend_command_round_trips_and_checks_its_range() -> None:
    cmd = CommandPayload(site="xiazhuhu", node="xz-node-01", command="resend", from_seq=4, to_seq=6)
    _, back = parse_message("wildwatch/v1/xiazhuhu/xz-node-01/cmd", encode(cmd))
    assert back == cmd
    with pytest.raises(ValueError, match="to_seq is before from_seq"):
        CommandPayload(site="xiazhuhu", node="xz-node-01", command="resend", from_seq=6, to_seq=4)


@pytest.mark.parametrize("raw", [b"1" * 5000, b"[" * 100_000, b'{"a":' * 50_000])
def test_json_that_breaks_the_decoder_is_a_contract_error(raw: bytes) -> None:
    with pytest.raises(ContractError, match="too deep or too large"):
        parse_message("wildwatch/v1/xiazhuhu/xz-node-01/event", raw)


def test_background_command_needs_camera_and_box() -> None:
    from broker.payloads import CommandPayload

    topic = "wildwatch/v1/changxing/cx-node-01/cmd"
    ok = {
        "schema_version": 1,
        "site": "changxing",
        "node": "cx-node-01",
        "command": "background",
        "camera": "cam1",
        "box": {
            "x": 0.1,
            "y": 0.2,
            "w": 0.3,
            "h": 0.4,
            "category": "bird",
            "label": "bird",
            "confidence": 0.9,
        },
    }
    _, cmd = parse_message(topic, raw(ok))
    assert isinstance(cmd, CommandPayload) and cmd.box is not None and cmd.box.w == 0.3
    with pytest.raises(ContractError, match="background needs camera and box"):
        parse_message(topic, raw({k: v for k, v in ok.items() if k != "box"}))
    with pytest.raises(ContractError, match="resend needs from_seq"):
        parse_message(topic, raw({**ok, "command": "resend"}))


HEARTBEAT_TOPIC = "wildwatch/v1/changxing/cx-node-01/heartbeat"


def heartbeat_dict(**over: Any) -> dict[str, Any]:
    """A valid heartbeat as a JSON-ready dict."""
    base: dict[str, Any] = {
        "schema_version": 1,
        "site": "changxing",
        "node": "cx-node-01",
        "sent_at": "2026-11-22T02:13:00+08:00",
        "uptime_s": 12.5,
        "outbox_depth": 0,
        "last_seq": 7,
        "software_version": "0.1.0",
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        # Schema-valid before, but no column could take them: the ingest stalled on them.
        (TOPIC, raw(event_dict(captured_at="0001-01-01T00:00:00+08:00")), "captured_at"),
        (TOPIC, raw(event_dict(created_at="9999-12-31T23:00:00-08:00")), "created_at"),
        (TOPIC, raw(event_dict(captured_until="2100-01-01T00:00:00+00:00")), "captured_until"),
        (TOPIC, raw(event_dict(captured_at="1969-12-31T23:59:59+00:00")), "captured_at"),
        (HEARTBEAT_TOPIC, raw(heartbeat_dict(last_seq=2**64)), "last_seq"),
        (HEARTBEAT_TOPIC, raw(heartbeat_dict(outbox_depth=2**63)), "outbox_depth"),
        (HEARTBEAT_TOPIC, raw(heartbeat_dict(sent_at="0001-01-01T00:00:00+08:00")), "sent_at"),
        (HEARTBEAT_TOPIC, json.dumps(heartbeat_dict(uptime_s=float("inf"))).encode(), "uptime_s"),
        (TOPIC, json.dumps(event_dict(confidence=float("nan"))).encode(), "confidence"),
        (TOPIC, raw(event_dict(seq=2**63)), "seq"),
        (
            "wildwatch/v1/changxing/cx-node-01/status",
            raw(
                {
                    "schema_version": 1,
                    "site": "changxing",
                    "node": "cx-node-01",
                    "state": "online",
                    "at": "0001-01-01T00:00:00+08:00",
                }
            ),
            "at",
        ),
    ],
)
def test_values_no_database_column_takes_are_contract_errors(
    topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(ContractError) as err:
        parse_message(topic, payload)
    assert err.value.reason.startswith(reason)


@pytest.mark.parametrize(
    "when",
    [
        "1970-01-01T08:00:00+08:00",  # a Raspberry Pi before network time: the Unix epoch
        "2000-01-01T00:00:00+08:00",  # a camera trap whose clock was reset
        "2099-12-31T23:59:59+00:00",
    ],
)
def test_odd_but_storable_times_are_accepted(when: str) -> None:
    _, ev = parse_message(TOPIC, raw(event_dict(captured_at=when, created_at=when)))
    assert isinstance(ev, EventPayload) and ev.captured_at == datetime.fromisoformat(when)
    _, hb = parse_message(HEARTBEAT_TOPIC, raw(heartbeat_dict(sent_at=when, last_seq=2**62)))
    assert isinstance(hb, HeartbeatPayload) and hb.last_seq == 2**62
