"""systemd liveness through a real NOTIFY_SOCKET: pings while healthy, none once a stage hangs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import yaml

from edge.app import EdgeNode
from edge.detect import DetectionResult, Detector, detector_settings
from edge.watchdog import Liveness, Stage, WatchdogSettings, notify, watchdog_interval_s
from tests.factories import make_event, node_config
from tests.helpers import MosquittoServer, free_port, wait_for

PERIOD_USEC = 600_000  # WatchdogSec=0.6 s: a ping every 0.2 s
STALL_S = 1.0


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; every datagram is kept with the
    monotonic time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def pings(self, since: float = 0.0) -> list[float]:
        return [t for t, m in self.received if t >= since and "WATCHDOG=1" in m.split("\n")]

    def messages(self) -> list[str]:
        return [m for _t, m in self.received]


@pytest.fixture()
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    monkeypatch.setenv("WATCHDOG_USEC", str(PERIOD_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield listener
    listener.close()


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker of this test's own: it is frozen on purpose."""
    (tmp_path / "mq").mkdir()
    server = MosquittoServer(tmp_path / "mq", free_port())
    server.start()
    yield server
    server.thaw()
    server.stop()


class Gate(Detector):
    """Sees nothing, but waits at the gate while it is closed: a detector thread that hangs."""

    entered = threading.Event()
    opened = threading.Event()

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        Gate.entered.set()
        Gate.opened.wait(30)
        h, w = image_bgr.shape[:2]
        return DetectionResult([], w, h, "gate", 0.0)


def _quiet_after(listener: NotifySocket, t0: float, window_s: float) -> float:
    """Wait until no ping has come for `window_s`; returns the time of the last ping after t0."""
    assert wait_for(
        lambda: time.monotonic() - max(listener.pings(t0), default=t0) > window_s, 10
    ), "the pings never stopped"
    return max(listener.pings(t0), default=t0)


def test_notify_reaches_a_datagram_socket_also_in_the_abstract_namespace(tmp_path: Path) -> None:
    listener = NotifySocket(tmp_path / "n.sock")
    try:
        assert notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": str(listener.path)})
        assert wait_for(lambda: listener.messages() == ["READY=1\nSTATUS=up"], 2)
    finally:
        listener.close()
    name = f"wildwatch-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        abstract.settimeout(2)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(100) == b"WATCHDOG=1"
    # not under systemd, or its socket gone: nothing sent, nothing raised
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


