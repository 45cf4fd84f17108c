"""Commands from central to the node: `resend` requeues what the outbox still holds of a range."""

from __future__ import annotations

import logging

from broker.client import Message
from broker.payloads import CommandName, CommandPayload
from broker.validate import ContractError, parse_message
from edge.outbox import Outbox
from edge.publish.drain import Publisher

log = logging.getLogger(__name__)


class CommandHandler:
    """Handles messages on the node's command topic (subscribe `handle` to it)."""

    def __init__(self, *, outbox: Outbox, publisher: Publisher) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self.resent = 0  # events requeued because central asked

    def handle(self, message: Message) -> None:
        """Validate one command and carry it out; a bad command is logged and ignored."""
        try:
            _topic, payload = parse_message(message.topic, message.payload)
        except ContractError as exc:
            log.warning("ignoring command on %s: %s", message.topic, exc.reason)
            return
        if not isinstance(payload, CommandPayload):
            return
        if payload.command is CommandName.RESEND:
            seqs = self._outbox.requeue(payload.from_seq, payload.to_seq)
            self.resent += len(seqs)
            log.info(
                "central asked for seq %d..%d again: %d still held, requeued",
                payload.from_seq,
                payload.to_seq,
                len(seqs),
            )
            if seqs:
                self._publisher.rewind()
