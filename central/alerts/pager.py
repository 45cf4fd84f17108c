"""The duty pager: runs the alert lifecycle (central/alerting.py) against the roster and sends
its notifications through the configured providers (central/alerts/sender.py).

Ingest calls `observe` inside the transaction that stores the event, so an anomaly and its
alert commit together. A thread calls `run_once` every second: due escalation steps, sending,
lost uncertain sends, and now and then a pull of receipts. Provider callbacks (receipts and the
duty officers' replies) come in through `on_receipt` and `on_reply`; a modem is a device the
pager looks after itself: opened at start and again after it drops, its replies and status
reports collected every round.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import EventPayload
from central import alerting
from central.alerts.providers import DeviceProvider, ProviderError, Receipt, Reply, SmsProvider
from central.alerts.sender import Caps, Sender, apply_receipt, recover_interrupted, retry_lost
from central.config import CentralConfig
from central.db.models import AlertNotification

log = logging.getLogger(__name__)

RUN_EVERY_S = 1.0
PULL_RECEIPTS_EVERY = timedelta(minutes=5)


def _person(session: Session, who: str) -> tuple[str, str | None]:
    """The name to tell others and the phone of whoever `who` is (a console user's name, or a
    phone number): the display name, or `who` itself for a number nobody has."""
    from central.alerting import _phone_forms
    from central.db.models import User

    user = session.scalar(
        sa.select(User).where(sa.or_(User.name == who, User.phone.in_(_phone_forms(who))))
    )
    if user is None:
        return who, None
    return user.display_name or user.name, user.phone


def make_providers(config: CentralConfig) -> list[SmsProvider]:
    """The configured providers, in order (each module imported only when configured)."""
    providers: list[SmsProvider] = []
    for kind, settings in config.alerts.provider_settings():
        if kind == "file":
            from central.alerts.file import FileProvider

            providers.append(FileProvider(settings.path))  # type: ignore[attr-defined]
        elif kind == "aliyun":
            from central.alerts.aliyun import AliyunProvider, AliyunSettings

            assert isinstance(settings, AliyunSettings)
            providers.append(AliyunProvider(settings))
        elif kind == "tencent":
            from central.alerts.tencent import TencentProvider, TencentSettings

            assert isinstance(settings, TencentSettings)
            providers.append(TencentProvider(settings))
        elif kind == "modem":
            from central.alerts.modem import ModemProvider, ModemSettings

            assert isinstance(settings, ModemSettings)
            providers.append(ModemProvider(settings))
    return providers


class Pager:
    """Escalation, sending and acknowledgement for one central."""

    def __init__(
        self,
        *,
        config: CentralConfig,
        session_factory: sessionmaker[Session],
        providers: Sequence[SmsProvider],
    ) -> None:
        assert config.alerts.escalation is not None, "the pager needs alerts.escalation"
        self.config = config
        self.escalation = config.alerts.escalation
        self.tz = ZoneInfo(config.timezone)
        self.session_factory = session_factory
        self.providers = list(providers)
        self.sender = Sender(
            self.providers,
            site_names={k: v.name_zh for k, v in config.sites.items()},
            tz=self.tz,
            caps=Caps(per_number_per_day=config.alerts.daily_cap_per_number),
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        # the earliest step due after the last round's time (one that was due then and is
        # still waiting failed, and is tried again at the next round, a second later)
        self._next_due: datetime | None = None
        self._thread: threading.Thread | None = None
        self._last_pull = datetime.min.replace(tzinfo=UTC)
        self.devices = [p for p in self.providers if isinstance(p, DeviceProvider)]
        self._device_tried: dict[int, datetime] = {}  # index in devices: last open attempt
        self._device_receipts_since = datetime.now(UTC)  # wall clock: devices stamp receipts so
        self._replies_waiting: list[Reply] = []  # taken from a device, not yet handled
        self.device_opens = 0  # successful opens after the first (the modem came back)

    def observe(self, session: Session, event: EventPayload, now: datetime) -> bool:
        """Join or open the event's alert in the caller's transaction; True when it pages."""
        return (
            alerting.observe(session=session, event=event, config=self.escalation, now=now)
            is not None
        )

    def wake(self) -> None:
        """Run the next round now instead of within RUN_EVERY_S (ingest calls this after it
        committed an event that joined or opened an alert)."""
        self._wake.set()

    def run_once(self, now: datetime | None = None) -> int:
        """One round: due steps, then sending; returns how many messages went out."""
        now = now or datetime.now(UTC)
        self.tend_devices(now)
        self.collect_from_devices(now)
        with self.session_factory.begin() as session:
            alerting.tick(session=session, config=self.escalation, now=now, tz=self.tz)
            retry_lost(session, now)
            self._next_due = alerting.next_due(session, after=now)
        sent = self.sender.send_pending(self.session_factory, now)
        if now - self._last_pull >= PULL_RECEIPTS_EVERY:
            self._last_pull = now
            self.pull_receipts(now)
        return sent

    def tend_devices(self, now: datetime) -> None:
        """Open each device that is not alive, at most once per its reopen_every_s."""
        for index, device in enumerate(self.devices):
            if device.alive:
                continue
            last = self._device_tried.get(index)
            if last is not None and now - last < timedelta(seconds=device.reopen_every_s):
                continue
            self._device_tried[index] = now
            with contextlib.suppress(Exception):
                device.close()  # what is left of the last connection: threads, the port
            try:
                device.start()
            except ProviderError as exc:
                log.warning(
                    "%s cannot be opened (%s); next try in %g s",
                    device.key,
                    exc,
                    device.reopen_every_s,
                )
                continue
            if last is not None:
                self.device_opens += 1
                log.warning("%s is back and open again", device.key)

    def collect_from_devices(self, now: datetime) -> None:
        """The replies and status reports the devices received since the last round."""
        wall = datetime.now(UTC)
        since, self._device_receipts_since = (
            self._device_receipts_since - timedelta(seconds=5),
            wall,
        )
        for device in self.devices:
            self._replies_waiting.extend(device.replies())
            if device.alive:
                for receipt in device.receipts(since=since, phones=[]):
                    self.on_receipt(receipt, now)  # a receipt seen twice changes nothing
        while self._replies_waiting:
            self.on_reply(self._replies_waiting[0], now)  # raises: kept for the next round
            self._replies_waiting.pop(0)

    def pull_receipts(self, now: datetime) -> int:
        """Ask each provider for the receipts of the last day's messages it has not settled."""
        since = now - timedelta(days=1)
        found = 0
        for provider in self.providers:
            if provider in self.devices:
                continue  # collected every round
            with self.session_factory() as session:
                phones = sorted(
                    set(
                        session.scalars(
                            sa.select(AlertNotification.phone).where(
                                AlertNotification.provider == provider.key,
                                AlertNotification.state.in_(["submitted", "uncertain"]),
                                AlertNotification.created_at >= since,
                            )
                        )
                    )
                )
            if not phones:
                continue
            try:
                receipts = provider.receipts(since=since, phones=phones)
            except Exception as exc:  # a provider away must not stop the pager
                log.warning("receipts from %s: %s", provider.key, exc)
                continue
            for receipt in receipts:
                found += self.on_receipt(receipt, now)
        return found

    def on_receipt(self, receipt: Receipt, now: datetime) -> bool:
        with self.session_factory.begin() as session:
            return apply_receipt(session, receipt, now)

    def on_reply(self, reply: Reply, now: datetime) -> alerting.Acknowledged | None:
        """A duty officer's SMS reply: "1 <code>" takes the alert; everyone already told about
        it is told who took it. Other replies are logged and kept nowhere else."""
        code = alerting.parse_reply(reply.text)
        if code is None:
            log.info("reply from %s is not an acknowledgement: %r", reply.phone, reply.text)
            return None
        return self.acknowledge(by=reply.phone, now=now, code=code, phone=reply.phone)

    def acknowledge(
        self,
        *,
        by: str,
        now: datetime,
        code: str | None = None,
        phone: str | None = None,
        alert_id: int | None = None,
    ) -> alerting.Acknowledged | None:
        """Take an alert: by id (the console's button) or by the code a paged number replied."""
        with self.session_factory.begin() as session:
            # what the others are told and the console shows; their own phone is not told
            by, own_phone = _person(session, by)
            taken = alerting.acknowledge(
                session=session,
                by=by,
                now=now,
                code=code,
                phone=phone,
                alert_id=alert_id,
                own_phone=own_phone,
            )
            if taken is None:
                log.info("acknowledgement %s by %s matches no open alert", code or alert_id, by)
                return None
            for phone in taken.notify:
                session.add(
                    AlertNotification(
                        alert_id=taken.alert_id,
                        step=-1,
                        round=0,
                        user_name=by,
                        phone=phone,
                        template="ack_notice",
                        reference=str(uuid.uuid4()),
                        state="pending",
                        created_at=now,
                    )
                )
        log.info("alert %d acknowledged by %s", taken.alert_id, by)
        return taken

    def start(self) -> None:
        now = datetime.now(UTC)
        with self.session_factory.begin() as session:
            recover_interrupted(session, now)
        self.tend_devices(now)  # a modem missing at start is no reason not to start
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for device in self.devices:
            with contextlib.suppress(Exception):
                device.close()

    def _loop(self) -> None:
        while True:
            # every RUN_EVERY_S, sooner when a step falls due before that or ingest wakes it
            pause = RUN_EVERY_S
            if self._next_due is not None:
                until = (self._next_due - datetime.now(UTC)).total_seconds()
                pause = min(pause, max(until, 0.0))
            self._wake.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except Exception:  # the next round tries again; a bug must not end paging
                log.exception("pager round failed")
