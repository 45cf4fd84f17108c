"""Publish stage: drain the outbox to the broker; an entry leaves only after its PUBACK."""

from edge.publish.commands import CommandHandler
from edge.publish.drain import Publisher

__all__ = ["CommandHandler", "Publisher"]
