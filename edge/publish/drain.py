"""The outbox drainer: QoS 1 publishes in sequence order with a bounded in-flight window."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from broker.client import MqttLink, PublishHandle
from edge.outbox import Outbox
from edge.watchdog import Stage

log = logging.getLogger(__name__)

# In-flight window: more hides link latency, fewer means less to resend after a reconnect.
WINDOW = 100
# A publish not acknowledged this long after it was handed over is sent again (the broker may
# have lost the session); the central store makes the copy harmless.
RESEND_AFTER_S = 60.0
IDLE_WAIT_S = 0.2


@dataclass
class _InFlight:
    handle: PublishHandle
    sent_at: float


class Publisher:
    """Background thread that moves events from the outbox to the broker."""

    def __init__(self, outbox: Outbox, link: MqttLink, *, resend_after_s: float = RESEND_AFTER_S):
        self._outbox = outbox
        self._link = link
        self._resend_after_s = resend_after_s
        self._inflight: dict[int, _InFlight] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._rewind = threading.Event()
        self.published = 0  # acknowledged by the broker since start
        self.stage = Stage("publisher")  # one drain step at a time (the watchdog reads it)
        # since when events have been in flight, connected, without any acknowledgement
        self._waiting_since: float | None = None

    def start(self) -> None:
        """Start draining."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the current step; unacknowledged entries stay in the outbox."""
        self._stop.set()
        self._thread.join(timeout_s)

    def rewind(self) -> None:
        """Look at the whole outbox again on the next step (entries were requeued)."""
        self._rewind.set()
        self._outbox.wake()

    @property
    def alive(self) -> bool:
        """True while the drain thread runs."""
        return self._thread.is_alive()

    def unacknowledged_for(self, now: float) -> float | None:
        """How long events have waited in flight for an acknowledgement while connected, or
        None when nothing waits or the link is down (offline is not a fault of the outbox)."""
        since = self._waiting_since
        return None if since is None else now - since

    def drained(self) -> bool:
        """True when nothing is stored or in flight."""
        return not self._inflight and self._outbox.depth() == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.stage.working():
                    busy = self.step()
            except Exception:  # keep draining whatever one step hit; the entry stays stored
                log.exception("publisher step failed")
                busy = False
            if not busy:
                self._outbox.wait_for_new(IDLE_WAIT_S)

    def step(self) -> bool:
        """Collect acknowledgements and hand new entries to the link; True when work was done."""
        done = [seq for seq, f in self._inflight.items() if f.handle.acknowledged()]
        if done:
            self._outbox.remove(done)
            for seq in done:
                del self._inflight[seq]
            self.published += len(done)
        now = time.monotonic()
        stale = [s for s, f in self._inflight.items() if now - f.sent_at > self._resend_after_s]
        for seq in stale:
            log.warning(
                "event seq %s not acknowledged after %.0fs, sending again",
                seq,
                self._resend_after_s,
            )
            del self._inflight[seq]
        # Handed over while the link was dropping: send again (a copy paho still sends is harmless).
        failed = [s for s, f in self._inflight.items() if f.handle.failed()]
        for seq in failed:
            del self._inflight[seq]
        stale += failed
        if not self._link.connected:
            self._waiting_since = None
            return bool(done)
        room = WINDOW - len(self._inflight)
        if room <= 0:
            if done:
                self._waiting_since = now
            return bool(done)
        after = max(self._inflight, default=0)
        rewind = self._rewind.is_set()
        self._rewind.clear()
        if after and (stale or rewind):  # earlier entries are unsent again: start from the oldest
            entries = self._outbox.pending(after_seq=0, limit=WINDOW)
            entries = [e for e in entries if e.seq not in self._inflight][:room]
        else:
            entries = self._outbox.pending(after_seq=after, limit=room)
        for e in entries:
            self._inflight[e.seq] = _InFlight(self._link.publish(e.topic, e.payload, qos=1), now)
        # an acknowledgement is progress; a resend is not (a broker that never acknowledges)
        if not self._inflight:
            self._waiting_since = None
        elif done or self._waiting_since is None:
            self._waiting_since = now
        return bool(done or entries)
