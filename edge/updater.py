"""Signed model releases pulled from central: download, verify, switch, self-test, roll back.

Layout under the node's releases folder:

    versions/<version>/   the files of each release kept (the one in use and the one before)
    current  -> versions/<version>    the release the node runs (absent: the model store)
    previous -> versions/<version>    the release before it, kept for a rollback
    staging/              downloads in progress (emptied at the start of every attempt)
    switching.json        written before a switch, removed after the self-test passed

An update round: ask central for the latest version; download `release.json` and `release.sig`
and check the signature against the public key in the node's config; check the disk has room;
download every file, checking its size and sha256; rename the staged folder into `versions/`;
point `current` at it (a symlink replaced with os.replace); load the models from it and run
them on a generated frame (the self-test); on success hand the loaded models to the pipeline,
on failure point `current` back. A node that stopped between switch and self-test finds
`switching.json` at start and goes back to the release before it.

Without any release (`current` absent) the node runs on the model store filled by
`wildwatch models import` (offline sites) or `models pull`, as before.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

from edge.config import NodeConfig, UpdateSettings
from edge.detect import DetectionResult, Detector
from models.release import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    ReleaseError,
    ReleaseFile,
    ReleaseManifest,
    Role,
    decode_public_key,
    verify,
)
from models.species import load_catalogue

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# Room left on the data disk after a release is downloaded: the outbox and evidence still need
# to write; a release that would leave less is not downloaded at all.
DISK_MARGIN_BYTES = 64 * 1024 * 1024
SWITCHING_NAME = "switching.json"
SELF_TEST_SIZE = (480, 640)  # height, width of the generated frame: a camera trap's aspect

T = TypeVar("T")


class UpdateRefused(ReleaseError):
    """A release that was not switched to (or was switched back from); the message says why."""


class NoSpace(UpdateRefused):
    """Not enough disk for a release: not held against it, tried again at the next check."""


class SelfTestError(ReleaseError):
    """The models of a release did not load or did not give a sane result on the test frame."""


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What one update round did."""

    version: str | None  # the latest version central offers (None: nothing published)
    switched: bool = False
    detail: str = ""
    verify_s: float = 0.0  # download + signature + size + sha256
    self_test_s: float = 0.0


# -- the self-test -------------------------------------------------------------------------------
def self_test_frame() -> npt.NDArray[np.uint8]:
    """A deterministic BGR frame: a dusk-coloured gradient with a dark blob and bright bars.

    Generated, not shipped (no camera image may be committed). The expectation is not an
    animal: it is that the models load, run, and return finite scores and boxes inside it.
    """
    h, w = SELF_TEST_SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frame = np.empty((h, w, 3), dtype=np.float32)
    frame[..., 0] = 60 + 80 * (y / h)  # blue rises towards the ground
    frame[..., 1] = 90 + 60 * (x / w)
    frame[..., 2] = 120 - 40 * (y / h)
    blob = ((x - w * 0.4) / (w * 0.12)) ** 2 + ((y - h * 0.6) / (h * 0.15)) ** 2 <= 1.0
    frame[blob] = (30, 35, 40)
    frame[40:60, 50 : w - 50] = 230
    return np.clip(frame, 0, 255).astype(np.uint8)


def check_result(result: DetectionResult, frame: npt.NDArray[np.uint8]) -> None:
    """SelfTestError unless the result is sane for `frame`: its size, finite scores in [0, 1]
    and finite boxes inside the frame (a few pixels of rounding allowed)."""
    h, w = frame.shape[:2]
    if (result.width, result.height) != (w, h):
        raise SelfTestError(
            f"自检失败 / self-test failed: result is for {result.width}x{result.height}, "
            f"the frame is {w}x{h}"
        )
    for d in result.detections:
        values = (d.x1, d.y1, d.x2, d.y2, d.score)
        if not all(math.isfinite(v) for v in values) or not 0.0 <= d.score <= 1.0:
            raise SelfTestError(f"自检失败 / self-test failed: non-finite or bad score in {d}")
        if d.x1 < -2 or d.y1 < -2 or d.x2 > w + 2 or d.y2 > h + 2 or d.x2 < d.x1 or d.y2 < d.y1:
            raise SelfTestError(f"自检失败 / self-test failed: box outside the frame: {d}")


