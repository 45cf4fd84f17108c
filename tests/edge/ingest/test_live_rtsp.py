"""A live RTSP camera served by a real local RTSP server (GStreamer, H.264 as IP cameras send):
frames arrive over TCP-only and UDP-only servers, the feed reconnects after an outage, a refused
password or a wrong stream path becomes a camera_health event that says so, and the password
never reaches the logs."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broker.payloads import CameraState, EventPayload, Severity
from edge.config import CameraSettings
from edge.ingest.live import CameraHealthMonitor, HealthSettings, LiveFeed, LiveSettings
from edge.ingest.netcam import diagnose_url, redact_url
from edge.live import LiveCamera
from edge.pipeline import build_pipeline
from edge.rules.health import camera_health_finding
from tests.factories import node_config
from tests.helpers import free_port, wait_for, wait_port

PEER = Path(__file__).resolve().parents[2] / "peers" / "rtsp_camera.py"
# The server runs under the system Python, which has PyGObject and GStreamer from Debian.
SYSTEM_PYTHON = "/usr/bin/python3"
USER, PASSWORD = "ranger", "Hx-7731!"
FAST = LiveSettings(backoff_initial_s=0.1, backoff_max_s=0.5, network_timeout_s=3.0)


class RtspCamera:
    """An H.264 RTSP camera on loopback (tests/peers/rtsp_camera.py), restartable."""

    def __init__(self, port: int, *options: str) -> None:
        self.port, self.options = port, options
        self._proc: subprocess.Popen[str] | None = None

    def url(self, path: str = "/cam", user: str = "", password: str = "") -> str:
        login = f"{user}:{password}@" if user else ""
        return f"rtsp://{login}127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(PEER), "--port", str(self.port), *self.options],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if line != "ready" or not wait_port(self.port):
            self.stop()
            pytest.fail(f"RTSP camera did not start: {line!r}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None


def _gstreamer_ready() -> bool:
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def _needs_gstreamer() -> None:
    if not _gstreamer_ready():
        pytest.fail(
            "the RTSP test camera needs /usr/bin/python3 with GStreamer's RTSP server "
            "(.ci/run installs python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-*)"
        )


def serve(*options: str) -> Iterator[RtspCamera]:
    camera = RtspCamera(free_port(), *options)
    camera.start()
    try:
        yield camera
    finally:
        camera.stop()


@pytest.fixture()
def camera() -> Iterator[RtspCamera]:
    yield from serve()


@pytest.fixture(params=["digest", "basic"])
def locked_camera(request: pytest.FixtureRequest) -> Iterator[RtspCamera]:
    """A camera that asks for a login: Digest (most IP cameras) or Basic."""
    yield from serve("--user", USER, "--password", PASSWORD, "--auth", request.param)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_frames_arrive_from_tcp_only_and_udp_only_cameras(transport: str) -> None:
    for cam in serve("--transport", transport):
        with LiveFeed(cam.url(), FAST) as feed:
            assert wait_for(lambda: feed.frames_read >= 10, 20)
            frame = feed.latest()
            assert frame is not None and frame.image.shape == (360, 640, 3)
            assert feed.opens == 1 and feed.failures == 0


def test_rtsp_camera_reconnects_after_an_outage(camera: RtspCamera) -> None:
    monitor = CameraHealthMonitor(HealthSettings(no_frame_s=0.5))
    with LiveFeed(camera.url(), FAST) as feed:
        assert wait_for(lambda: feed.frames_read >= 10, 20)
        frame = feed.latest()
        assert frame is not None
        monitor.observe(frame.image, frame.t)
        camera.stop()  # power cut at the camera
        assert wait_for(lambda: feed.failures >= 1 and feed.reconnects >= 1, 20)
        assert monitor.check(frame.t + 0.5) is CameraState.NO_FRAMES  # no_frame_s without one
        assert wait_for(lambda: feed.problem is not None, 10)
        assert feed.problem is not None and feed.problem.code == "unreachable"
        before = feed.frames_read
        camera.start()  # back on the same address
        assert wait_for(lambda: feed.frames_read >= before + 10, 30)
        assert feed.problem is None
        assert feed.opens >= 2


def test_password_is_accepted_and_never_logged(
    locked_camera: RtspCamera, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with LiveFeed(locked_camera.url(user=USER, password=PASSWORD), FAST) as feed:
        assert wait_for(lambda: feed.frames_read >= 5, 20)
    with LiveFeed(locked_camera.url(user=USER, password="wrong-pass"), FAST) as bad:
        assert wait_for(lambda: bad.failures >= 1 and bad.problem is not None, 20)
        assert bad.frames_read == 0
    assert "ranger:***@127.0.0.1" in caplog.text  # the failure was logged, redacted
    assert PASSWORD not in caplog.text and "wrong-pass" not in caplog.text


def test_refused_password_reaches_the_duty_officer(locked_camera: RtspCamera) -> None:
    with LiveFeed(locked_camera.url(user=USER, password="wrong-pass"), FAST) as feed:
        assert wait_for(lambda: feed.problem is not None, 20)
        problem = feed.problem
    assert problem is not None and problem.code == "unauthorized"
    finding = camera_health_finding(
        "cam2",
        CameraState.NO_FRAMES,
        datetime(2026, 11, 22, 3, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        problem=(problem.zh, problem.en),
    )
    assert finding is not None and finding.severity is Severity.WARNING  # the default
    assert finding.message_zh.startswith("cam2摄像机无画面")
    assert "拒绝登录（401）" in finding.message_zh and "用户名和密码" in finding.message_zh
    assert "refused the login (401 Unauthorized)" in finding.message_en


def test_diagnosis_names_each_cause(locked_camera: RtspCamera) -> None:
    url = locked_camera.url
    assert diagnose_url(url(user=USER, password="nope"), 3).code == "unauthorized"
    assert diagnose_url(url(), 3).code == "unauthorized"  # no login given at all
    assert diagnose_url(url("/other", USER, PASSWORD), 3).code == "not_found"
    # The right login and path: the camera serves, so the failure was the video itself.
    assert diagnose_url(url(user=USER, password=PASSWORD), 3).code == "no_video"
    closed = f"rtsp://127.0.0.1:{free_port()}/cam"
    assert diagnose_url(closed, 3).code == "unreachable"


def test_redaction_keeps_everything_but_the_password() -> None:
    assert redact_url("rtsp://admin:p%40ss@10.0.0.5:554/Streaming/101") == (
        "rtsp://admin:***@10.0.0.5:554/Streaming/101"
    )
    assert redact_url("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"
    assert redact_url("http://user@cam/mjpg") == "http://user@cam/mjpg"


def test_no_frames_event_of_a_live_camera_carries_the_cause(
    locked_camera: RtspCamera, models_dir: Path, tmp_path: Path
) -> None:
    """End to end through LiveCamera and the rules: the event the node would publish."""
    config = node_config(tmp_path, models_dir, cameras=[{"id": "cam2"}])
    events: list[EventPayload] = []
    camera = CameraSettings(
        id="cam2",
        source=locked_camera.url(user=USER, password="wrong-pass"),
        live=FAST,
        health=HealthSettings(no_frame_s=1.0),
    )
    cam = LiveCamera.open(camera, build_pipeline(config), events.extend)
    cam.start()
    try:
        assert wait_for(lambda: any(e.rule == "camera_health" for e in events), 30)
    finally:
        cam.stop()
    health = [e for e in events if e.rule == "camera_health"]
    assert len(health) == 1
    assert "拒绝登录" in health[0].message_zh
    assert PASSWORD not in health[0].model_dump_json()
