"""The wire contract between edge nodes and central: topics, payloads, validators, MQTT client."""

from broker.payloads import (
    SCHEMA_VERSION,
    Box,
    EventKind,
    EventPayload,
    HeartbeatPayload,
    Severity,
    SpeciesGuess,
    StatusPayload,
)
from broker.topics import Topic, TopicKind

__all__ = [
    "SCHEMA_VERSION",
    "Box",
    "EventKind",
    "EventPayload",
    "HeartbeatPayload",
    "Severity",
    "SpeciesGuess",
    "StatusPayload",
    "Topic",
    "TopicKind",
]
