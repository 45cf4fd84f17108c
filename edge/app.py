"""The edge node service, start-up to shutdown in one ordered place.

drop folders / live cameras -> pipeline streams (edge/pipeline.py: detect, classify, rules)
-> durable outbox -> publisher -> MQTT broker
"""

from __future__ import annotations

import logging
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
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
    RuleName,
    Severity,
    StatusPayload,
    utc_now,
)
from broker.topics import command_topic, heartbeat_topic, status_topic
from broker.validate import encode
from edge.classify.gallery import GallerySettings
from edge.clock import clock_offset_ms
from edge.config import NodeConfig
from edge.detect import Detector
from edge.evidence import EvidenceStore, SavedFile
from edge.health import heartbeat
from edge.ingest import MediaError, MediaItem
from edge.ingest.folder import RETRY_S, DropFolder
from edge.link import LinkWatch
from edge.live import LiveCamera
from edge.outbox import Outbox, is_disk_full
from edge.outbox.sqlite import EvidenceUpload
from edge.pipeline import Analysis, Pipeline, StillStream, build_pipeline
from edge.publish import CommandHandler, Publisher
from edge.publish.evidence import EvidenceUploader
from edge.storage import DataPartition
from edge.updater import LoadedModels, ReleaseFolder, Updater, load_and_test, release_gallery
from edge.watchdog import Liveness, Stage
from models.registry import RegistryError

log = logging.getLogger(__name__)

FRAMES_REMEMBERED = 2000  # a still bird is judged within minutes; a day of triggers is plenty

# Acknowledged events stay this long so central can ask for ones it lost after the broker's
# PUBACK; ~1 kB per event, so two days of a busy node (20,000/day) cost about 40 MB of disk.
RETAIN_ACKED_S = 2 * 24 * 3600.0

