"""Does the broker keep a disconnected subscriber's QoS 1 backlog?

Starts mosquitto twice: once with default queue settings (no max_queued_messages line, so 1000 per
client) and once with the queue settings that broker/mosquitto.py generates. Each time a
persistent subscriber (clean_session=False, QoS 1) registers and disconnects, SENT QoS 1 messages
are published, the subscriber reconnects and what arrives is counted. Prints a table, no
assertions.

Usage: python -m benchmarks.queue_limit [--messages N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from broker.client import BrokerAddress, Message, MqttLink
from broker.mosquitto import Deployment, NodeEntry, mosquitto_conf
from tests.helpers import free_port, wait_port

TOPIC = "wildwatch/bench/queue/event"
QUEUE_KEYS = ("max_queued_messages", "max_queued_bytes", "queue_qos0_messages")
QUIET_S = 3.0  # the reconnected subscriber is done when nothing arrived for this long


def shipped_queue_lines() -> list[str]:
    """The queue lines of the mosquitto.conf broker/mosquitto.py writes (TLS parts left out)."""
    dep = Deployment(nodes=[NodeEntry(site="changxing", node="cx-node-01")])
    text = mosquitto_conf(dep, Path("/nonexistent"))
    return [ln for ln in text.splitlines() if ln.split(" ", 1)[0] in QUEUE_KEYS]


def _conf(workdir: Path, port: int, queue_lines: list[str]) -> Path:
    run_as = ["user root"] if os.geteuid() == 0 else []
    lines = [
        *run_as,
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {workdir}/",
        "log_type error",
        "log_type warning",
        f"log_dest file {workdir / 'mosquitto.log'}",
        *queue_lines,
    ]
    path = workdir / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


class _Arrivals:
    """Distinct payloads received (QoS 1 may deliver twice) and when the last one came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.payloads: set[bytes] = set()
        self.last = time.monotonic()

    def __call__(self, message: Message) -> None:
        with self.lock:
            self.payloads.add(message.payload)
            self.last = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last arrival."""
        with self.lock:
            return time.monotonic() - self.last


def _subscriber(port: int, client_id: str, on_message: _Arrivals) -> MqttLink:

    link = MqttLink(client_id, BrokerAddress("127.0.0.1", port), clean_session=False)
    link.subscribe(TOPIC, on_message, qos=1)
    link.start()
    if not link.wait_subscribed(10):
        raise RuntimeError("subscriber did not connect")
    return link


def measure(queue_lines: list[str], messages: int) -> int:
    """Messages a persistent QoS 1 subscriber gets after being away while `messages` were sent."""
    workdir = Path(tempfile.mkdtemp(prefix="ww-queue-"))
    port = free_port()
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [exe, "-c", str(_conf(workdir, port, queue_lines))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_port(port):
            raise RuntimeError(f"mosquitto did not start: {workdir / 'mosquitto.log'}")
        client_id = f"bench-sub-{uuid.uuid4().hex[:8]}"
        _subscriber(port, client_id, _Arrivals()).stop()  # session and subscription registered
        pub = MqttLink(f"bench-pub-{uuid.uuid4().hex[:8]}", BrokerAddress("127.0.0.1", port))
        pub.start()
        pub.wait_connected(10)
        handles = [pub.publish(TOPIC, f"{i}".encode(), qos=1) for i in range(messages)]
        unacked = sum(not h.wait(30) for h in handles)
        pub.stop()
        if unacked:
            raise RuntimeError(f"{unacked} publishes not acknowledged by the broker")
        arrivals = _Arrivals()
        sub = _subscriber(port, client_id, arrivals)
        while arrivals.quiet_for() < QUIET_S:
            time.sleep(0.2)
        sub.stop()
        return len(arrivals.payloads)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Both configurations, one table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5_000)
    args = parser.parse_args()
    shipped = shipped_queue_lines()
    configs: list[tuple[str, list[str]]] = [("default", []), ("broker/mosquitto.py", shipped)]
    print("default: no max_queued_messages line (mosquitto's default is 1000 per client)")
    print("broker/mosquitto.py: " + "; ".join(shipped))
    print(f"{'config':<21}{'sent':>7}{'received':>10}{'dropped':>9}")
    for name, lines in configs:
        got = measure(lines, args.messages)
        print(f"{name:<21}{args.messages:>7}{got:>10}{args.messages - got:>9}", flush=True)


if __name__ == "__main__":
    main()
