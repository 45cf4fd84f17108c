"""The evidence uploader: resumable, authenticated HTTP uploads of evidence images to central.

Each file goes in chunks (`PUT .../api/evidence/{event_id}/{name}` with `Content-Range`); before
sending, the uploader asks central how many bytes it already holds, so an interrupted upload
resumes there. Central checks the sha256 of the whole file; a refused file is sent once more from
0, then given up with an error.

One file's trouble never stops the others: a file gone from disk is given up (lost), a file that
cannot be read or that central refuses waits and is tried again later, and an outbox that cannot
be written (disk full) pauses the thread, which carries on when it can. The reason is kept with
the upload in the outbox (`Outbox.evidence_problems`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from edge.config import EvidenceUploadSettings
from edge.outbox import Outbox, is_disk_full
from edge.outbox.sqlite import UPLOAD_DONE, UPLOAD_FAILED, UPLOAD_LOST, EvidenceUpload

log = logging.getLogger(__name__)

HASH_MISMATCH = "sha256"  # X-Evidence-Error value central sends when the whole-file hash differs
MAX_RESTARTS = 1  # a refused hash is retried from 0 once; twice means the file itself is bad
BATCH = 20
# A file tried again later (unreadable, refused by central) waits retry_s, then twice as long
# after each failure up to this: an operator has hours to fix permissions or a failing card, and
# a file that stays bad costs a warning an hour, not one a round.
MAX_RETRY_LATER_S = 3600.0

# Why an upload was given up or waits, kept in the outbox for the operator (Chinese first).
REASON_MISSING = "文件不存在（已清理或被删除）/ file missing (pruned or deleted): {path}"
REASON_UNREADABLE = "文件无法读取 / file unreadable: {error}"
REASON_REFUSED = "中心拒收（HTTP {status}）/ refused by central (HTTP {status}): {detail}"
REASON_HASH = "中心两次校验 SHA-256 不符 / central found a different sha256 twice"


class UploadRefused(Exception):
    """Central refused the upload in a way retrying soon will not fix (auth, unknown event)."""


class FileRefused(Exception):
    """Central refused one file (too large, not listed by its event, bad request): that file
    waits and is tried again later; the others go on."""


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

    @property
    def alive(self) -> bool:
        """True while the upload thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the current chunk; what is left stays queued."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._owns_client:
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._round())

    def _round(self) -> float:
        """One step, never raising; returns the pause before the next."""
        pause = self._settings.retry_s
        try:
            busy = self.step()
        except (httpx.HTTPError, UploadRefused) as exc:  # central away or refusing this node
            log.warning("evidence upload paused %.0fs: %s", pause, exc)
        except sqlite3.Error as exc:  # the outbox cannot be read or written: every file waits
            what = "disk full" if is_disk_full(exc) else "error"
            log.error("evidence upload paused %.0fs: outbox %s (%s)", pause, what, exc)
        except Exception:  # a bug hit by one round must not end evidence uploads for good
            log.exception("evidence upload paused %.0fs", pause)
        else:
            return 0.0 if busy else min(pause, 5.0)
        return pause

    def step(self, *, max_chunks: int | None = None) -> bool:
        """Upload queued files (at most `max_chunks` requests); True when any work was done."""
        budget = [max_chunks if max_chunks is not None else -1]
        progressed = False
        for upload in self._outbox.evidence_pending(limit=BATCH):
            if self._stop.is_set() or budget[0] == 0:
                break
            try:
                progressed = self._upload(upload, budget) or progressed
            except FileNotFoundError:
                log.warning(
                    "evidence %s of event %s: file gone before upload (pruned or deleted); "
                    "given up",
                    upload.path,
                    upload.event_id,
                )
                reason = REASON_MISSING.format(path=upload.path)
                self._outbox.evidence_finish(upload.id, UPLOAD_LOST, reason=reason)
                progressed = True
            except OSError as exc:
                self._retry_later(upload, REASON_UNREADABLE.format(error=exc))
                progressed = True
            except FileRefused as exc:
                self._retry_later(upload, str(exc))
                progressed = True
        return progressed

    def _retry_later(self, upload: EvidenceUpload, reason: str) -> None:
        """Leave a file that failed for later, after a doubling pause; give it up (failed) after
        `max_attempts` failures."""
        attempts = upload.attempts + 1
        if attempts >= self._settings.max_attempts:
            log.error(
                "evidence %s of event %s given up after %d attempts: %s",
                upload.path,
                upload.event_id,
                attempts,
                reason,
            )
            self._outbox.evidence_finish(upload.id, UPLOAD_FAILED, reason=reason)
            return
        pause = min(self._settings.retry_s * 2 ** (attempts - 1), MAX_RETRY_LATER_S)
        log.warning(
            "evidence %s of event %s: attempt %d failed, retrying in %.0fs: %s",
            upload.path,
            upload.event_id,
            attempts,
            pause,
            reason,
        )
        self._outbox.evidence_retry_later(upload.id, reason=reason, retry_at=time.time() + pause)

    def _url(self, upload: EvidenceUpload) -> str:
        return f"{self._base}/api/evidence/{upload.event_id}/{upload.name}"

    def _upload(self, upload: EvidenceUpload, budget: list[int]) -> bool:
        """Send what central lacks of one file; True when anything changed."""
        path = Path(upload.path)
        data = path.read_bytes()  # OSError: handled per file in step()
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
                    self._outbox.evidence_finish(upload.id, UPLOAD_FAILED, reason=REASON_HASH)
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
            try:
                self._on_uploaded(path)
            except (OSError, sqlite3.Error) as exc:  # central holds it: only pruning order suffers
                log.warning("evidence %s uploaded but not marked so locally: %s", path.name, exc)
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
        if 400 <= response.status_code < 500:  # about this file; 5xx is central's trouble
            raise FileRefused(
                REASON_REFUSED.format(status=response.status_code, detail=_detail(response))
            )
        response.raise_for_status()
        body = response.json()
        return upload.size if body.get("complete") else int(body["received"])


def _detail(response: httpx.Response) -> str:
    """Central's explanation of a refusal (its `detail`), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else response.text)[:300]
