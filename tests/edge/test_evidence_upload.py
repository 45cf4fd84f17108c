"""Evidence to central over HTTP against a real uvicorn server, and the evidence retention order."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import Category, EventPayload, Severity
from central import crud
from central.app import create_app
from central.config import CentralConfig
from central.db.migrate import upgrade
from central.db.session import make_engine, make_session_factory
from edge.config import EvidenceUploadSettings
from edge.detect import Detection
from edge.evidence import EvidenceStore
from edge.ingest import load_image
from edge.outbox import Outbox
from edge.outbox.sqlite import UPLOAD_DONE, UPLOAD_FAILED, UPLOAD_LOST, EvidenceUpload
from edge.publish.evidence import REASON_MISSING, EvidenceUploader, UploadRefused
from tests.central.conftest import make_event
from tests.central.staff import auth, staff_accounts
from tests.edge.conftest import TinyDisk
from tests.helpers import free_port, wait_for

TOKEN_A = "token-of-cx-01-0123456789"
TOKEN_B = "token-of-xz-01-9876543210"
BIRD = Detection(100, 50, 300, 250, 0.9, 14, "bird", Category.BIRD)


class Central:
    """A real central API served by uvicorn on a free port."""

    def __init__(self, config: CentralConfig, session_factory: sessionmaker[Session]) -> None:
        self.config = config
        self.session_factory = session_factory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(config=config, session_factory=session_factory)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def add_event(self, event: EventPayload) -> None:
        """Store an event as if it had arrived over MQTT."""
        with self.session_factory.begin() as session:
            crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))


@pytest.fixture()
def central(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Central]:
    monkeypatch.setenv("WW_TOKEN_CX01", TOKEN_A)
    monkeypatch.setenv("WW_TOKEN_XZ01", TOKEN_B)
    config = CentralConfig.model_validate(
        {
            "data_dir": str(tmp_path / "central"),
            "database_url": database_url,
            "evidence": {
                "uploaders": [
                    {"site": "changxing", "node": "cx-01", "token_env": "WW_TOKEN_CX01"},
                    {"site": "xiazhuhu", "node": "xz-01", "token_env": "WW_TOKEN_XZ01"},
                ]
            },
            "alerts": {"duty_phones": ["13900000000"]},
            "staff": staff_accounts(),
        }
    )
    upgrade(database_url)
    engine = make_engine(database_url)
    server = Central(config, make_session_factory(engine))
    server.thread.start()
    assert wait_for(lambda: server.server.started, 10)
    yield server
    server.server.should_exit = True
    server.thread.join(10)
    engine.dispose()


def queue_file(
    outbox: Outbox,
    tmp_path: Path,
    event: EventPayload,
    data: bytes,
    *,
    sha256: str = "",
    name: str = "a.jpg",
) -> EvidenceUpload:
    """Write a file and queue it with its event, as the node does."""
    path = tmp_path / "ev" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    upload = EvidenceUpload(
        str(event.event_id),
        path.name,
        str(path),
        sha256 or hashlib.sha256(data).hexdigest(),
        len(data),
    )
    outbox.add([event], evidence=[upload])
    return upload


def settings(url: str, **over: float) -> EvidenceUploadSettings:
    """16 KiB chunks and short pauses."""
    values: dict[str, float] = {"chunk_kib": 16, "retry_s": 0.1, "timeout_s": 10, **over}
    return EvidenceUploadSettings(central_url=url, **values)


def served(central: Central, event: EventPayload, name: str) -> bytes:
    """The file central serves for an event."""
    response = httpx.get(f"{central.url}/api/evidence/{event.event_id}/{name}", headers=auth())
    assert response.status_code == 200, response.text
    return response.content


def test_interrupted_upload_resumes_at_central_offset(central: Central, tmp_path: Path) -> None:
    data = os.urandom(40_000)
    event = make_event()
    central.add_event(event)
    outbox = Outbox(tmp_path / "outbox.db")
    queue_file(outbox, tmp_path, event, data)
    first = EvidenceUploader(outbox, settings(central.url), TOKEN_A)
    assert first.step(max_chunks=1)  # interrupted after one chunk
    first.stop()
    outbox.close()
    status = httpx.get(
        f"{central.url}/api/evidence/{event.event_id}/a.jpg/status",
        headers={"Authorization": f"Bearer {TOKEN_A}"},
    ).json()
    assert status == {"received": 16 * 1024, "complete": False}

    outbox = Outbox(tmp_path / "outbox.db")  # the node restarts
    ranges: list[str] = []
    uploaded: list[Path] = []
    client = httpx.Client(
        timeout=10,
        event_hooks={"request": [lambda r: ranges.append(r.headers.get("Content-Range", ""))]},
    )
    second = EvidenceUploader(
        outbox, settings(central.url), TOKEN_A, client=client, on_uploaded=uploaded.append
    )
    second.start()
    assert wait_for(lambda: outbox.evidence_counts().get(UPLOAD_DONE) == 1, 10)
    second.stop()
    client.close()
    puts = [r for r in ranges if r]
    assert puts == ["bytes 16384-32767/40000", "bytes 32768-39999/40000"]
    served = httpx.get(f"{central.url}/api/evidence/{event.event_id}/a.jpg", headers=auth())
    assert hashlib.sha256(served.content).digest() == hashlib.sha256(data).digest()
    assert uploaded == [tmp_path / "ev" / "a.jpg"]
    outbox.close()


def test_wrong_hash_is_retried_once_then_given_up(
    central: Central, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    event = make_event()
    central.add_event(event)
    outbox = Outbox(tmp_path / "outbox.db")
    queue_file(outbox, tmp_path, event, os.urandom(20_000), sha256="0" * 64)
    uploader = EvidenceUploader(outbox, settings(central.url), TOKEN_A)
    with caplog.at_level(logging.WARNING, logger="edge.publish.evidence"):
        uploader.step()
    uploader.stop()
    assert outbox.evidence_counts() == {UPLOAD_FAILED: 1}
    assert any("sending again" in r.message for r in caplog.records)
    assert any(r.levelno == logging.ERROR and "given up" in r.message for r in caplog.records)
    outbox.close()


def test_token_of_another_node_is_refused(central: Central, tmp_path: Path) -> None:
    event = make_event(site="xiazhuhu", node="xz-01")
    central.add_event(event)
    outbox = Outbox(tmp_path / "outbox.db")
    queue_file(outbox, tmp_path, event, os.urandom(1000))
    uploader = EvidenceUploader(outbox, settings(central.url), TOKEN_A)  # node A's token
    with pytest.raises(UploadRefused, match="xiazhuhu/xz-01"):
        uploader.step()
    uploader.stop()
    assert outbox.evidence_counts() == {"pending": 1}  # kept for when the token is fixed
    outbox.close()


def test_event_not_at_central_yet_waits(central: Central, tmp_path: Path) -> None:
    event = make_event()
    outbox = Outbox(tmp_path / "outbox.db")
    queue_file(outbox, tmp_path, event, os.urandom(1000))
    uploader = EvidenceUploader(outbox, settings(central.url), TOKEN_A)
    assert not uploader.step()  # 404: nothing done, stays pending
    central.add_event(event)
    assert uploader.step()
    uploader.stop()
    assert outbox.evidence_counts() == {UPLOAD_DONE: 1}
    outbox.close()


def test_a_deleted_file_is_given_up_and_later_files_still_go(
    central: Central, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A queued file deleted before its upload is given up (lost) with its reason, logged with
    its path; the running uploader goes on and the next file reaches central."""
    gone, later = make_event(seq=1), make_event(seq=2)
    for event in (gone, later):
        central.add_event(event)
    outbox = Outbox(tmp_path / "outbox.db")
    missing = Path(queue_file(outbox, tmp_path, gone, os.urandom(1000), name="gone.jpg").path)
    missing.unlink()
    data = os.urandom(20_000)
    queue_file(outbox, tmp_path, later, data, name="later.jpg")
    uploader = EvidenceUploader(outbox, settings(central.url), TOKEN_A)
    with caplog.at_level(logging.WARNING, logger="edge.publish.evidence"):
        uploader.start()
        assert wait_for(lambda: outbox.evidence_counts() == {UPLOAD_LOST: 1, UPLOAD_DONE: 1}, 10)
        uploader.stop()
    assert served(central, later, "later.jpg") == data
    assert outbox.evidence_problems() == [
        ("gone.jpg", UPLOAD_LOST, REASON_MISSING.format(path=missing))
    ]
    assert any(
        str(missing) in r.getMessage() and "given up" in r.getMessage() for r in caplog.records
    )
    outbox.close()


