"""systemd liveness: READY=1 once the node is up, WATCHDOG=1 only while every stage is healthy.

The unit (hardware/systemd/wildwatch-edge.service) is `Type=notify` with `WatchdogSec`. systemd
restarts the node when the pings stop, so a ping must mean the pipeline works, not only that the
process exists: each worker thread is watched (alive; not stuck on one unit of work longer than
`stall_s`), and the outbox must be moving while the broker is connected. A healthy idle node
pings too: an empty drop folder is not a fault.

The notification protocol (sd_notify(3)) is one datagram of `KEY=value` lines sent to the
AF_UNIX socket named by $NOTIFY_SOCKET. It is spoken directly here: the `sdnotify` package is a
wrapper of the same ten lines (last release 2017), and `systemd-python` would need libsystemd's
headers and a compiler on every Pi.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
PINGS_PER_PERIOD = 3  # ping three times per WatchdogSec: one lost wake-up is not a restart


class WatchdogSettings(BaseModel):
    """When the node stops vouching for itself (systemd then restarts it)."""

    model_config = ConfigDict(extra="forbid")

    stall_s: float = Field(
        600.0,
        ge=1,
        le=86400,
        description="a stage busy with one unit of work (a file, a frame, a publish round) this "
        "long, or an outbox that moves nothing this long while the broker is connected, is "
        "hung: the watchdog pings stop. A 60 s clip takes about a minute on a Pi 4",
    )
    ready_wait_s: float = Field(
        10.0,
        ge=0,
        le=600,
        description="at start, wait this long for the broker before READY=1; without it the "
        "node reports ready anyway and works offline (the outbox keeps every event)",
    )


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify datagram (`READY=1`, `WATCHDOG=1\\nSTATUS=...`); False when the
    process is not under a notify-type systemd service or the socket refuses it."""
    env = os.environ if environ is None else environ
    address = env.get(NOTIFY_SOCKET_ENV)
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("systemd notification %r not sent: %s", message.split("\n")[0], exc)
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings asked by systemd (WatchdogSec / 3), or None when it asks none."""
    env = os.environ if environ is None else environ
    usec = env.get(WATCHDOG_USEC_ENV, "")
    pid = env.get(WATCHDOG_PID_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid.isdigit() and int(pid) != os.getpid():  # meant for another process
        return None
    return int(usec) / 1e6 / PINGS_PER_PERIOD


class Stage:
    """One worker's unit of work: `with stage.working():` around it, `touch()` at each step of
    a long one (each file of a backlog). Busy longer than the stall limit means hung."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._since: float | None = None

    @contextmanager
    def working(self) -> Iterator[None]:
        """Mark the stage busy for the block."""
        self._since = time.monotonic()
        try:
            yield
        finally:
            self._since = None

    def touch(self) -> None:
        """A new step of the current work began: the stall clock starts again."""
        self._since = time.monotonic()

    def busy_for(self, now: float) -> float | None:
        """How long the current step has run, or None when the stage is idle."""
        since = self._since
        return None if since is None else now - since


Check = Callable[[float], str | None]  # monotonic now -> what is wrong, or None when healthy


@dataclass(frozen=True, slots=True)
class _Watched:
    name: str
    check: Check


class Liveness:
    """The node's health as systemd sees it: checks of every stage, pinged while all pass."""

    def __init__(self, settings: WatchdogSettings, environ: Mapping[str, str] | None = None):
        self.settings = settings
        self._env = dict(os.environ if environ is None else environ)
        self._checks: list[_Watched] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: Callable[[], str] = lambda: ""
        self._reported: tuple[str, ...] = ()
        self.pings = 0

    # -- what is watched -------------------------------------------------------------------------
    def add(self, name: str, check: Check) -> None:
        """Watch anything with a check of its own (e.g. the outbox moving)."""
        self._checks.append(_Watched(name, check))

    def thread(self, name: str, alive: Callable[[], bool]) -> None:
        """Watch a worker thread that must never end while the node runs."""
        self.add(name, lambda _now: None if alive() else f"{name} thread has died")

    def stage(self, stage: Stage, alive: Callable[[], bool]) -> None:
        """Watch a worker thread and its unit of work (not stuck longer than stall_s)."""
        limit = self.settings.stall_s

        def check(now: float) -> str | None:
            if not alive():
                return f"{stage.name} thread has died"
            busy = stage.busy_for(now)
            if busy is not None and busy > limit:
                return f"{stage.name} stuck on one unit of work for {busy:.0f} s"
            return None

        self.add(stage.name, check)

    def problems(self, now: float | None = None) -> list[str]:
        """What is wrong now (empty: healthy); a check that raises counts as a problem."""
        at = time.monotonic() if now is None else now
        found = []
        for watched in self._checks:
            try:
                problem = watched.check(at)
            except Exception as exc:  # a broken check must not pass for a healthy stage
                problem = f"{watched.name}: check failed: {exc}"
            if problem is not None:
                found.append(problem)
        return found

    # -- talking to systemd ----------------------------------------------------------------------
    def ready(self, status: Callable[[], str]) -> None:
        """Tell systemd the node is up, and ping from now on while healthy (when asked to)."""
        self._status = status
        notify(f"READY=1\nSTATUS={status()}", self._env)
        interval = watchdog_interval_s(self._env)
        if interval is None:
            return
        log.info("systemd watchdog: pinging every %.1f s while every stage is healthy", interval)
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="watchdog", daemon=True
        )
        self._thread.start()

    def stopping(self) -> None:
        """Stop pinging and tell systemd the node is shutting down on purpose."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        notify("STOPPING=1", self._env)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.tick()

    def tick(self) -> bool:
        """One round: ping when healthy, else report once and stay silent; True when pinged."""
        problems = tuple(self.problems())
        if problems:
            if problems != self._reported:
                log.error(
                    "node unhealthy, systemd watchdog pings stopped (it restarts the node): %s",
                    "; ".join(problems),
                )
                notify("STATUS=不健康 / unhealthy: " + "; ".join(problems)[:400], self._env)
            self._reported = problems
            return False
        if self._reported:
            log.warning("node healthy again: watchdog pings resume")
            self._reported = ()
        try:
            status = self._status()
        except Exception as exc:  # the status line is decoration; the ping is what matters
            status = f"status unavailable: {exc}"
        notify(f"WATCHDOG=1\nSTATUS={status}", self._env)
        self.pings += 1
        return True
