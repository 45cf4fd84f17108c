"""A Raspberry Pi's install, checked: run by the python of a virtualenv holding only
`wildwatch[edge]`. The server's packages must be absent; `edge scan` must process the shared
images and `edge run` must publish their events to a real mosquitto.

Usage: VENV/bin/python .ci/edge_only.py SHARED_DIR WORK_DIR
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

SERVER_PACKAGES = ("fastapi", "sqlalchemy", "alembic", "uvicorn", "openpyxl", "psycopg", "amqtt")
IMAGES = 6  # pictures dropped into the running node
TIMEOUT_S = 300.0


def fail(message: str) -> None:
    print(f"edge-only: FAILED: {message}", flush=True)
    raise SystemExit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    fail(f"mosquitto did not listen on {port}")


def main() -> None:
    shared, work = Path(sys.argv[1]), Path(sys.argv[2])
    wildwatch = str(Path(sys.executable).with_name("wildwatch"))
    present = [p for p in SERVER_PACKAGES if importlib.util.find_spec(p) is not None]
    if present:
        fail(f"the edge extra installed server packages: {present}")
    print("edge-only: no server package installed", flush=True)

    env = dict(os.environ, WILDWATCH_MODELS_DIR=str(work / "models"))
    subprocess.run([wildwatch, "models", "import", str(shared / "models")], env=env, check=True)

    events_file = work / "scan-events.jsonl"
    scan = subprocess.run(
        [wildwatch, "edge", "scan", str(shared / "data" / "images"), "--events-out", events_file],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    print(scan.stdout, scan.stderr[-2000:], sep="\n", flush=True)
    scanned = events_file.read_text(encoding="utf-8").splitlines() if events_file.exists() else []
    if scan.returncode != 0 or not scanned:
        fail(f"edge scan exited {scan.returncode} with {len(scanned)} events")
    print(f"edge-only: edge scan made {len(scanned)} events", flush=True)

    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n", encoding="utf-8")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL)
    node: subprocess.Popen[bytes] | None = None
    try:
        wait_port(port)
        received: list[dict[str, object]] = []
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-only-check")
        client.on_connect = lambda c, *_: c.subscribe("wildwatch/v1/+/+/event", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda _c, _u, msg: received.append(json.loads(msg.payload))
        client.connect("127.0.0.1", port)
        client.loop_start()
        if not subscribed.wait(20):
            fail("could not subscribe to the broker")

        drop = work / "drop"
        drop.mkdir()
        config = work / "node.yaml"
        config.write_text(
            "site: changxing\nnode: pi-check\n"
            f"data_dir: {work / 'edge'}\n"
            f"mqtt: {{host: 127.0.0.1, port: {port}}}\n"
            f"cameras: [{{id: cam1, drop_folder: {drop}}}]\n"
            "poll_s: 0.2\nsettle_s: 0.2\n",
            encoding="utf-8",
        )
        node = subprocess.Popen([wildwatch, "edge", "run", "--config", str(config)], env=env)
        staged = work / "card"
        staged.mkdir()
        pictures = sorted((shared / "data" / "images").glob("ct_*.jpg"))[:IMAGES]
        for picture in pictures:
            shutil.copy(picture, staged / picture.name)
        for picture in staged.iterdir():  # each appears whole, as a card import does
            picture.rename(drop / picture.name)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if received and not any(drop.iterdir()) and node.poll() is None:
                time.sleep(2.0)  # let the last events of the burst arrive
                break
            if node.poll() is not None:
                fail(f"edge run exited with {node.returncode}")
            time.sleep(0.5)
        else:
            fail(f"edge run published {len(received)} events in {TIMEOUT_S:.0f} s")
        sources = {str(e.get("source")) for e in received}
        print(
            f"edge-only: edge run published {len(received)} events for {len(sources)} of "
            f"{len(pictures)} pictures to mosquitto",
            flush=True,
        )
        client.loop_stop()
    finally:
        if node is not None and node.poll() is None:
            node.terminate()
            node.wait(30)
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    main()