# While the data disk is full, the drop folders are left alone this long between attempts: an
# attempt analyses a file again (seconds of CPU on a Pi) only to fail if space is still short;
# shorter resumes sooner after an operator frees space. Files wait in their drop folders.
DISK_FULL_RETRY_S = 60.0


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
        self._disk_full_at: float | None = None  # monotonic time the data disk was found full
        self.storage_low: tuple[str, str] | None = None  # why storage is low (zh, en), if it is
        self.uploader: EvidenceUploader | None = None
        self._started = False
        # annotated frame per (camera, media file), to attach an earlier frame to a later event
        self._frames: OrderedDict[tuple[str, str], SavedFile] = OrderedDict()
        # drop-folder camera -> its stills stream (a burst waits there, its files in place)
        self._streams: dict[str, StillStream] = {}
        self.updater: Updater[LoadedModels] | None = None
        self.release: str | None = None  # the signed model release in use (None: model store)
        self.liveness = Liveness(config.watchdog)  # what systemd's watchdog is told
        self._watch_stage = Stage("drop folders")  # one file (a burst) at a time

    # -- start-up, in order ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the outbox, load the detector, connect, and start the worker threads."""
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        store = self._prepare_releases()  # the release in use, else the model store
        self.pipeline = self._build_pipeline(store)  # models load here: fail early
        self.pipeline.progress = self._watch_stage.touch  # each frame of a clip
        self.evidence = EvidenceStore(cfg.data_dir / "evidence", cfg.evidence_limit_mb)
        self.outbox = Outbox(cfg.outbox_path, retain_acked_s=RETAIN_ACKED_S)
        outbox_files = tuple(
            cfg.outbox_path.with_name(cfg.outbox_path.name + suffix)
            for suffix in ("", "-wal", "-shm")
        )
        self.storage = DataPartition(
            cfg.data_dir,
            cfg.storage,
            evidence_dir=self.evidence.root,
            evidence_bytes=lambda: self.evidence.held_bytes,
            outbox_files=outbox_files,
        )
        log.info(
            "data partition: %.0f of %.0f MB in use",
            self.storage.used_bytes() / 1e6,
            cfg.storage.cap_mb,
        )
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
            outbox=self.outbox,
            publisher=self.publisher,
            rule_state=self.pipeline.rule_state,
            on_update=self.updater.request if self.updater is not None else None,
        )
        self.link.subscribe(command_topic(cfg.site, cfg.node), self.commands.handle)
        self.link.start()
        # the 4G uplink: modem reset, then reboot, after long enough offline (edge/link.py)
        self.link_watch = LinkWatch(
            cfg.link, lambda: self.link.connected, cfg.data_dir / "link_state.json"
        )
        self.link_watch.start()
        self.publisher.start()
        self._start_uploader()
        if self.updater is not None:
            self.updater.start()
        self.watchers = [
            DropFolder(
                cam.drop_folder,
                cam.id,
                cfg.tz,
                settle_s=cfg.settle_s,
                quarantine_grace_s=cfg.quarantine_grace_s,
                earliest=cfg.capture_time_floor,
            )
            for cam in cfg.cameras
            if cam.drop_folder is not None
        ]
        for w in self.watchers:
            w.directory.mkdir(parents=True, exist_ok=True)
        self.live = [
            LiveCamera.open(cam, self.pipeline, self._store_live)
            for cam in cfg.cameras
            if cam.source is not None
        ]
        for camera in self.live:
            camera.start()
        watcher = self._spawn("watcher", self._watch_loop)
        beats = self._spawn("heartbeat", self._heartbeat_loop)
        self._started = True
        self._watch_health(watcher, beats)

    def _watch_health(self, watcher: threading.Thread, beats: threading.Thread) -> None:
        """Every worker the systemd watchdog vouches for (edge/watchdog.py)."""
        live = self.liveness
        live.stage(self._watch_stage, watcher.is_alive)
        live.thread("heartbeat", beats.is_alive)
        live.stage(self.publisher.stage, lambda: self.publisher.alive)
        live.add("outbox", self._outbox_problem)
        live.thread("link watch", lambda: self.link_watch.alive)
        for camera in self.live:
            live.stage(camera.stage, partial(getattr, camera, "alive"))
        if self.uploader is not None:
            uploader = self.uploader
            live.thread("evidence upload", lambda: uploader.alive)
        if self.updater is not None:
            updater = self.updater
            live.thread("release updater", lambda: updater.alive)

    def _outbox_problem(self, now: float) -> str | None:
        waited = self.publisher.unacknowledged_for(now)
        if waited is not None and waited > self.config.watchdog.stall_s:
            return (
                f"outbox stuck: {self.outbox.depth()} events, none acknowledged for {waited:.0f} s"
                " while the broker is connected"
            )
        return None

    def ready(self) -> None:
        """Tell systemd the node is up (after waiting briefly for the broker) and start the
        watchdog pings."""
        deadline = time.monotonic() + self.config.watchdog.ready_wait_s
        while not self.link.connected and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.1)
        if not self.link.connected:
            log.warning(
                "broker not reachable yet: ready, working offline (events wait in the outbox)"
            )
        self.liveness.ready(self.status_line)

    def status_line(self) -> str:
        """One line for `systemctl status`: work done and the uplink."""
        broker = "已连接 / broker connected" if self.link.connected else "离线 / offline"
        return (
            f"{broker}; processed {self.processed}, outbox {self.outbox.depth()}, "
            f"published {self.publisher.published}"
        )

    def _prepare_releases(self) -> Path | None:
        """Undo a model switch a stop interrupted, set up the updater; the folder of the
        release in use, or None (no `updates`, or nothing pulled yet: the model store)."""
        settings = self.config.updates
        if settings is None:
            return None
        folder = ReleaseFolder(self.config.releases_dir)
        folder.root.mkdir(parents=True, exist_ok=True)
        undone = folder.recover()
        self.release = folder.current()
        token = settings.token
        if token is None:
            log.error(
                "model updates configured but $%s is not set: not updating", settings.token_env
            )
        else:
            self.updater = Updater(
                settings,
                token,
                folder,
                load=partial(load_and_test, self.config),
                activate=self._activate_release,
            )
        if undone is not None:
            reason = (
                "切换未完成（节点中途停止），已回滚 / switch interrupted by a stop, "
                f"rolled back to {self.release or 'the model store'}"
            )
            if self.updater is not None:  # not switched to again unless central asks
                self.updater.refuse(undone, reason)
            else:
                log.error("model release %s: %s", undone, reason)
        return folder.current_dir()

    def _build_pipeline(self, store: Path | None) -> Pipeline:
        """The pipeline from the release in `store`; when that release cannot serve the
        configured models (the classifier turned on after a detector-only release, `current`
        naming a folder that is gone), from the model store, the reason kept for the heartbeat."""
        if store is None:
            return build_pipeline(self.config, self._detector)
        try:
            return build_pipeline(self._release_models(store), self._detector)
        except (RegistryError, OSError) as exc:
            why = (
                "发布无法提供所配置的模型，改用模型仓库 / the release cannot serve the configured "
                f"models, running on the model store: {exc}"
            )
            log.error("model release %s: %s", self.release, why)
            if self.updater is not None:
                self.updater.last_error = f"{self.release}: {why}"
            self.release = None
            return build_pipeline(self.config, self._detector)

    def _release_models(self, store: Path) -> NodeConfig:
        """The configuration with the release's models (and its gallery, if it carries one)."""
        update: dict[str, object] = {"model_store": store}
        gallery = release_gallery(store)
        if gallery is not None:
            base = self.config.gallery.model_dump() if self.config.gallery is not None else {}
            update["gallery"] = GallerySettings.model_validate({**base, "path": gallery})
            log.info("reference gallery from release %s: %s", self.release, gallery.name)
        return self.config.model_copy(update=update)

    def _activate_release(self, models: LoadedModels, version: str | None) -> None:
        """Hand a self-tested release's detector to the pipeline (a frame being analysed
        finishes with the old one)."""
        self.pipeline.detector = models.detector
        self.release = version

    def _stamped(self, events: list[EventPayload]) -> list[EventPayload]:
        """Events with the model release in use."""
        if self.release is None:
            return events
        return [e.model_copy(update={"release": self.release}) for e in events]

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

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def stop(self) -> None:
        """Stop watching, stop publishing (stored events stay stored), go offline."""
        if not self._started:
            return
        self.liveness.stopping()
        self._stop.set()
        for t in self._threads:
            t.join(10)
        for camera in self.live:
            camera.stop()
        self.link_watch.stop()
        self.publisher.stop()
        if self.uploader is not None:
            self.uploader.stop()
        if self.updater is not None:
            self.updater.stop()
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
        """Poll every camera's drop folder until stopped; nothing a file or camera does ends it."""
        while not self._stop.is_set():
            full_at = self._disk_full_at
            if full_at is None or time.monotonic() - full_at >= DISK_FULL_RETRY_S:
                with self._watch_stage.working():
                    for watcher in self.watchers:
                        if self._stop.is_set() or not self._watch(watcher):
                            break
            self._stop.wait(self.config.poll_s)

    def _watch(self, watcher: DropFolder) -> bool:
        """Process what one drop folder holds; False when the disk is full (stop for now).

        Files of a burst stay in the folder until the burst is decided: when a later file
        shows it is over, or when a poll finds nothing new for the camera.
        """
        try:
            items = watcher.poll(self._watch_stage.touch)
        except OSError:
            log.exception("drop folder %s unreadable", watcher.directory)
            return True
        except Exception:  # a bug in one camera's folder must not stop the other cameras
            log.exception("camera %s: polling %s failed", watcher.camera, watcher.directory)
            return True
        waiting = {i.path for i in self._stream(watcher.camera).pending}
        fresh = [i for i in items if i.path not in waiting]
        for item in fresh:
            if self._stop.is_set():
                return True
            if not self._guard(item, watcher, partial(self._take, item, watcher)):
                return False
        if not fresh and waiting:  # the camera went quiet: its burst is complete
            return self._guard(None, watcher, partial(self._flush, watcher.camera))
        return True

    def _guard(self, item: MediaItem | None, origin: DropFolder, work: Callable[[], int]) -> bool:
        """Run one step of drop-folder work; False when the data disk is full."""
        done = self.processed
        self._watch_stage.touch()  # each file of a backlog is a new unit of work
        try:
            work()
        except Exception as exc:
            pending = [item] if item is not None else self._stream(origin.camera).pending
            if is_disk_full(exc):
                self._disk_full(pending[0] if pending else None, exc)
                self._streams.pop(origin.camera, None)  # its files are still in the folder
                return False
            log.exception(
                "%s: processing failed; the files stay in %s and are tried again in %.0f s",
                ", ".join(i.path.name for i in pending),
                origin.directory,
                RETRY_S,
            )
            for it in pending:
                origin.retry_later(it.path, RETRY_S)
            if item is None:
                self._streams.pop(origin.camera, None)
            return True
        # a file joining a burst writes nothing: only a stored file shows there is space again
        if self._disk_full_at is not None and self.processed > done:
            log.warning("disk space available again: drop folders are processed again")
            self._disk_full_at = None
        return True

    def _stream(self, camera: str) -> StillStream:
        stream = self._streams.get(camera)
        if stream is None:
            stream = self._streams[camera] = self.pipeline.stills()
        return stream

    def _disk_full(self, item: MediaItem | None, exc: BaseException) -> None:
        """Leave the file (and every later one) in its drop folder until space is freed."""
        where = item.path if item is not None else "the waiting burst"
        if self._disk_full_at is None:
            log.error(
                "data disk full (%s): %s and newer files stay in their drop folders, nothing is"
                " quarantined or lost; processing resumes by itself once space is freed"
                " (tried every %.0f s)",
                exc,
                where,
                DISK_FULL_RETRY_S,
            )
        else:
            log.debug("data disk still full: %s waits", where)
        self._disk_full_at = time.monotonic()

    def process(self, item: MediaItem, *, origin: DropFolder | None = None) -> int:
        """Analyse one file now (its camera's waiting burst with it) and commit the events;
        returns how many events were stored."""
        return self._take(item, origin) + self._flush(item.camera)

    def _take(self, item: MediaItem, origin: DropFolder | None) -> int:
        """Look at one file: a duplicate is set aside, an unusable file held or quarantined,
        any other joins its camera's burst; commits the burst it closed (events stored).

        A file from drop folder `origin` that does not decode is left there while its upload
        may only have stalled (see DropFolder.hold); otherwise it is quarantined.
        """
        self._check_storage(item)  # raises CapReached (a disk full of our own): the file waits
        stream = self._stream(item.camera)
        if self.outbox.seen_media(item.sha256) or any(
            p.sha256 == item.sha256 for p in stream.pending
        ):
            log.info("%s: same content already processed, skipped", item.path.name)
            self._move(item, "duplicates")
            self.duplicates += 1  # counted once the file has left the drop folder
            return 0
        try:
            closed = stream.push(item)
        except MediaError as exc:
            self._unusable(item, origin, exc)
            return 0
        return self._commit(closed)

    def _flush(self, camera: str) -> int:
        """Decide the camera's waiting burst and commit it (events stored)."""
        stream = self._streams.get(camera)
        return self._commit(stream.flush()) if stream is not None else 0

    def _unusable(self, item: MediaItem, origin: DropFolder | None, exc: MediaError) -> None:
        if origin is not None and origin.hold(item.path, str(exc)):
            return
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
            reason = dest.with_name(dest.name + ".reason.txt")
            try:
                reason.write_text(f"{exc}\n", encoding="utf-8")
            except OSError as err:  # the reason is also in the outbox's media record
                log.error("%s: could not write %s: %s", item.path.name, reason, err)
        self.quarantined += 1

    def _commit(self, analyses: list[Analysis]) -> int:
        """Store each analysed file's events with its evidence, then archive the file."""
        stored_total = 0
        for analysis in analyses:
            item = analysis.item
            assert item is not None  # stills always carry their media item
            events: list[EventPayload] = analysis.events
            uploads: list[EvidenceUpload] = []
            if analysis.events and analysis.result.detections:
                events, uploads = self._save_evidence(item, analysis)
                events += self._storage_warnings(item)
            stored = self.outbox.add(
                self._stamped(events),
                media_sha256=item.sha256,
                media_path=str(item.path),
                evidence=uploads,
            )
            log.info(
                "%s: %d detections, %d events",
                item.path.name,
                len(analysis.result.detections),
                len(stored),
            )
            self._move(item, "archive")
            self.processed += 1  # counted once the file has left the drop folder
            stored_total += len(stored)
        return stored_total

    def _check_storage(self, item: MediaItem) -> None:
        """Prune old originals if needed, warn once when storage turns low, and refuse the file
        (CapReached) when the node is at its cap with nothing left to prune."""
        self.storage.make_room()
        warnings = self._storage_warnings(item)
        if warnings:
            self.outbox.add(self._stamped(warnings))
        self.storage.admit()

    def _storage_warnings(self, item: MediaItem) -> list[EventPayload]:
        """One storage_low event each time storage turns low (evidence near its limit, data
        that cannot be pruned near the cap, or the partition nearly full); [] otherwise."""
        cfg = self.config
        reason = self.storage.low()
        if reason is None and self.evidence.near_limit:
            used = self.evidence.held_bytes / 1e6
            reason = (
                f"节点{cfg.node}证据图片已占用{used:.0f}MB，接近上限{cfg.evidence_limit_mb:.0f}MB；"
                "低级别事件的旧图片将被清理",
                f"node {cfg.node} evidence uses {used:.0f} MB of its "
                f"{cfg.evidence_limit_mb:.0f} MB limit; old low-severity images will be pruned",
            )
        was_low, self.storage_low = self.storage_low, reason
        if reason is None or was_low is not None:
            if was_low is not None and reason is None:
                log.warning("storage no longer low")
            return []
        log.warning("storage low: %s", reason[1])
        return [self._storage_warning(item, reason)]

    def _storage_warning(self, item: MediaItem, reason: tuple[str, str]) -> EventPayload:
        """The storage_low event for `reason` (Chinese, English)."""
        cfg = self.config
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
            rule=RuleName.STORAGE_LOW,
            severity=Severity.WARNING,
            count=1,
            confidence=1.0,
            source=item.path.name,
            message_zh=reason[0],
            message_en=reason[1],
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
        # Raising here would end the live camera's thread (health events are sent outside its
        # guard); the events cannot be kept anywhere else, so they are logged as lost.
        try:
            self.outbox.add(self._stamped(events))
        except Exception as exc:
            if not is_disk_full(exc):
                log.exception("live events lost: %d could not be stored", len(events))
                return
            log.error("live events lost: %d could not be stored, data disk full", len(events))

    def _save_evidence(
        self, item: MediaItem, analysis: Analysis
    ) -> tuple[list[EventPayload], list[EvidenceUpload]]:
        """Save the file's evidence; the most severe event carries the refs and owns the uploads."""
        events = list(analysis.events)
        lead = max(range(len(events)), key=lambda i: events[i].severity.rank)
        severity = events[lead].severity
        try:
            files = self.evidence.save(
                image=analysis.pixels(),
                detections=analysis.result.detections,
                camera=item.camera,
                day=item.captured_at.astimezone(self.config.tz).strftime("%Y-%m-%d"),
                stem=f"{item.path.stem}_{item.sha256[:8]}",
                severity=Severity(severity),
            )
        except (OSError, sqlite3.Error, MediaError) as exc:
            # a full disk (images or the evidence index) must not stop events: they matter more
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
        dest = dest_dir / item.path.name
        if dest.exists():
            dest = dest_dir / f"{item.sha256[:12]}_{item.path.name}"
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(item.path), dest)
        except OSError as exc:
            log.error("%s: could not move to %s: %s", item.path, dest_dir, exc)
            return None
        self.storage.added(dest)
        return dest

    def _heartbeat_loop(self) -> None:
        cfg = self.config
        while not self._stop.wait(cfg.heartbeat_s if self.link.connected else 1.0):
            if not self.link.connected:
                continue
            try:
                self._send_heartbeat()
            except Exception:  # the next heartbeat may succeed; a dead thread never would
                log.exception("heartbeat not sent")

    def _send_heartbeat(self) -> None:
        cfg = self.config
        hb = heartbeat(
            site=cfg.site,
            node=cfg.node,
            data_dir=cfg.data_dir,
            outbox_depth=self.outbox.depth(),
            last_seq=self.outbox.last_seq(),
            cameras=self.camera_states(),
            storage_near_limit=self.storage_low is not None,
            storage_used_mb=self.storage.used_bytes() / 1e6,
            storage_cap_mb=cfg.storage.cap_mb,
            link=self.link_watch.health(),
            clock_offset_ms=clock_offset_ms(),
            models={cfg.detector.backend: cfg.detector.model},
            release=self.release,
            release_error=self.updater.last_error if self.updater is not None else None,
        )
        self.link.publish(heartbeat_topic(cfg.site, cfg.node), encode(hb), qos=0)


def run(config: NodeConfig) -> None:
    """Run a node until it is told to stop."""
    node = EdgeNode(config)
    node.start()
    node.ready()
    log.info("node %s/%s running with %d camera(s)", config.site, config.node, len(config.cameras))
    try:
        node.wait()
    finally:
        node.stop()