def test_an_unreadable_file_waits_and_the_others_still_go(central: Central, tmp_path: Path) -> None:
    """A file that cannot be read keeps its place for a later try, with the reason, while the
    files behind it are sent; once readable it goes too. The unreadable file is a directory
    where the image should be: a real IsADirectoryError (root reads any file mode)."""
    stuck, later = make_event(seq=1), make_event(seq=2)
    for event in (stuck, later):
        central.add_event(event)
    outbox = Outbox(tmp_path / "outbox.db")
    data = os.urandom(20_000)
    path = Path(queue_file(outbox, tmp_path, stuck, data, name="stuck.jpg").path)
    path.unlink()
    path.mkdir()
    queue_file(outbox, tmp_path, later, os.urandom(1000), name="later.jpg")
    uploader = EvidenceUploader(outbox, settings(central.url), TOKEN_A)
    uploader.start()
    assert wait_for(lambda: outbox.evidence_counts().get(UPLOAD_DONE) == 1, 10)
    ((name, state, reason),) = outbox.evidence_problems()
    assert (name, state) == ("stuck.jpg", "pending") and "file unreadable" in reason, reason
    path.rmdir()
    path.write_bytes(data)
    assert wait_for(lambda: outbox.evidence_counts() == {UPLOAD_DONE: 2}, 20)
    uploader.stop()
    assert served(central, stuck, "stuck.jpg") == data
    assert outbox.evidence_problems() == []  # the reason goes once it is sent
    outbox.close()


