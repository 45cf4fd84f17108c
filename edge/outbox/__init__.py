"""Outbox stage: every event is committed to local disk before anything is sent."""

from edge.outbox.sqlite import Outbox, OutboxEntry, is_disk_full

__all__ = ["Outbox", "OutboxEntry", "is_disk_full"]
