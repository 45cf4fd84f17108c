"""Helpers shared by the tests: a real mosquitto process, free ports, waiting."""

from __future__ import annotations

import os
import shutil
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

    def stop(self) -> None:
        """Stop mosquitto (it saves its persistence file on a clean stop)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


def clear_retained_statuses(port: int, settle_s: float = 0.2) -> int:
    """Delete every retained node status on a broker; returns how many there were."""
    from broker.client import BrokerAddress, Message, MqttLink
    from broker.topics import TopicKind, subscription

    seen: list[str] = []

    def keep(message: Message) -> None:
        if message.retain and message.payload:
            seen.append(message.topic)

    link = MqttLink(
        f"cleaner-{time.monotonic_ns()}", BrokerAddress("127.0.0.1", port), clean_session=True
    )
    link.subscribe(subscription(TopicKind.STATUS), keep)
    link.start()
    if link.wait_subscribed(10):
        time.sleep(settle_s)  # retained messages follow the SUBACK at once
        for topic in list(seen):
            link.publish(topic, b"", retain=True).wait(5)
    link.stop()
    return len(seen)
