"""Broker → database: validate each message, store it idempotently, commit, then acknowledge.

The paho callback only enqueues; one worker thread drains the queue in batches so a commit covers
many messages. A message is acknowledged to the broker only after the transaction that stored it
(as an event, a node update or a dead letter) committed, so a crash or a database outage means the
broker redelivers it, and the unique event_id makes the redelivery harmless.

Only an unavailable database (central.db.session.database_unavailable) makes a batch wait and
retry. Anything else the database or the driver refuses (an SQLAlchemyError) is blamed on a
message: the batch is stored again one message per transaction and the refused message is
dead-lettered with the reason, so one poisoned message can never hold up the others. Any other
exception is a bug of ours, not of a message: the batch is left unacknowledged, so the broker
delivers it again (after a reconnect) instead of its valid events being set aside.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from broker.client import BrokerAddress, Message, MqttLink
from broker.payloads import EventPayload, HeartbeatPayload, RuleName, StatusPayload
from broker.topics import TopicKind, shared_subscription, subscription
from broker.validate import ContractError, parse_message
from central import crud, nodes
from central.alerts.dispatcher import AlertDispatcher
from central.config import CentralConfig
from central.db.session import database_unavailable
from central.surveillance import evaluate_site, lock_sites
from models.species import Catalogue
from surveillance.settings import MortalityClusterSettings

log = logging.getLogger(__name__)


# Bounded hand-over from paho's thread. The broker already limits unacknowledged messages in flight
# (mosquitto max_inflight_messages), so this only fills if that limit is raised a lot.
QUEUE_MAX = 10_000
PUT_TIMEOUT_S = 5.0
# Bigger batches mean fewer commits. The batch takes what is queued and waits at most
# BATCH_WAIT_S for more: the broker sends only max_inflight_messages (20 by default) before it
# waits for our acks, which come after the commit, so a long wait would only idle both sides.
# Under load batches grow by themselves while the previous commit runs.
BATCH_MAX = 1000
BATCH_WAIT_S = 0.002
# Database outage: retry the same batch, doubling the pause up to the maximum.
RETRY_MIN_S = 0.2
RETRY_MAX_S = 30.0
POLL_S = 0.2


@dataclass
class IngestCounters:
    """What the ingest has done since start (for tests, the demo and /healthz)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    heartbeats: int = 0
    statuses: int = 0
    alerts_queued: int = 0
    db_errors: int = 0

    def add(self, other: IngestCounters) -> None:
        """Add another set of counters to this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class _Item:
    message: Message
    received_at: datetime
    parsed: BaseModel | None = None
    error: str | None = None
    # Set once the item's own transaction committed (one-by-one storing), so a retry after an
    # outage in the middle of the pass neither stores it nor counts it twice.
    outcome: IngestCounters | None = None


@dataclass
class _Batch:
    items: list[_Item] = field(default_factory=list)


class Ingestor:
    """One MQTT connection (persistent session, manual ack) and one storing worker thread."""

    def __init__(
        self,
        *,
        link: MqttLink,
        session_factory: sessionmaker[Session],
        dispatcher: AlertDispatcher | None = None,
        share_group: str | None = None,
        batch_max: int = BATCH_MAX,
        batch_wait_s: float = BATCH_WAIT_S,
        queue_max: int = QUEUE_MAX,
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
        name: str = "ingest",
        clusters: MortalityClusterSettings | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._link = link
        self._session_factory = session_factory
        self._dispatcher = dispatcher
        self._share_group = share_group
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._name = name
        self._clusters = clusters
        self._catalogue = catalogue
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_max)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counters = IngestCounters()

    @classmethod
    def from_config(
        cls,
        *,
        config: CentralConfig,
        session_factory: sessionmaker[Session],
        dispatcher: AlertDispatcher | None = None,
        worker: int = 0,
    ) -> Ingestor:
        """An ingestor with its own MQTT link as the config describes (worker n of mqtt.workers)."""
        mqtt = config.mqtt
        client_id = mqtt.client_id if mqtt.workers == 1 else f"{mqtt.client_id}-{worker}"
        address = BrokerAddress(
            host=mqtt.host,
            port=mqtt.port,
            username=mqtt.username,
            password=mqtt.password.get_secret_value() if mqtt.password else None,
            ca_file=mqtt.ca_file,
        )
        link = MqttLink(
            client_id,
            address,
            clean_session=False,
            manual_ack=True,
            reconnect_min_s=min(1.0, mqtt.reconnect_max_s),
            reconnect_max_s=mqtt.reconnect_max_s,
        )
        return cls(
            link=link,
            session_factory=session_factory,
            dispatcher=dispatcher,
            share_group=mqtt.share_group,
            name=f"ingest-{worker}",
            clusters=config.mortality_cluster,
            catalogue=config.species_catalogue,  # parsed once, when the config was loaded
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe, connect in the background and start the worker thread."""
        for kind in (TopicKind.EVENT, TopicKind.HEARTBEAT):
            topic_filter = (
                shared_subscription(self._share_group, kind)
                if self._share_group
                else subscription(kind)
            )
            self._link.subscribe(topic_filter, self._on_message, qos=1)
        # Shared subscriptions get no retained messages, and the retained status is the point.
        self._link.subscribe(subscription(TopicKind.STATUS), self._on_message, qos=1)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._link.start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until the MQTT link is up and subscribed (True) or the timeout passed."""
        return self._link.wait_subscribed(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch in hand, stop the worker, disconnect; unacked messages redeliver."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._link.stop()

    @property
    def counters(self) -> IngestCounters:
        """A snapshot of the counters."""
        with self._lock:
            snap = IngestCounters()
            snap.add(self._counters)
            return snap

    # -- paho network thread ---------------------------------------------------------------------
    def _on_message(self, message: Message) -> None:
        with self._lock:
            self._counters.received += 1
        try:
            self._queue.put(_Item(message, datetime.now(UTC)), timeout=PUT_TIMEOUT_S)
        except queue.Full:
            # Not acknowledged, so the broker resends it after the next reconnect.
            log.error(
                "ingest queue full; message mid %s on %s left unacked", message.mid, message.topic
            )

    # -- worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            try:
                self._handle(batch)
            except Exception:  # a bug must not silently end ingest; the batch stays unacked
                log.exception("unexpected error handling a batch of %d; left unacked", len(batch))

    def _take_batch(self) -> list[_Item]:
        try:
            first = self._queue.get(timeout=POLL_S)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._batch_wait_s
        while len(batch) < self._batch_max:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list[_Item]) -> None:
        for item in batch:
            try:
                _topic, item.parsed = parse_message(item.message.topic, item.message.payload)
            except ContractError as exc:
                item.error = exc.reason
        delay = self._retry_min_s
        one_by_one = False
        while True:
            # Only what the database or driver raised is sorted here. A bad value reaches us as an
            # SQLAlchemyError too (the contract bounds every integer and time, pydantic refuses
            # unpaired surrogates, a NUL in text is PostgreSQL's DataError); anything else is a
            # bug of ours and leaves the batch unacked (_run) to be delivered again.
            try:
                outcome = self._store_each(batch) if one_by_one else self._store(batch)
                break
            except SQLAlchemyError as exc:  # sorted below: an outage or a message's fault
                if not database_unavailable(exc):
                    if one_by_one:
                        raise  # a dead letter itself was refused: a bug, left unacked
                    log.warning("batch refused (%s); storing one by one", _reason(exc))
                    one_by_one = True
                    continue
                with self._lock:
                    self._counters.db_errors += 1
                log.warning(
                    "database unavailable, retrying batch of %d in %.1fs: %s",
                    len(batch),
                    delay,
                    _reason(exc),
                )
                if self._stop.wait(delay):
                    return  # shutting down: nothing acked, the broker redelivers
                delay = min(delay * 2, self._retry_max_s)
        for item in batch:  # only now, after the commit
            if item.message.qos > 0:
                self._link.ack(item.message.mid, item.message.qos)
        with self._lock:
            self._counters.add(outcome)
        if outcome.alerts_queued and self._dispatcher is not None:
            self._send_alerts()

    def _send_alerts(self) -> None:
        assert self._dispatcher is not None
        try:
            self._dispatcher.send_pending()
        except SQLAlchemyError as exc:  # the rows stay pending and go out on the next round
            log.error("could not send alerts now: %s", exc)

    def publish(self, topic: str, payload: bytes) -> bool:
        """Send a QoS 1 message (a command to a node) on this worker's link; False if not acked."""
        return self._link.publish(topic, payload, qos=1).wait(PUT_TIMEOUT_S)

    def _store(self, batch: list[_Item]) -> IngestCounters:
        """One transaction for the batch; events go in with one multi-row INSERT per chunk."""
        outcome = IngestCounters()
        seqs: dict[tuple[str, str], list[int]] = {}
        with self._session_factory.begin() as session:
            if self._clusters is not None:
                # Before any row lock (heartbeats, node tracking): two workers cannot deadlock.
                lock_sites(session, _death_sites(batch))
            events: dict[str, EventPayload] = {}
            pairs: list[tuple[EventPayload, datetime]] = []
            for item in batch:
                obj = item.parsed
                if not isinstance(obj, EventPayload):
                    self._apply(session, item, outcome)
                elif str(obj.event_id) in events:
                    outcome.duplicates += 1  # the same event twice in one batch (redelivery)
                else:
                    events[str(obj.event_id)] = obj
                    pairs.append((obj, item.received_at))
            new_ids = crud.insert_events(session=session, events=pairs) if pairs else set()
            new = [ev for event_id, ev in events.items() if event_id in new_ids]
            outcome.duplicates += len(events) - len(new)
            for ev in new:
                seqs.setdefault((ev.site, ev.node), []).append(ev.seq)
            self._stored(session, new, outcome)
            self._track(session, seqs)
        return outcome

    def _stored(
        self, session: Session, events: list[EventPayload], outcome: IngestCounters
    ) -> None:
        """What follows storing new events, in their transaction: alerts, cross-node clusters."""
        deaths: dict[str, list[datetime]] = defaultdict(list)
        for event in events:
            outcome.stored += 1
            self._alert(session, event, outcome)
            if event.rule == RuleName.MOTIONLESS_BIRD:
                deaths[event.site].append(event.captured_until or event.captured_at)
        if self._clusters is None:
            return
        # The cross-node view: deaths at one site seen by different nodes. Each site is
        # evaluated once for all its new deaths, not once per death.
        for site, times in sorted(deaths.items()):
            for raised in evaluate_site(
                session, site=site, at=times, config=self._clusters, catalogue=self._catalogue
            ):
                outcome.stored += 1
                self._alert(session, raised, outcome)

    def _alert(self, session: Session, event: EventPayload, outcome: IngestCounters) -> None:
        if self._dispatcher is not None:
            outcome.alerts_queued += self._dispatcher.enqueue(session, event=event)

    @staticmethod
    def _track(session: Session, seqs: dict[tuple[str, str], list[int]]) -> None:
        now = datetime.now(UTC)
        for (site, node), numbers in sorted(seqs.items()):  # one lock order: no deadlocks
            nodes.track_sequences(session=session, site=site, node=node, seqs=numbers, now=now)

    def _store_each(self, batch: list[_Item]) -> IngestCounters:
        """Fallback after the batch was refused: one transaction per message, dead-lettering the
        ones the database or driver refuses. An outage still raises (the caller retries)."""
        for item in batch:
            if item.outcome is not None:
                continue  # committed before an outage interrupted an earlier pass
            one = IngestCounters()
            try:
                with self._session_factory.begin() as session:
                    self._apply(session, item, one)
            except SQLAlchemyError as exc:  # what the database refuses: set the message aside
                if database_unavailable(exc):
                    raise
                log.error(
                    "message mid %s on %s refused, dead-lettered: %s",
                    item.message.mid,
                    item.message.topic,
                    _reason(exc),
                )
                item.parsed, item.error = None, f"refused when stored: {_reason(exc)}"
                one = IngestCounters()
                with self._session_factory.begin() as session:
                    self._apply(session, item, one)
            item.outcome = one
        outcome = IngestCounters()
        for item in batch:
            if item.outcome is not None:
                outcome.add(item.outcome)
        return outcome

    def _apply(self, session: Session, item: _Item, outcome: IngestCounters) -> None:
        """Store one message in `session` (events only in the one-by-one fallback)."""
        msg, obj = item.message, item.parsed
        if obj is None:
            crud.insert_dead_letter(
                session=session,
                topic=msg.topic,
                payload=msg.payload,
                reason=item.error or "unknown",
                received_at=item.received_at,
            )
            outcome.dead_lettered += 1
        elif isinstance(obj, EventPayload):
            if crud.insert_event(session=session, payload=obj, received_at=item.received_at):
                self._stored(session, [obj], outcome)
                self._track(session, {(obj.site, obj.node): [obj.seq]})
            else:
                outcome.duplicates += 1
        elif isinstance(obj, HeartbeatPayload):
            nodes.record_heartbeat(session=session, payload=obj, received_at=item.received_at)
            outcome.heartbeats += 1
        elif isinstance(obj, StatusPayload):
            raised = nodes.record_status(session=session, payload=obj, received_at=item.received_at)
            outcome.statuses += 1
            if raised is not None:
                self._alert(session, raised, outcome)


def _death_sites(batch: list[_Item]) -> set[str]:
    """Sites with a suspected death in the batch (their clusters get evaluated)."""
    return {
        item.parsed.site
        for item in batch
        if isinstance(item.parsed, EventPayload) and item.parsed.rule == RuleName.MOTIONLESS_BIRD
    }


def _reason(exc: BaseException) -> str:
    """A short, storable description of an error (the driver's message, not the SQL)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}"[:500]