def test_ping_interval_comes_from_systemd() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "120000000"}) == pytest.approx(40.0)
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    other = str(os.getpid() + 1)
    assert watchdog_interval_s({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": other}) is None
    mine = str(os.getpid())
    assert watchdog_interval_s({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": mine}) == 1.0


def test_a_stage_stuck_on_one_unit_or_a_dead_thread_is_a_problem() -> None:
    live = Liveness(WatchdogSettings(stall_s=5))
    stage = Stage("drop folders")
    alive = [True]
    live.stage(stage, lambda: alive[0])
    live.add("broken check", lambda _now: 1 / 0)  # type: ignore[arg-type,return-value]
    now = time.monotonic()
    assert live.problems(now) == ["broken check: check failed: division by zero"]
    live._checks.pop()  # the broken check has made its point
    with stage.working():
        assert live.problems(now + 4) == []
        assert live.problems(now + 6) == ["drop folders stuck on one unit of work for 6 s"]
        stage.touch()  # the next file of a backlog
        assert live.problems(time.monotonic() + 4) == []
    assert live.problems(now + 3600) == []  # idle is healthy
    alive[0] = False
    assert live.problems(now) == ["drop folders thread has died"]


def _drop_node(
    tmp_path: Path, models_dir: Path, port: int, detector: Detector, **over: Any
) -> EdgeNode:
    """A started node watching tmp_path/drop with `detector`, stall limit STALL_S."""
    config = node_config(
        tmp_path / "edge",
        models_dir,
        mqtt={"port": port},
        cameras=[{"id": "cam1", "drop_folder": str(tmp_path / "drop")}],
        classifier={"enabled": False},
        poll_s=0.1,
        settle_s=0,
        watchdog={"stall_s": STALL_S},
        **over,
    )
    node = EdgeNode(config, detector=detector)
    node.start()
    return node


def test_pings_while_idle_stop_while_the_detector_hangs_and_resume(
    tmp_path: Path, models_dir: Path, broker: MosquittoServer, notify_socket: NotifySocket
) -> None:
    Gate.entered.clear()
    Gate.opened.clear()
    gate = Gate(Path(), [], detector_settings(backend="yolox"))
    node = _drop_node(tmp_path, models_dir, broker.port, gate)
    try:
        node.ready()
        assert wait_for(lambda: bool(notify_socket.messages()), 5)  # the listener's thread has it
        assert notify_socket.messages()[0].startswith("READY=1\nSTATUS=")
        assert "broker connected" in notify_socket.messages()[0]
        assert wait_for(lambda: len(notify_socket.pings()) >= 5, 5), "no pings while idle"
        gaps = np.diff(notify_socket.pings())
        assert gaps.max() < PERIOD_USEC / 1e6, gaps  # systemd would never have fired

        cv2.imwrite(str(tmp_path / "drop" / "IMG_0001.jpg"), np.full((48, 64, 3), 90, np.uint8))
        assert Gate.entered.wait(10), "the drop folder was not processed"
        hung_at = time.monotonic()
        last = _quiet_after(notify_socket, hung_at, window_s=1.0)
        reaction = last - hung_at + PERIOD_USEC / 1e6  # systemd acts one period after the last
        print(f"detector hang: last ping {last - hung_at:.2f} s after, restart at {reaction:.2f} s")
        assert STALL_S - 0.5 <= last - hung_at <= STALL_S + 0.5
        assert any("drop folders stuck" in m for m in notify_socket.messages())

        Gate.opened.set()  # the detector returns: the stage is healthy again
        resumed = time.monotonic()
        assert wait_for(lambda: len(notify_socket.pings(resumed)) >= 3, 5)
        assert wait_for(lambda: node.processed == 1, 5)
    finally:
        Gate.opened.set()
        node.stop()
    assert wait_for(lambda: notify_socket.messages()[-1] == "STOPPING=1", 5)


class Slow(Detector):
    """Sees nothing, slowly: a clip of many sampled frames takes longer than the stall limit."""

    calls = 0

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        Slow.calls += 1
        time.sleep(0.15)
        h, w = image_bgr.shape[:2]
        return DetectionResult([], w, h, "slow", 0.0)


def test_a_long_clip_is_progress_not_a_hang(
    tmp_path: Path,
    models_dir: Path,
    shared_dir: Path,
    broker: MosquittoServer,
    notify_socket: NotifySocket,
) -> None:
    """15 sampled frames at 0.15 s each: 2.3 s on one file, with a 1 s stall limit."""
    Slow.calls = 0
    slow = Slow(Path(), [], detector_settings(backend="yolox"))
    node = _drop_node(tmp_path, models_dir, broker.port, slow, video_every_s=1.0)
    try:
        node.ready()
        assert wait_for(lambda: len(notify_socket.pings()) >= 3, 5)
        clip = shared_dir / "data" / "videos" / "zamba_chimp_320x180.mp4"
        shutil.copy(clip, tmp_path / "drop" / clip.name)
        started = time.monotonic()
        assert wait_for(lambda: node.processed == 1, 30), "the clip was not processed"
        took = time.monotonic() - started
        assert Slow.calls == 15 and took > 2 * STALL_S  # longer than the stall limit...
        gaps = np.diff(notify_socket.pings(started - 1))
        assert gaps.max() < PERIOD_USEC / 1e6, gaps  # ...and the pings never paused
    finally:
        node.stop()


def test_a_live_camera_stuck_on_a_frame_stops_the_pings(
    tmp_path: Path,
    models_dir: Path,
    shared_dir: Path,
    broker: MosquittoServer,
    notify_socket: NotifySocket,
) -> None:
    """A live feed (a clip played in real time) whose detector call never returns."""
    Gate.entered.clear()
    Gate.opened.clear()
    clip = shared_dir / "data" / "videos" / "zamba_chimp_320x180.mp4"
    config = node_config(
        tmp_path / "edge",
        models_dir,
        mqtt={"port": broker.port},
        cameras=[{"id": "cam9", "source": str(clip)}],
        classifier={"enabled": False},
        watchdog={"stall_s": STALL_S},
    )
    node = EdgeNode(config, detector=Gate(Path(), [], detector_settings(backend="yolox")))
    node.start()
    try:
        node.ready()
        assert Gate.entered.wait(20), "the live frames never reached the detector"
        hung_at = time.monotonic()
        last = _quiet_after(notify_socket, hung_at, window_s=1.0)
        assert last - hung_at <= STALL_S + 0.5
        assert any("camera cam9 stuck on one unit of work" in m for m in notify_socket.messages())
    finally:
        Gate.opened.set()
        node.stop()


def test_a_dead_publisher_stops_the_pings(
    tmp_path: Path, models_dir: Path, broker: MosquittoServer, notify_socket: NotifySocket
) -> None:
    config = node_config(
        tmp_path / "edge", models_dir, mqtt={"port": broker.port}, watchdog={"stall_s": STALL_S}
    )
    node = EdgeNode(config)
    node.start()
    try:
        node.ready()
        assert wait_for(lambda: len(notify_socket.pings()) >= 3, 5)
        node.publisher.stop()
        died = time.monotonic()
        last = _quiet_after(notify_socket, died, window_s=1.0)
        assert last - died < 0.5  # a dead thread needs no stall time
        assert any("publisher thread has died" in m for m in notify_socket.messages())
    finally:
        node.stop()


def test_an_outbox_the_broker_never_acknowledges_stops_the_pings(
    tmp_path: Path, models_dir: Path, broker: MosquittoServer, notify_socket: NotifySocket
) -> None:
    config = node_config(
        tmp_path / "edge",
        models_dir,
        mqtt={"port": broker.port, "keepalive_s": 60},
        watchdog={"stall_s": STALL_S},
    )
    node = EdgeNode(config)
    node.start()
    try:
        node.ready()
        node.outbox.add([make_event(node="n1", seq=1)])
        assert wait_for(lambda: node.publisher.drained(), 10), "the broker took nothing"
        assert wait_for(lambda: len(notify_socket.pings()) >= 3, 5)

        broker.freeze()  # connected, but nothing is acknowledged any more
        node.outbox.add([make_event(node="n1", seq=1)])
        frozen = time.monotonic()
        last = _quiet_after(notify_socket, frozen, window_s=1.0)
        assert STALL_S - 0.5 <= last - frozen <= STALL_S + 0.5
        assert node.link.connected  # the keepalive has not noticed: only the watchdog has
        assert any("outbox stuck: 1 events" in m for m in notify_socket.messages())

        broker.thaw()
        thawed = time.monotonic()
        assert wait_for(lambda: node.publisher.drained(), 10)
        assert wait_for(lambda: len(notify_socket.pings(thawed)) >= 3, 5)
    finally:
        broker.thaw()
        node.stop()


def test_the_edge_run_command_is_ready_pings_and_says_stopping(
    tmp_path: Path, models_dir: Path, broker: MosquittoServer
) -> None:
    """`wildwatch edge run` as systemd starts it: environment in, datagrams out."""
    listener = NotifySocket(tmp_path / "notify.sock")
    config = tmp_path / "node.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "changxing",
                "node": "n1",
                "model_store": str(models_dir),
                "data_dir": str(tmp_path / "edge"),
                "mqtt": {"port": broker.port},
                "cameras": [{"id": "cam1", "drop_folder": str(tmp_path / "drop")}],
            }
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": str(PERIOD_USEC)}
    exe = Path(sys.executable).with_name("wildwatch")
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "edge", "run", "--config", str(config)], env=env, stdout=out, stderr=out
        )
    try:
        assert wait_for(lambda: len(listener.pings()) >= 3, 60), log.read_text()
        ready = [m for m in listener.messages() if m.startswith("READY=1")]
        assert len(ready) == 1 and "broker connected" in ready[0]
        assert listener.messages().index(ready[0]) == 0  # no ping before READY
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert wait_for(lambda: "STOPPING=1" in listener.messages(), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
