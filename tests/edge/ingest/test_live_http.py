"""A live HTTP (MJPEG) camera served by a real local server: frames arrive, the feed survives the
camera going away and reconnects when it returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import pytest

from broker.payloads import CameraState
from edge.ingest.live import CameraHealthMonitor, HealthSettings, LiveFeed, LiveSettings
from tests.helpers import free_port, wait_for


class MjpegCamera:
    """An IP camera stand-in: multipart/x-mixed-replace JPEG frames at ~25 fps on loopback."""

    def __init__(self, frames: list[bytes], port: int) -> None:
        self.frames, self.port = frames, port
        self._server: ThreadingHTTPServer | None = None
        self._on = threading.Event()

    def start(self) -> None:
        """Serve until stop()."""
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while camera._on.is_set():
                        jpg = camera.frames[i % len(camera.frames)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n"
                        )
                        i += 1
                        time.sleep(0.04)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self._on.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """The camera goes away (power cut): streams end, new connections are refused."""
        self._on.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture()
def camera(shared_dir: Path) -> Iterator[MjpegCamera]:
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "zamba_chimp_320x180.mp4"))
    frames: list[bytes] = []
    while len(frames) < 50:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame)[1].tobytes())
    cam = MjpegCamera(frames, free_port())
    cam.start()
    yield cam
    cam.stop()


def test_http_camera_reconnects_after_an_outage(camera: MjpegCamera) -> None:
    settings = LiveSettings(backoff_initial_s=0.05, backoff_max_s=0.2, network_timeout_s=2.0)
    monitor = CameraHealthMonitor(HealthSettings(no_frame_s=0.5))
    with LiveFeed(f"http://127.0.0.1:{camera.port}/stream.mjpg", settings) as feed:
        assert wait_for(lambda: feed.frames_read >= 10, 15)
        frame = feed.latest()
        assert frame is not None and frame.image.shape == (180, 320, 3)
        monitor.observe(frame.image, frame.t)
        assert monitor.check(frame.t) is None  # frames are flowing
        camera.stop()
        assert wait_for(lambda: feed.failures >= 1 and feed.reconnects >= 1, 15)
        assert monitor.check(frame.t + 0.5) is CameraState.NO_FRAMES  # no_frame_s without one
        before = feed.frames_read
        camera.start()  # the camera comes back on the same address
        assert wait_for(lambda: feed.frames_read >= before + 10, 20)
