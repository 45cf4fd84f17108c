"""Central start-up: the FastAPI app factory and the service running ingest, alerts and API."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import CommandName, CommandPayload
from broker.topics import command_topic
from broker.validate import encode
from central import express, messages, nodes, web
from central.alerts import SmsBackend, make_backend
from central.alerts.dispatcher import AlertDispatcher
from central.alerts.pager import Pager
from central.api.deps import CommandSender
from central.api.routes import datasets as dataset_routes
from central.api.routes import events, evidence, health, records, releases, reports, sms
from central.cases import CaseError
from central.config import CentralConfig
from central.db.migrate import upgrade
from central.db.models import Event
from central.db.session import make_engine, make_session_factory
from central.ingest import IngestCounters, Ingestor
from central.reports.delivery import Courier
from central.schemas import ValidationProblem

log = logging.getLogger(__name__)

# Waiting for the database at start-up (PostgreSQL may still be booting): doubling pauses.
DB_WAIT_MIN_S = 0.5
DB_WAIT_MAX_S = 15.0
DB_WAIT_TOTAL_S = 120.0
BROKER_WAIT_S = 10.0

# Where a request value came from, left out of the summary people read ("limit", not "query.limit").
_SOURCES = {"query", "path", "header", "cookie", "body"}
# Routes with inputs document the 422 the handler below sends instead of FastAPI's own.
_VALIDATION_RESPONSES: dict[int | str, dict[str, object]] = {
    422: {"model": ValidationProblem, "description": messages.REQUEST_INVALID.format(problems="…")}
}


def create_app(
    *,
    config: CentralConfig,
    session_factory: sessionmaker[Session],
    send_command: CommandSender | None = None,
    pager: Pager | None = None,
) -> FastAPI:
    """Build the API around the given config, database sessions and (optionally) the way to
    send a command to a node over MQTT."""
    app = FastAPI(title=messages.API_TITLE, docs_url="/docs", openapi_url="/openapi.json")
    app.state.config = config
    app.state.session_factory = session_factory
    app.state.send_command = send_command
    app.state.pager = pager
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(CaseError, _record_refused)
    app.include_router(health.router)
    app.include_router(events.router, responses=_VALIDATION_RESPONSES)
    app.include_router(evidence.router, responses=_VALIDATION_RESPONSES)
    app.include_router(releases.router, responses=_VALIDATION_RESPONSES)
    app.include_router(sms.router)
    app.include_router(reports.router)
    app.include_router(records.router, responses=_VALIDATION_RESPONSES)
    app.include_router(dataset_routes.router, responses=_VALIDATION_RESPONSES)
    sms.redact_access_log()
    # pages and scripts compressed (htmx 52 KB → 17 KB on a 4G link); JPEGs are left as they are
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    web.install(app)
    return app


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 with a summary people can read, Chinese first, in `detail`; the errors
    themselves, as FastAPI reports them, under `errors`."""
    if not isinstance(exc, RequestValidationError):  # registered for that class only
        raise exc
    errors = jsonable_encoder(exc.errors())
    problems = "; ".join(f"{_where(e.get('loc', ()))}: {e.get('msg', '')}" for e in errors)
    return JSONResponse(
        status_code=422,
        content={"detail": messages.REQUEST_INVALID.format(problems=problems), "errors": errors},
    )


async def _record_refused(_request: Request, exc: Exception) -> JSONResponse:
    """A case or patrol record refused by central/cases.py (unknown species or site, a bad
    photo): 422 with the reason, Chinese first, for the API and the console's forms alike. The
    request's session closes uncommitted, so nothing of the refused record is kept."""
    return JSONResponse(status_code=422, content={"detail": str(exc)})