def test_a_file_central_refuses_is_given_up_after_its_attempts(
    central: Central, tmp_path: Path
) -> None:
    """Central refuses a file its event does not list (422): that file alone is tried again
    later and, after max_attempts, given up with central's reason; the next file goes."""
    other = {"name": "other.jpg", "sha256": "0" * 64, "size": 5}
    refused, later = make_event(seq=1, evidence=[other]), make_event(seq=2)
    for event in (refused, later):
        central.add_event(event)
    outbox = Outbox(tmp_path / "outbox.db")
    queue_file(outbox, tmp_path, refused, os.urandom(1000), name="refused.jpg")
    data = os.urandom(1000)
    queue_file(outbox, tmp_path, later, data, name="later.jpg")
    uploader = EvidenceUploader(outbox, settings(central.url, max_attempts=2), TOKEN_A)
    uploader.start()
    assert wait_for(lambda: outbox.evidence_counts() == {UPLOAD_FAILED: 1, UPLOAD_DONE: 1}, 10)
    uploader.stop()
    assert served(central, later, "later.jpg") == data
    ((name, state, reason),) = outbox.evidence_problems()
    assert (name, state) == ("refused.jpg", UPLOAD_FAILED)
    assert "HTTP 422" in reason and "事件未列出此证据" in reason, reason
    outbox.close()


def test_a_full_outbox_disk_pauses_uploads_until_there_is_room(
    central: Central, tmp_path: Path, tiny_disk: TinyDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox lives on a card that fills up: recording the upload fails with a real
    SQLITE_FULL. The uploader pauses instead of ending, and finishes once there is room."""
    event = make_event()
    central.add_event(event)
    outbox = Outbox(tiny_disk.root / "outbox.db")
    data = os.urandom(40_000)
    queue_file(outbox, tmp_path, event, data)
    tiny_disk.fill()
    uploader = EvidenceUploader(outbox, settings(central.url), TOKEN_A)
    with caplog.at_level(logging.ERROR, logger="edge.publish.evidence"):
        uploader.start()
        assert wait_for(lambda: "outbox disk full" in caplog.text, 10), caplog.text
        assert outbox.evidence_counts() == {"pending": 1}
        tiny_disk.free()
        assert wait_for(lambda: outbox.evidence_counts() == {UPLOAD_DONE: 1}, 10)
        uploader.stop()
    assert served(central, event, "a.jpg") == data
    outbox.close()


def test_pruning_order(images_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    store = EvidenceStore(tmp_path / "evidence", limit_mb=1000)
    saved = {
        name: store.save(
            image=image, detections=[BIRD], camera="cam1", day="2026-11-22", stem=name, severity=sev
        )
        for name, sev in [
            ("old_warning", Severity.WARNING),
            ("alert", Severity.ALERT),
            ("critical", Severity.CRITICAL),
            ("new_info", Severity.INFO),
        ]
    }
    for i, files in enumerate(saved.values()):  # ages in the listed order: old_warning oldest
        for p in files.saved:
            os.utime(p.path, (1000 + i, 1000 + i))
    for p in saved["new_info"].saved:  # uploaded: goes first although it is the newest
        store.mark_uploaded(p.path)
    size = {name: sum(f.size for f in files.saved) for name, files in saved.items()}
    total = store.usage_bytes()

    with caplog.at_level(logging.INFO, logger="edge.evidence"):
        store.limit_bytes = total - 1
        removed = store.enforce_limit()
    assert {p.name for p in removed} <= {f.path.name for f in saved["new_info"].saved}
    assert not saved["new_info"].frame.exists() and saved["old_warning"].frame.exists()
    assert any("pruned" in r.message for r in caplog.records)

    store.limit_bytes = 1  # far below: every low-severity file goes, alert and critical stay
    store.enforce_limit()
    assert not saved["old_warning"].frame.exists()
    for name in ("alert", "critical"):
        assert all(f.path.exists() for f in saved[name].saved)
    assert store.usage_bytes() == size["alert"] + size["critical"]
    store.close()


def test_near_limit_warns_once(
    images_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = load_image(images_dir / "bird_coral_bird.jpg")
    store = EvidenceStore(tmp_path / "evidence", limit_mb=1000)
    store.save(image=image, detections=[BIRD], camera="cam1", day="2026-11-22", stem="a")
    assert not store.near_limit
    store.limit_bytes = int(store.usage_bytes() / 0.95)
    with caplog.at_level(logging.WARNING, logger="edge.evidence"):
        store.enforce_limit()
        store.enforce_limit()
    assert store.near_limit
    assert sum("near its limit" in r.message for r in caplog.records) == 1
    store.close()
