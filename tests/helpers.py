"""Helpers shared by the tests: a real mosquitto process, free ports, waiting."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], bool], timeout_s: float = 20.0, interval_s: float = 0.05
) -> bool:
    """Poll `predicate` until it is true or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


class FakeClock:
    """A monotonic clock that moves only when the test says so: pass it where code takes a
    `clock`, then `advance()` instead of sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        assert seconds >= 0, "a monotonic clock does not go back"
        self.now += seconds


def wait_port(port: int, timeout_s: float = 10.0) -> bool:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""

    def _open() -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0

    return wait_for(_open, timeout_s)


class MosquittoServer:
    """A real mosquitto broker on loopback, restartable, with its own config and persistence."""

    def __init__(self, workdir: Path, port: int, extra_conf: str = "") -> None:
        self.workdir = workdir
        self.port = port
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        # Run as root, mosquitto drops to the 'mosquitto' user, which cannot write its
        # persistence file or log into pytest's private (0700) folders: keep root here.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            run_as + f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 0\n"
            "log_type error\nlog_type warning\n"
            f"log_dest file {self.log}\n" + extra_conf
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start mosquitto and wait until it listens."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_port(self.port):
            raise RuntimeError(
                f"mosquitto did not start on port {self.port}: {self.log.read_text()}"
            )

    def freeze(self) -> None:
        """Stop the broker's process without closing its sockets (SIGSTOP): connections stay
        up but nothing is answered, as with a hung broker or a link that black-holes."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Let a frozen broker run again (SIGCONT)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop mosquitto (it saves its persistence file on a clean stop)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


def clear_retained_statuses(port: int, timeout_s: float = 10.0) -> int:
    """Delete every retained node status on a broker; returns how many there were.

    The broker sends the retained statuses right after its SUBACK, ahead of anything published
    later, so a message this cleaner sends itself on a private topic after the SUBACK arrives
    after all of them: once it is back, every retained status has been seen.
    """
    from broker.client import BrokerAddress, Message, MqttLink
    from broker.topics import TopicKind, subscription

    client_id = f"cleaner-{time.monotonic_ns()}"
    marker = f"wildwatch-test/{client_id}/synced"
    seen: list[str] = []
    synced: queue.Queue[bytes] = queue.Queue()

    def keep(message: Message) -> None:
        if message.retain and message.payload:
            seen.append(message.topic)

    link = MqttLink(client_id, BrokerAddress("127.0.0.1", port), clean_session=True)
    link.subscribe(subscription(TopicKind.STATUS), keep)
    link.subscribe(marker, lambda m: synced.put(m.payload))
    link.start()
    try:
        if not link.wait_subscribed(timeout_s):
            raise AssertionError(f"cleaner: no SUBACK from the broker on port {port}")
        link.publish(marker, b"synced")
        try:
            synced.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(
                f"cleaner: its own marker never came back from the broker on port {port}"
            ) from None
        for topic in list(seen):
            if not link.publish(topic, b"", retain=True).wait(timeout_s):
                raise AssertionError(f"cleaner: the broker did not acknowledge clearing {topic}")
    finally:
        link.stop()
    return len(seen)