# -- the releases folder ------------------------------------------------------------------------
class ReleaseFolder:
    """The node's releases on disk: versions kept, `current` and `previous`, the switch."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        self.staging = root / "staging"

    def _link(self, name: str) -> str | None:
        try:
            target = os.readlink(self.root / name)
        except (FileNotFoundError, OSError):
            return None
        return Path(target).name

    def current(self) -> str | None:
        """The version in use, or None (the node runs on the model store)."""
        return self._link("current")

    def previous(self) -> str | None:
        """The version kept for a rollback."""
        return self._link("previous")

    def path(self, version: str) -> Path:
        """The folder of a kept version."""
        return self.versions / version

    def current_dir(self) -> Path | None:
        """The folder of the version in use, or None."""
        version = self.current()
        return self.path(version) if version is not None else None

    def _point(self, name: str, version: str | None) -> None:
        """Point `name` at `version` (or remove it) atomically: a new symlink renamed over it."""
        link = self.root / name
        if version is None:
            link.unlink(missing_ok=True)
            return
        tmp = self.root / f".{name}.{os.getpid()}.{threading.get_ident()}"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("versions") / version, tmp)  # relative: the folder may be moved
        os.replace(tmp, link)
        _fsync_dir(self.root)

    def switch(self, version: str) -> str | None:
        """Make `version` current and the old current previous; returns the old current.

        `switching.json` records the step first, so a stop before the self-test passed is
        undone at the next start (recover()).
        """
        old = self.current()
        marker = {"from": old, "to": version, "previous": self.previous()}
        _write_atomic(self.root / SWITCHING_NAME, json.dumps(marker).encode())
        self._point("current", version)
        if old is not None and old != version:
            self._point("previous", old)
        return old

    def confirm(self) -> None:
        """The self-test passed: the switch stands; versions other than current and previous
        are deleted."""
        (self.root / SWITCHING_NAME).unlink(missing_ok=True)
        keep = {self.current(), self.previous()}
        for folder in self.versions.iterdir() if self.versions.is_dir() else ():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def rollback(self) -> str | None:
        """Undo an unconfirmed switch: `current` and `previous` as they were before it;
        returns the version now current (None: the model store)."""
        marker_path = self.root / SWITCHING_NAME
        try:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return self.current()
        failed = marker.get("to")
        self._point("current", marker.get("from"))
        self._point("previous", marker.get("previous"))
        marker_path.unlink(missing_ok=True)
        if failed and failed not in {self.current(), self.previous()}:
            shutil.rmtree(self.path(failed), ignore_errors=True)
        return self.current()

    def recover(self) -> str | None:
        """At start: a switch whose self-test never finished is rolled back; returns the
        version rolled back from, if any."""
        marker_path = self.root / SWITCHING_NAME
        if not marker_path.exists():
            return None
        try:
            failed = json.loads(marker_path.read_text(encoding="utf-8")).get("to")
        except ValueError:
            failed = None
        self.rollback()
        return str(failed) if failed else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _clear_text(url: str) -> bool:
    """True for a plain-http URL to a host other than this machine (the token would be sent
    readable by anyone on the way)."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http" or parsed.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(parsed.host).is_loopback
    except ValueError:  # a host name
        return True


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


