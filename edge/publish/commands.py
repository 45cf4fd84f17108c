"""Commands from central to the node: `resend` requeues what the outbox still holds of a range,
`background` masks a box, `update` looks for a new model release."""

from __future__ import annotations

import logging
from collections.abc import Callable

from broker.client import Message
from broker.payloads import CommandName, CommandPayload
from broker.validate import ContractError, parse_message
from edge.outbox import Outbox, is_disk_full
from edge.publish.drain import Publisher
from edge.rules.state import RuleState

log = logging.getLogger(__name__)


class CommandHandler:
    """Handles messages on the node's command topic (subscribe `handle` to it)."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        publisher: Publisher,
        rule_state: RuleState | None = None,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._rule_state = rule_state
        self._on_update = on_update  # wakes the release updater (edge/updater.py)
        self.resent = 0  # events requeued because central asked
        self.backgrounds = 0  # boxes marked as scenery by a person
        self.failed = 0  # valid commands that could not be carried out

    def handle(self, message: Message) -> None:
        """Validate one command and carry it out; a bad command is logged and ignored, one that
        fails (a full disk) is logged as not carried out and counted in `failed`."""
        try:
            _topic, payload = parse_message(message.topic, message.payload)
        except ContractError as exc:
            log.warning("ignoring command on %s: %s", message.topic, exc.reason)
            return
        if not isinstance(payload, CommandPayload):
            return
        try:
            self._carry_out(payload)
        except Exception as exc:
            # Central repeats a resend request while its gap stays open; a background mark must
            # be given again. Either way the operator reads here what did not happen.
            self.failed += 1
            if is_disk_full(exc):
                log.error(
                    "command %s not carried out: data disk full (%s)", _describe(payload), exc
                )
            else:
                log.exception("command %s not carried out", _describe(payload))

    def _carry_out(self, payload: CommandPayload) -> None:
        if payload.command is CommandName.UPDATE:
            if self._on_update is None:
                log.warning("update command ignored: no `updates` section in the node config")
            else:
                log.info("central asked to look for a new model release")
                self._on_update()
        if payload.command is CommandName.BACKGROUND:
            self._background(payload)
        if payload.command is CommandName.RESEND:
            assert payload.from_seq is not None and payload.to_seq is not None  # validated
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

    def _background(self, payload: CommandPayload) -> None:
        assert payload.camera is not None and payload.box is not None  # validated
        if self._rule_state is None:
            log.warning("background command for %s ignored: no rule state", payload.camera)
            return
        b = payload.box
        self._rule_state.mark_background(payload.camera, (b.x, b.y, b.w, b.h), payload.sent_at)
        self.backgrounds += 1


def _describe(payload: CommandPayload) -> str:
    """A command in a few words for the log: `resend seq 3..9 from central`."""
    if payload.command is CommandName.RESEND:
        return f"resend seq {payload.from_seq}..{payload.to_seq} from central"
    if payload.command is CommandName.BACKGROUND:
        return f"background for camera {payload.camera} from central"
    return f"{payload.command.value} from central"
