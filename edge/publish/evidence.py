"""The evidence uploader: resumable, authenticated HTTP uploads of evidence images to central.

Each file goes in chunks (`PUT .../api/evidence/{event_id}/{name}` with `Content-Range`); before
sending, the uploader asks central how many bytes it already holds, so an interrupted upload
resumes there. Central checks the sha256 of the whole file; a refused file is sent once more from
0, then given up with an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from edge.config import EvidenceUploadSettings
from edge.outbox import Outbox
from edge.outbox.sqlite import UPLOAD_DONE, UPLOAD_FAILED, UPLOAD_LOST, EvidenceUpload

log = logging.getLogger(__name__)

HASH_MISMATCH = "sha256"  # X-Evidence-Error value central sends when the whole-file hash differs
MAX_RESTARTS = 1  # a refused hash is retried from 0 once; twice means the file itself is bad
BATCH = 20


class UploadRefused(Exception):
    """Central refused the upload in a way retrying soon will not fix (auth, unknown event)."""


class EvidenceUploader:
    """Background thread that moves queued evidence files from the node to central."""

    def __init__(
        self,
        outbox: Outbox,
        settings: EvidenceUploadSettings,
        token: str,
        *,
        on_uploaded: Callable[[Path], None] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self._outbox = outbox
        self._settings = settings
        self._chunk = settings.chunk_kib * 1024
        self._on_uploaded = on_uploaded
        self._client = client or httpx.Client(timeout=settings.timeout_s)
        self._owns_client = client is None
        self._base = settings.central_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evidence-upload", daemon=True)
        self.uploaded = 0  # files central accepted since start

    def start(self) -> None:
        """Start uploading."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current chunk; what is left stays queued."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._owns_client:
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except (httpx.HTTPError, UploadRefused) as exc:
                log.warning("evidence upload paused %.0fs: %s", self._settings.retry_s, exc)
                busy = False
                self._stop.wait(self._settings.retry_s)
                continue
            if not busy:
                self._stop.wait(min(self._settings.retry_s, 5.0))

    def step(self, *, max_chunks: int | None = None) -> bool:
        """Upload queued files (at most `max_chunks` requests); True when any work was done."""
        budget = [max_chunks if max_chunks is not None else -1]
        progressed = False
        for upload in self._outbox.evidence_pending(limit=BATCH):
            if self._stop.is_set() or budget[0] == 0:
                break
            progressed = self._upload(upload, budget) or progressed
        return progressed

    def _url(self, upload: EvidenceUpload) -> str:
        return f"{self._base}/api/evidence/{upload.event_id}/{upload.name}"

    def _upload(self, upload: EvidenceUpload, budget: list[int]) -> bool:
        """Send what central lacks of one file; True when anything changed."""
        path = Path(upload.path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            log.warning("evidence %s gone before upload (pruned?); not sent", path)
            self._outbox.evidence_finish(upload.id, UPLOAD_LOST)
            return True
        offset = self._received(upload)
        restarts = upload.restarts
        progressed = False
        while offset is not None and offset < len(data):
            if self._stop.is_set() or budget[0] == 0:
                return progressed
            budget[0] -= 1
            progressed = True
            end = min(offset + self._chunk, len(data))
            response = self._client.put(
                self._url(upload),
                content=data[offset:end],
                headers={
                    **self._auth,
                    "Content-Type": "image/jpeg",
                    "Content-Range": f"bytes {offset}-{end - 1}/{len(data)}",
                    "X-Content-SHA256": upload.sha256,
                },
            )
            if response.status_code == 422 and (
                response.headers.get("X-Evidence-Error") == HASH_MISMATCH
            ):
                if restarts >= MAX_RESTARTS:
                    log.error(
                        "evidence %s refused by central twice (sha256 mismatch): given up", path
                    )
                    self._outbox.evidence_finish(upload.id, UPLOAD_FAILED)
                    return True
                restarts += 1
                log.warning("evidence %s: central saw a different sha256; sending again", path)
                offset = 0
            elif response.status_code == 409:  # central holds a different offset: resync
                offset = self._received(upload)
            else:
                offset = self._check(response, upload)
            if offset is not None:
                self._outbox.evidence_progress(upload.id, uploaded=offset, restarts=restarts)
        if offset is None or offset < len(data):
            return progressed
        self._outbox.evidence_finish(upload.id, UPLOAD_DONE)
        self.uploaded += 1
        log.info("evidence %s uploaded (%d bytes)", path.name, len(data))
        if self._on_uploaded is not None:
            self._on_uploaded(path)
        return True

    def _received(self, upload: EvidenceUpload) -> int | None:
        """Bytes central already holds of this file (its full size once complete)."""
        response = self._client.get(f"{self._url(upload)}/status", headers=self._auth)
        return self._check(response, upload)

    @staticmethod
    def _check(response: httpx.Response, upload: EvidenceUpload) -> int | None:
        if response.status_code in (401, 403):
            raise UploadRefused(f"central refused this node's token: {response.text}")
        if response.status_code == 404:  # the event has not reached central over MQTT yet
            log.info("evidence for %s: event not at central yet; later", upload.event_id)
            return None
        response.raise_for_status()
        body = response.json()
        return upload.size if body.get("complete") else int(body["received"])