# -- the updater ---------------------------------------------------------------------------------
class Updater(Generic[T]):
    """Pulls, checks and switches to central's latest release; one round at a time.

    `load(folder)` loads the models of a release and runs the self-test, returning them (or
    raising); `activate(models, version)` hands them to the pipeline. Both come from the node,
    so this module needs no pipeline.
    """

    def __init__(
        self,
        settings: UpdateSettings,
        token: str,
        folder: ReleaseFolder,
        *,
        load: Callable[[Path], T],
        activate: Callable[[T, str | None], None],
        client: httpx.Client | None = None,
    ) -> None:
        self._settings = settings
        self._public_key = decode_public_key(settings.public_key)
        self.folder = folder
        self._load = load
        self._activate = activate
        self._client = client or httpx.Client(timeout=settings.timeout_s)
        self._owns_client = client is None
        self._base = settings.central_url.rstrip("/") + "/api/releases"
        if _clear_text(settings.central_url):
            log.warning(
                "模型发布地址为明文 http，节点令牌以明文传输 / updates.central_url %s is plain "
                "http to another host: the node's token travels in clear text; use https",
                settings.central_url,
            )
        self._auth = {"Authorization": f"Bearer {token}"}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._force = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: dict[str, str] = {}  # version -> why; not tried again unless asked
        self.last_error: str | None = None  # why the last release was refused or rolled back

    # -- thread ------------------------------------------------------------------------------
    def start(self) -> None:
        """Check at once, then every `check_s` and whenever request() is called."""
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="release-updater", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Central's `update` command: check now, trying again a version refused before."""
        self._force = True
        self._wake.set()

    @property
    def alive(self) -> bool:
        """True while the update thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current round."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._owns_client:
            self._client.close()

    def _run(self) -> None:
        interval = self._settings.check_s
        while not self._stop.is_set():
            self._wake.wait(interval)
            if self._stop.is_set():
                return
            self._wake.clear()
            force, self._force = self._force, False
            try:
                self.check(force=force)
            except Exception:  # one bad round must not end updates for good
                log.exception("model release check failed")

    # -- one round ------------------------------------------------------------------------------
    def check(self, *, force: bool = False) -> UpdateOutcome:
        """Look for a newer release and switch to it if it verifies and passes its self-test.

        A refused release raises nothing: the reason is logged, kept in `last_error` (sent in
        the heartbeat) and in the outcome. Central unreachable is logged, not kept.
        """
        with self._lock:
            try:
                version = self._latest()
            except (httpx.HTTPError, UpdateRefused) as exc:
                log.warning("model release: central not reachable: %s", exc)
                return UpdateOutcome(None, detail=str(exc))
            if version is None or version == self.folder.current():
                return UpdateOutcome(version)
            if version in self._refused and not force:
                return UpdateOutcome(version, detail=self._refused[version])
            try:
                return self._update(version)
            except httpx.HTTPError as exc:  # a transient fault: tried again at the next round
                log.warning("model release %s: download failed: %s", version, exc)
                return UpdateOutcome(version, detail=str(exc))
            except NoSpace as exc:  # space may be freed: not refused, tried at the next check
                self.last_error = f"{version}: {exc}"
                log.error("model release %s not downloaded, tried again later: %s", version, exc)
                return UpdateOutcome(version, detail=str(exc))
            except ReleaseError as exc:
                self.refuse(version, str(exc))
                return UpdateOutcome(version, detail=str(exc))
            finally:
                shutil.rmtree(self.folder.staging, ignore_errors=True)

    def refuse(self, version: str, reason: str) -> None:
        """Refuse `version`: periodic checks and the one at start skip it, only central's
        `update` command (check(force=True)) tries it again. The node calls this for a switch
        rolled back at start, so a release whose self-test kills the node (out of memory) is
        not switched to again at every restart."""
        self._refused[version] = reason
        self.last_error = f"{version}: {reason}"
        log.error(
            "model release %s refused, still running %s: %s",
            version,
            self.folder.current() or "the model store",
            reason,
        )

    def _latest(self) -> str | None:
        response, body = self._read_small("latest")
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            text = body[:200].decode("utf-8", "replace")
            raise UpdateRefused(f"中心拒绝本节点令牌 / central refused this node's token: {text}")
        response.raise_for_status()
        try:
            version = json.loads(body).get("version")
        except (ValueError, AttributeError) as exc:
            raise UpdateRefused(f"中心答复无效 / central's latest is not JSON: {exc}") from exc
        return str(version) if version else None

    def _read_small(self, path: str) -> tuple[httpx.Response, bytes]:
        """The response and body of a small GET under the releases API, read in chunks and
        stopped past MAX_MANIFEST_BYTES (UpdateRefused): never a whole hostile body in memory."""
        body = bytearray()
        with self._client.stream("GET", f"{self._base}/{path}", headers=self._auth) as response:
            for chunk in response.iter_bytes(16 * 1024):
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise UpdateRefused(
                        f"{path} 过大 / {path} is larger than {MAX_MANIFEST_BYTES} bytes"
                    )
        return response, bytes(body)

    def _update(self, version: str) -> UpdateOutcome:
        started = time.perf_counter()
        staged = self._download(version)
        verify_s = time.perf_counter() - started
        target = self.folder.path(version)
        if target.exists():  # left by a release refused before and asked for again
            shutil.rmtree(target)
        self.folder.versions.mkdir(parents=True, exist_ok=True)
        os.rename(staged, target)
        self.folder.switch(version)
        tested = time.perf_counter()
        try:
            models = self._load(target)
            self_test_s = time.perf_counter() - tested
            self._activate(models, version)
        except Exception as exc:
            back = self.folder.rollback() or "the model store"
            raise SelfTestError(
                f"自检失败，已回滚 / self-test failed, rolled back to {back}: {exc}"
            ) from exc
        self.folder.confirm()
        self.last_error = None
        log.info(
            "model release %s in use (verified in %.2f s, self-test %.2f s)",
            version,
            verify_s,
            self_test_s,
        )
        return UpdateOutcome(version, switched=True, verify_s=verify_s, self_test_s=self_test_s)

    def _download(self, version: str) -> Path:
        """Fetch and check the whole release into a staging folder; returns that folder."""
        shutil.rmtree(self.folder.staging, ignore_errors=True)
        self.folder.staging.mkdir(parents=True, exist_ok=True)
        data = self._get_small(version, MANIFEST_NAME)
        signature = self._get_small(version, SIGNATURE_NAME)
        manifest = verify(data, signature, self._public_key)
        if manifest.version != version:
            raise UpdateRefused(
                f"版本不符 / central offers {version} but the signed manifest is {manifest.version}"
            )
        self._check_newer(manifest)
        free = shutil.disk_usage(self.folder.root).free
        if free < manifest.total_bytes + DISK_MARGIN_BYTES:
            raise NoSpace(
                f"磁盘空间不足 / not enough disk: the release needs {manifest.total_bytes} bytes "
                f"plus {DISK_MARGIN_BYTES} spare, {free} free"
            )
        staged = Path(tempfile.mkdtemp(prefix=f"{version}.", dir=self.folder.staging))
        try:
            for entry in manifest.files:
                self._fetch(version, entry, staged / entry.name)
            _write_atomic(staged / MANIFEST_NAME, data)
            _write_atomic(staged / SIGNATURE_NAME, signature)
        except OSError as exc:
            if _no_space(exc):
                raise NoSpace(f"磁盘已满 / disk full while downloading: {exc}") from exc
            raise
        return staged

    def _check_newer(self, manifest: ReleaseManifest) -> None:
        """UpdateRefused unless `manifest` was signed after the release in use: an older set
        offered again (a replay or a downgrade) is refused, even on central's `update` command;
        to go back, central publishes the old files again as a new version."""
        current = self.folder.current_dir()
        if current is None:
            return
        try:
            in_use = ReleaseManifest.model_validate_json((current / MANIFEST_NAME).read_bytes())
        except (OSError, ValueError) as exc:
            log.warning(
                "release %s: no readable %s (%s); the new release's age is not compared",
                current.name,
                MANIFEST_NAME,
                exc,
            )
            return
        if manifest.created_at <= in_use.created_at:
            raise UpdateRefused(
                f"版本过旧（降级或重放），未采用 / {manifest.version} (signed "
                f"{manifest.created_at.isoformat()}) is not newer than {in_use.version} in use "
                f"(signed {in_use.created_at.isoformat()}): a downgrade or a replay; publish the "
                "old files again as a new version to go back"
            )

    def _get_small(self, version: str, name: str) -> bytes:
        response, body = self._read_small(f"{version}/{name}")
        response.raise_for_status()
        return body

    def _fetch(self, version: str, entry: ReleaseFile, dest: Path) -> None:
        """Download one file, stopping past its declared size; check size and sha256."""
        digest = hashlib.sha256()
        size = 0
        url = f"{self._base}/{version}/{entry.name}"
        with (
            self._client.stream("GET", url, headers=self._auth) as response,
            dest.open("wb") as out,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes(CHUNK_BYTES):
                size += len(chunk)
                if size > entry.size:
                    raise UpdateRefused(
                        f"文件过大 / {entry.name}: more than the {entry.size} bytes signed"
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size < entry.size:
            raise UpdateRefused(
                f"下载不完整 / {entry.name} truncated: {size} of {entry.size} bytes"
            )
        actual = digest.hexdigest()
        if actual != entry.sha256:
            raise UpdateRefused(
                f"校验和不符（文件被篡改或损坏）/ {entry.name}: sha256 {actual} is not the "
                f"signed {entry.sha256} (tampered or corrupt)"
            )


def release_gallery(store: Path) -> Path | None:
    """The reference gallery (a `gallery` file ending .zip) of the release in `store`, or None:
    a release that carries one replaces the gallery file the node's YAML names."""
    try:
        manifest = ReleaseManifest.model_validate_json((store / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError) as exc:
        log.warning(
            "release %s: no readable %s (%s); no gallery from it", store, MANIFEST_NAME, exc
        )
        return None
    for entry in manifest.files:
        if entry.role is Role.GALLERY and entry.name.endswith(".zip"):
            path = store / entry.name
            return path if path.is_file() else None
    return None


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """The detector of one release, loaded and self-tested, ready for the pipeline."""

    detector: Detector
    self_test: DetectionResult


def load_and_test(config: NodeConfig, store: Path) -> LoadedModels:
    """Load the configured detector from `store` and run it on the generated frame; with the
    classifier on, its model must load from `store` too (it is taken from the release at the
    next start, with the node's gallery). SelfTestError when anything fails."""
    from edge.classify import create as create_classifier
    from edge.detect import create as create_detector

    frame = self_test_frame()
    try:
        if config.classifier.enabled:  # loaded, then released: not kept beside the detector
            classifier = create_classifier(
                config.classifier, store, load_catalogue(config.catalogue)
            )
            del classifier
        detector = create_detector(config.detector, store)
        result = detector.detect(frame)
    except Exception as exc:  # whatever stops a model (a missing file, a bad graph) fails it
        raise SelfTestError(f"模型无法加载或运行 / models do not load or run: {exc}") from exc
    check_result(result, frame)
    return LoadedModels(detector, result)
