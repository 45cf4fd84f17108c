"""The edge node service, start-up to shutdown in one ordered place.

drop folders -> pipeline (detect, rules) -> durable outbox -> publisher -> MQTT broker
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from broker.client import BrokerAddress, MqttLink
from broker.payloads import (
    MAX_EVIDENCE,
    CameraState,
    Category,
    EventKind,
    EventPayload,
    EvidenceRef,
    NodeState,
    Severity,
    StatusPayload,
    utc_now,
)
from broker.topics import command_topic, heartbeat_topic, status_topic
from broker.validate import encode
from edge.config import NodeConfig
from edge.detect import Detector
from edge.evidence import EvidenceStore, SavedFile
from edge.health import heartbeat
from edge.ingest import MediaError, MediaItem
from edge.ingest.folder import DropFolder
from edge.live import LiveCamera
from edge.outbox import Outbox
from edge.outbox.sqlite import EvidenceUpload
from edge.pipeline import Analysis, build_pipeline
from edge.publish import CommandHandler, Publisher
from edge.publish.evidence import EvidenceUploader

log = logging.getLogger(__name__)

FRAMES_REMEMBERED = 2000  # a still bird is judged within minutes; a day of triggers is plenty

# Acknowledged events stay this long so central can ask for ones it lost after the broker's
# PUBACK; ~1 kB per event, so two days of a busy node (20,000/day) cost about 40 MB of disk.
RETAIN_ACKED_S = 2 * 24 * 3600.0


class EdgeNode:
    """One monitoring-point node: watches its cameras' drop folders and ships events."""

    def __init__(self, config: NodeConfig, *, detector: Detector | None = None) -> None:
        self.config = config
        self._detector = detector
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self.quarantined = 0
        self.duplicates = 0
        self.uploader: EvidenceUploader | None = None
        self._started = False
        # annotated frame per (camera, media file), to attach an earlier frame to a later event
        self._frames: OrderedDict[tuple[str, str], SavedFile] = OrderedDict()

    # -- start-up, in order ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the outbox, load the detector, connect, and start the worker threads."""
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.pipeline = build_pipeline(cfg, self._detector)  # models load here: fail early
        self.evidence = EvidenceStore(cfg.data_dir / "evidence", cfg.evidence_limit_mb)
        self.outbox = Outbox(cfg.outbox_path, retain_acked_s=RETAIN_ACKED_S)
        log.info(
            "outbox %s: %d events waiting, last seq %d",
            cfg.outbox_path,
            self.outbox.depth(),
            self.outbox.last_seq(),
        )
        self.link = MqttLink(
            f"wildwatch-{cfg.site}-{cfg.node}",
            BrokerAddress(
                cfg.mqtt.host,
                cfg.mqtt.port,
                cfg.mqtt.username,
                cfg.mqtt.password,
                cfg.mqtt.ca_file,
                cfg.mqtt.keepalive_s,
            ),
            clean_session=False,
            will=(status_topic(cfg.site, cfg.node), self._status(NodeState.OFFLINE, stamped=False)),
            online=(status_topic(cfg.site, cfg.node), self._status(NodeState.ONLINE)),
        )
        self.publisher = Publisher(self.outbox, self.link)
        self.commands = CommandHandler(
            outbox=self.outbox, publisher=self.publisher, rule_state=self.pipeline.rule_state
        )
        self.link.subscribe(command_topic(cfg.site, cfg.node), self.commands.handle)
        self.link.start()
        self.publisher.start()
        self._start_uploader()
        self.watchers = [
            DropFolder(cam.drop_folder, cam.id, cfg.tz, settle_s=cfg.settle_s)
            for cam in cfg.cameras
            if cam.drop_folder is not None
        ]
        for w in self.watchers:
            w.directory.mkdir(parents=True, exist_ok=True)
        self.live = [
            LiveCamera.open(
                cam.id,
                cam.source,
                self.pipeline,
                self._store_live,
                cam.live,
                motion=cam.motion,
                gate=cam.gate,
                tracker=cam.tracker,
                health=cam.health,
            )
            for cam in cfg.cameras
            if cam.source is not None
        ]
        for camera in self.live:
            camera.start()
        self._spawn("watcher", self._watch_loop)
        self._spawn("heartbeat", self._heartbeat_loop)
        self._started = True

    def _start_uploader(self) -> None:
        settings = self.config.evidence_upload
        if settings is None:
            return
        token = settings.token
        if token is None:
            log.error(
                "evidence upload configured but $%s is not set: not uploading", settings.token_env
            )
            return
        self.uploader = EvidenceUploader(
            self.outbox, settings, token, on_uploaded=self.evidence.mark_uploaded
        )
        self.uploader.start()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop watching, stop publishing (stored events stay stored), go offline."""
        if not self._started:
            return
        self._stop.set()
        for t in self._threads:
            t.join(10)
        for camera in self.live:
            camera.stop()
        self.publisher.stop()
        if self.uploader is not None:
            self.uploader.stop()
        cfg = self.config
        self.link.stop(offline=(status_topic(cfg.site, cfg.node), self._status(NodeState.OFFLINE)))
        self.outbox.close()
        self.evidence.close()

    def wait(self) -> None:
        """Block until SIGINT or SIGTERM."""

        def _handler(_sig: int, _frame: FrameType | None) -> None:
            self._stop.set()

        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)
        while not self._stop.wait(1.0):
            pass

    # -- work --------------------------------------------------------------------------------------
    def _status(self, state: NodeState, *, stamped: bool = True) -> bytes:
        at = utc_now() if stamped else None
        return encode(
            StatusPayload(site=self.config.site, node=self.config.node, state=state, at=at)
        )

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            for watcher in self.watchers:
                try:
                    for item in watcher.poll():
                        if self._stop.is_set():
                            return
                        self.process(item)
                except OSError:
                    log.exception("drop folder %s unreadable", watcher.directory)
            self._stop.wait(self.config.poll_s)

    def process(self, item: MediaItem) -> int:
        """Analyse one file and commit its events; returns how many events were stored."""
        if self.outbox.seen_media(item.sha256):
            log.info("%s: same content already processed, skipped", item.path.name)
            self.duplicates += 1
            self._move(item, "duplicates")
            return 0
        try:
            analysis = self.pipeline.analyse(item)
        except MediaError as exc:
            log.warning("%s: quarantined: %s", item.path.name, exc)
            self.outbox.add(
                [],
                media_sha256=item.sha256,
                media_path=str(item.path),
                media_status="quarantined",
                media_detail=str(exc),
            )
            dest = self._move(item, "quarantine")
            if dest is not None:
                dest.with_name(dest.name + ".reason.txt").write_text(f"{exc}\n", encoding="utf-8")
            self.quarantined += 1
            return 0
        events: list[EventPayload] = analysis.events
        uploads: list[EvidenceUpload] = []
        if analysis.events and analysis.result.detections and analysis.image is not None:
            was_near = self.evidence.near_limit
            events, uploads = self._save_evidence(item, analysis)
            if self.evidence.near_limit and not was_near:
                events.append(self._storage_warning(item))
        stored = self.outbox.add(
            events, media_sha256=item.sha256, media_path=str(item.path), evidence=uploads
        )
        self.processed += 1
        log.info(
            "%s: %d detections, %d events",
            item.path.name,
            len(analysis.result.detections),
            len(stored),
        )
        self._move(item, "archive")
        return len(stored)

    def _storage_warning(self, item: MediaItem) -> EventPayload:
        """One warning event when the evidence disk crosses its near-limit mark."""
        cfg = self.config
        used = self.evidence.usage_bytes() / 1e6
        return EventPayload(
            event_id=uuid.uuid4(),
            seq=1,
            site=cfg.site,
            node=cfg.node,
            camera=item.camera,
            kind=EventKind.ANOMALY,
            category=Category.CAMERA,
            captured_at=item.captured_at,
            created_at=utc_now(),
            rule="storage_low",
            severity=Severity.WARNING,
            count=1,
            confidence=1.0,
            source=item.path.name,
            message_zh=f"节点{cfg.node}证据图片已占用{used:.0f}MB，接近上限"
            f"{cfg.evidence_limit_mb:.0f}MB；低级别事件的旧图片将被清理",
            message_en=f"node {cfg.node} evidence uses {used:.0f} MB of its "
            f"{cfg.evidence_limit_mb:.0f} MB limit; old low-severity images will be pruned",
        )

    def _earlier_frames(self, camera: str, sources: tuple[str, ...] | None) -> list[SavedFile]:
        """Saved frames of earlier files behind an event (e.g. where a still bird was first
        seen), so the event's evidence shows the start as well as the end."""
        found = []
        for name in sources or ():
            saved = self._frames.get((camera, name))
            if saved is not None and saved.path.exists():
                found.append(saved)
        return found

    def camera_states(self) -> dict[str, CameraState]:
        """Live cameras report their health monitor's state; drop-folder cameras are unknown
        (a camera trap is silent until something triggers it)."""
        states = {c.id: CameraState.UNKNOWN for c in self.config.cameras}
        states.update({cam.camera: cam.health.state for cam in self.live})
        return states

    def _store_live(self, events: list[EventPayload]) -> None:
        self.outbox.add(events)

    def _save_evidence(
        self, item: MediaItem, analysis: Analysis
    ) -> tuple[list[EventPayload], list[EvidenceUpload]]:
        """Save the file's evidence; the most severe event carries the refs and owns the uploads."""
        events = list(analysis.events)
        lead = max(range(len(events)), key=lambda i: events[i].severity.rank)
        severity = events[lead].severity
        try:
            assert analysis.image is not None
            files = self.evidence.save(
                image=analysis.image,
                detections=analysis.result.detections,
                camera=item.camera,
                day=item.captured_at.astimezone(self.config.tz).strftime("%Y-%m-%d"),
                stem=f"{item.path.stem}_{item.sha256[:8]}",
                severity=Severity(severity),
            )
        except OSError as exc:  # a full disk must not stop events; they matter more
            log.error("%s: evidence not saved: %s", item.path.name, exc)
            return events, []
        self._frames[(item.camera, item.path.name)] = files.saved[0]
        while len(self._frames) > FRAMES_REMEMBERED:
            self._frames.popitem(last=False)
        earlier = self._earlier_frames(
            item.camera, analysis.earlier.get(str(events[lead].event_id))
        )
        for f in earlier:
            self.evidence.protect(f.path, Severity(severity))
        saved = (earlier + list(files.saved))[:MAX_EVIDENCE]  # first frames, this frame, crops
        refs = [EvidenceRef(name=f.path.name, sha256=f.sha256, size=f.size) for f in saved]
        event_id = str(events[lead].event_id)
        events[lead] = events[lead].model_copy(update={"evidence": refs})
        uploads: list[EvidenceUpload] = []
        if self.config.evidence_upload is not None:
            uploads = [
                EvidenceUpload(event_id, f.path.name, str(f.path), f.sha256, f.size) for f in saved
            ]
        return events, uploads

    def _move(self, item: MediaItem, area: str) -> Path | None:
        day = item.captured_at.astimezone(self.config.tz).strftime("%Y-%m-%d")
        dest_dir = self.config.data_dir / area / item.camera / day
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / item.path.name
        if dest.exists():
            dest = dest_dir / f"{item.sha256[:12]}_{item.path.name}"
        try:
            shutil.move(str(item.path), dest)
        except OSError as exc:
            log.error("%s: could not move to %s: %s", item.path, dest_dir, exc)
            return None
        return dest

    def _heartbeat_loop(self) -> None:
        cfg = self.config
        topic = heartbeat_topic(cfg.site, cfg.node)
        while not self._stop.wait(cfg.heartbeat_s if self.link.connected else 1.0):
            if not self.link.connected:
                continue
            hb = heartbeat(
                site=cfg.site,
                node=cfg.node,
                data_dir=cfg.data_dir,
                outbox_depth=self.outbox.depth(),
                last_seq=self.outbox.last_seq(),
                cameras=self.camera_states(),
                storage_near_limit=self.evidence.near_limit,
                models={cfg.detector.backend: cfg.detector.model},
            )
            self.link.publish(topic, encode(hb), qos=0)


def run(config: NodeConfig) -> None:
    """Run a node until it is told to stop."""
    node = EdgeNode(config)
    node.start()
    log.info("node %s/%s running with %d camera(s)", config.site, config.node, len(config.cameras))
    try:
        node.wait()
    finally:
        node.stop()
