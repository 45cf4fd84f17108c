"""MQTT topic builders and parsers: the only place a WildWatch topic string is spelled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "wildwatch"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"

# Site and node ids are lower-case slugs so that they are safe in topics, file names and ACLs.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_ID_RE = re.compile(ID_PATTERN)


class TopicKind(StrEnum):
    """What a node publishes (event, heartbeat, status) or receives (command)."""

    EVENT = "event"
    HEARTBEAT = "heartbeat"
    STATUS = "status"
    COMMAND = "cmd"


class TopicError(ValueError):
    """A topic that is not part of the contract."""


def valid_id(value: str) -> bool:
    """True when `value` is usable as a site or node id."""
    return bool(_ID_RE.match(value))


def _check_id(value: str, what: str) -> str:
    if not valid_id(value):
        raise TopicError(f"invalid {what} id {value!r}: must match {ID_PATTERN}")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed contract topic: wildwatch/v1/<site>/<node>/<kind>."""

    site: str
    node: str
    kind: TopicKind

    def __str__(self) -> str:
        return f"{PREFIX}/{self.site}/{self.node}/{self.kind.value}"

    @classmethod
    def build(cls, site: str, node: str, kind: TopicKind) -> Topic:
        """Build a topic after checking the ids."""
        return cls(_check_id(site, "site"), _check_id(node, "node"), kind)

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse a concrete topic string, raising TopicError when it is not in the contract."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != ROOT or parts[1] != VERSION:
            raise TopicError(f"topic {topic!r} is not {PREFIX}/<site>/<node>/<kind>")
        try:
            kind = TopicKind(parts[4])
        except ValueError as exc:
            raise TopicError(f"unknown topic kind {parts[4]!r} in {topic!r}") from exc
        return cls.build(parts[2], parts[3], kind)


def event_topic(site: str, node: str) -> str:
    """Topic a node publishes its events on."""
    return str(Topic.build(site, node, TopicKind.EVENT))


def heartbeat_topic(site: str, node: str) -> str:
    """Topic a node publishes its heartbeat/health on."""
    return str(Topic.build(site, node, TopicKind.HEARTBEAT))


def status_topic(site: str, node: str) -> str:
    """Retained online/offline topic of a node (also its last will)."""
    return str(Topic.build(site, node, TopicKind.STATUS))


def command_topic(site: str, node: str) -> str:
    """Topic central sends commands to one node on."""
    return str(Topic.build(site, node, TopicKind.COMMAND))


def subscription(kind: TopicKind, *, site: str = "+", node: str = "+") -> str:
    """Wildcard subscription for one kind of message, e.g. all events of all nodes."""
    return f"{PREFIX}/{site}/{node}/{kind.value}"


def shared_subscription(group: str, kind: TopicKind) -> str:
    """MQTT 5 shared subscription so several central workers split the load."""
    if not valid_id(group):
        raise TopicError(f"invalid share group {group!r}")
    return f"$share/{group}/{subscription(kind)}"