def _where(loc: list[object] | tuple[object, ...]) -> str:
    """'limit' for ('query', 'limit'), 'items.0.x' for ('body', 'items', 0, 'x')."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in _SOURCES:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "-"


def _upgrade_with_retry(database_url: str) -> None:
    delay, deadline = DB_WAIT_MIN_S, time.monotonic() + DB_WAIT_TOTAL_S
    while True:
        try:
            upgrade(database_url)
            return
        except OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database not reachable yet (%s); retrying in %.1fs", exc.orig, delay)
            time.sleep(delay)
            delay = min(delay * 2, DB_WAIT_MAX_S)


class CentralService:
    """Runs the migration, the ingest workers, the alert dispatcher and (optionally) HTTP."""

    def __init__(
        self,
        config: CentralConfig,
        *,
        sms_backend: SmsBackend | None = None,
        serve_http: bool = True,
    ) -> None:
        self.config = config
        self._sms_backend = sms_backend
        self._serve_http = serve_http
        self.engine: sa.Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None
        self.dispatcher: AlertDispatcher | None = None
        self.pager: Pager | None = None
        self.courier: Courier | None = None
        self.ingestors: list[Ingestor] = []
        self.app: FastAPI | None = None
        self._http: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._monitor_stop = threading.Event()
        self._monitor_thread: threading.Thread | None = None
        self.resend_requests = 0  # resend commands published since start

    def start(self) -> None:
        """Start everything in order: database, alerts, ingest, HTTP."""
        cfg = self.config
        # 1. Database: wait for it, then bring the schema to head.
        _upgrade_with_retry(cfg.database_url)
        self.engine = make_engine(cfg.database_url)
        self.session_factory = make_session_factory(self.engine)
        # 2. Alerts: send whatever a previous run committed but did not get out, including what
        #    it was sending when it stopped.
        backend = self._sms_backend or make_backend(cfg)
        self.dispatcher = AlertDispatcher(
            config=cfg, session_factory=self.session_factory, backend=backend
        )
        self.dispatcher.recover_interrupted()
        self.dispatcher.send_pending()
        # 2b. The duty pager (roster, escalation, acknowledgement), when configured.
        if cfg.alerts.escalation is not None:
            from central.alerts.pager import make_providers

            self.pager = Pager(
                config=cfg,
                session_factory=self.session_factory,
                providers=make_providers(cfg),
            )
            self.dispatcher.pager = self.pager
            self.pager.start()
        # 3. Ingest: one connection and worker per configured worker.
        self.ingestors = [
            Ingestor.from_config(
                config=cfg,
                session_factory=self.session_factory,
                dispatcher=self.dispatcher,
                worker=n,
            )
            for n in range(cfg.mqtt.workers)
        ]
        for ingestor in self.ingestors:
            ingestor.start()
        if not all(i.wait_connected(BROKER_WAIT_S) for i in self.ingestors):
            log.warning(
                "broker %s:%s not reachable yet; ingest keeps retrying",
                cfg.mqtt.host,
                cfg.mqtt.port,
            )
        # 3b. The daily report to the bureau (draft notice, cut-off, retries), when configured.
        if cfg.report.delivery is not None:
            self.courier = Courier(config=cfg, session_factory=self.session_factory)
            self.courier.start()
        # 4. Supervision: offline nodes, missing sequence ranges, SMS to try again.
        self._monitor_stop.clear()
        self._monitor_thread = threading.Thread(target=self._monitor, name="monitor", daemon=True)
        self._monitor_thread.start()
        # 5. HTTP API in a background thread.
        self.app = create_app(
            config=cfg,
            session_factory=self.session_factory,
            send_command=self.send_command,
            pager=self.pager,
        )
        if self._serve_http:
            self._http = uvicorn.Server(
                uvicorn.Config(self.app, host=cfg.http.host, port=cfg.http.port, log_level="info")
            )
            self._http_thread = threading.Thread(target=self._http.run, name="http", daemon=True)
            self._http_thread.start()
        log.info(
            "central started: %d ingest worker(s), db %s", len(self.ingestors), self.engine.url
        )

    def _monitor(self) -> None:
        interval = self.config.monitor.check_interval_s
        while not self._monitor_stop.wait(interval):
            self.supervise()

    def supervise(self) -> None:
        """One monitor round: node checks, then SMS due for another try. A failing step is
        logged and tried again next round; it never ends the monitor or skips the other."""
        for step in (self.check_nodes, self.retry_alerts, self.express_clock):
            try:
                step()
            except SQLAlchemyError as exc:  # the database is away: the next round tries again
                log.warning("%s failed: %s", step.__name__, exc)
            except Exception:  # a bug must not end supervision (and with it the SMS retries)
                log.exception("%s failed", step.__name__)

    def express_clock(self, now: datetime | None = None) -> None:
        """Express reports: reminders at 60 and 90 minutes, written at their 2-hour deadline."""
        assert self.session_factory is not None
        with self.session_factory.begin() as session:
            express.tick(
                session=session,
                now=now or datetime.now(UTC),
                out_dir=self.config.report_dir / "express",
                tz=ZoneInfo(self.config.timezone),
                config=self.config,
            )

    def retry_alerts(self) -> None:
        """Send SMS still pending and failed ones whose pause is over (see AlertDispatcher)."""
        assert self.dispatcher is not None
        self.dispatcher.send_pending()

    def send_command(self, topic: str, payload: bytes) -> bool:
        """Publish a command to a node (QoS 1); False when no ingest link acknowledged it."""
        return bool(self.ingestors) and self.ingestors[0].publish(topic, payload)

    def check_nodes(self) -> None:
        """One supervision round: raise outage events, ask nodes to resend missing events."""
        assert self.session_factory is not None and self.dispatcher is not None
        mon, now = self.config.monitor, datetime.now(UTC)
        with self.session_factory.begin() as session:
            raised = nodes.mark_silent_offline(
                session=session, now=now, offline_after_s=mon.offline_after_s
            )
            for event in raised:
                log.warning("node %s/%s offline: %s", event.site, event.node, event.message_en)
                self.dispatcher.enqueue(session, event=event)
            requests = nodes.claim_gap_requests(
                session=session,
                now=now,
                grace_s=mon.gap_grace_s,
                interval_s=mon.resend_interval_s,
                max_requests=mon.max_resend_requests,
            )
        if raised:
            self.dispatcher.send_pending()
        for req in requests:
            command = CommandPayload(
                site=req.site,
                node=req.node,
                command=CommandName.RESEND,
                from_seq=req.from_seq,
                to_seq=req.to_seq,
                sent_at=now,
            )
            log.info(
                "asking %s/%s to resend seq %d..%d", req.site, req.node, req.from_seq, req.to_seq
            )
            if self.ingestors and self.ingestors[0].publish(
                command_topic(req.site, req.node), encode(command)
            ):
                self.resend_requests += 1

    def stored_events(self) -> int:
        """Number of events in the database (all workers, all runs)."""
        if self.session_factory is None:
            return 0
        with self.session_factory() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(Event)) or 0)

    @property
    def counters(self) -> IngestCounters:
        """Ingest counters summed over the workers."""
        total = IngestCounters()
        for ingestor in self.ingestors:
            total.add(ingestor.counters)
        return total

    def stop(self) -> None:
        """Stop in reverse order; unacknowledged messages stay with the broker."""
        if self.courier is not None:
            self.courier.stop()
            self.courier = None
        if self.pager is not None:
            self.pager.stop()
            self.pager = None
        self._monitor_stop.set()
        if self._monitor_thread is not None:
            self._monitor_thread.join(10)
            self._monitor_thread = None
        if self._http is not None:
            self._http.should_exit = True
            if self._http_thread is not None:
                self._http_thread.join(10)
            self._http = self._http_thread = None
        for ingestor in self.ingestors:
            ingestor.stop()
        self.ingestors = []
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def serve(config: CentralConfig) -> None:
    """Run central until SIGINT or SIGTERM."""
    done = threading.Event()

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received, stopping", signum)
        done.set()

    previous = {s: signal.signal(s, _signal) for s in (signal.SIGINT, signal.SIGTERM)}
    service = CentralService(config)
    try:
        service.start()
        done.wait()
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
