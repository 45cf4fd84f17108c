"""Model releases reach the node safely: real central (uvicorn), real mosquitto, real models.

A good release is pulled on central's `update` command, verified, switched to and self-tested,
and its version rides on every heartbeat and event. A tampered file, a truncated file, a wrong
signature, a release whose self-test fails, a full disk and a stop in the middle of a switch
each leave the node on the release it had, with the reason kept for the heartbeat.
"""

from __future__ import annotations

import queue
import shutil
import tracemalloc
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import httpx
import numpy as np
import pytest

from broker.client import BrokerAddress, Message, MqttLink
from broker.payloads import EventPayload, HeartbeatPayload
from broker.topics import heartbeat_topic
from broker.validate import parse_message
from central.releases import announce
from edge.app import EdgeNode
from edge.classify.gallery import Bundle, GalleryClassifier, GalleryItem, write_bundle
from edge.config import NodeConfig, parse_config
from edge.detect import DetectionResult
from edge.ingest.folder import media_item
from edge.updater import (
    LoadedModels,
    ReleaseFolder,
    SelfTestError,
    Updater,
    check_result,
    load_and_test,
    release_gallery,
    self_test_frame,
)
from models.release import decode_public_key, load_signing_key, sign
from tests.edge.conftest import TinyDisk
from tests.factories import stamp_copy
from tests.helpers import MosquittoServer, wait_for
from tests.releases import (
    DETECTOR_FILES,
    NODE,
    NODE_TOKEN,
    TOKEN_ENV,
    CentralServer,
    release_source,
    running_central,
    signing_key,
)

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def central(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CentralServer]:
    monkeypatch.setenv(TOKEN_ENV, NODE_TOKEN)
    key, _ = signing_key(tmp_path / "keys")
    with running_central(tmp_path / "central", key) as server:
        yield server


@pytest.fixture()
def source(shared_dir: Path, tmp_path: Path) -> Path:
    """The files of a good release: the default detector's models and labels."""
    return release_source(shared_dir / "models", tmp_path / "src")


class Watcher:
    """A test client on the broker: collects the node's heartbeats, sends it commands."""

    def __init__(self, port: int) -> None:
        self.heartbeats: queue.Queue[HeartbeatPayload] = queue.Queue()
        self.link = MqttLink("release-test-watcher", BrokerAddress("127.0.0.1", port))
        self.link.subscribe(heartbeat_topic(*NODE), self._keep)

    def _keep(self, message: Message) -> None:
        _topic, payload = parse_message(message.topic, message.payload)
        if isinstance(payload, HeartbeatPayload):
            self.heartbeats.put(payload)

    def heartbeat(self, release: str) -> HeartbeatPayload:
        """The next heartbeat naming `release` (earlier ones were sent before the switch)."""
        while True:
            hb = self.heartbeats.get(timeout=10)
            if hb.release == release:
                return hb

    def update(self, central: CentralServer) -> None:
        """Central's `update` command to its nodes (what `release publish --notify` sends)."""
        told = announce(
            config=central.config,
            send=lambda topic, payload: self.link.publish(topic, payload).wait(10),
        )
        assert told == ["/".join(NODE)]


@pytest.fixture()
def watcher(mosquitto: MosquittoServer) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port)
    w.link.start()
    assert w.link.wait_subscribed(10)
    yield w
    w.link.stop()


def public_key(central: CentralServer) -> str:
    return (central.key.parent / "release.key.pub").read_text().strip()


def node_config(
    tmp_path: Path,
    central: CentralServer,
    models_dir: Path,
    *,
    port: int = 1883,
    releases_dir: Path | None = None,
    key: str | None = None,
) -> NodeConfig:
    updates: dict[str, Any] = {
        "central_url": central.url,
        "public_key": key or public_key(central),
        "token_env": TOKEN_ENV,
        "check_s": None,
    }
    if releases_dir is not None:
        updates["releases_dir"] = str(releases_dir)
    return parse_config(
        {
            "site": NODE[0],
            "node": NODE[1],
            "model_store": str(models_dir),
            "data_dir": str(tmp_path / "edge"),
            "mqtt": {"port": port},
            "cameras": [{"id": "cam1"}],
            "classifier": {"enabled": False},
            "heartbeat_s": 0.2,
            "updates": updates,
        }
    )


def updater(config: NodeConfig, activated: list[str | None] | None = None) -> Updater[LoadedModels]:
    """The node's updater on its own: the real self-test, activation recorded."""
    assert config.updates is not None
    folder = ReleaseFolder(config.releases_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    seen = activated if activated is not None else []
    return Updater(
        config.updates,
        NODE_TOKEN,
        folder,
        load=partial(load_and_test, config),
        activate=lambda _models, version: seen.append(version),
    )


def on_disk(folder: ReleaseFolder) -> tuple[str | None, str | None, list[str]]:
    """(current, previous, versions kept)."""
    kept = sorted(p.name for p in folder.versions.iterdir()) if folder.versions.is_dir() else []
    return folder.current(), folder.previous(), kept


# -- the whole road: command over MQTT, switch, heartbeat and event carry the version ----------
def test_update_command_switches_and_every_heartbeat_and_event_names_the_release(
    tmp_path: Path,
    central: CentralServer,
    source: Path,
    models_dir: Path,
    images_dir: Path,
    mosquitto: MosquittoServer,
    watcher: Watcher,
) -> None:
    config = node_config(tmp_path, central, models_dir, port=mosquitto.port)
    node = EdgeNode(config)
    node.start()
    try:
        assert node.updater is not None and node.release is None  # on the model store
        before = node.pipeline.detector
        central.publish(source, "2026.12.03-1")
        watcher.update(central)
        assert wait_for(lambda: node.release == "2026.12.03-1", 60), node.updater.last_error
        folder = node.updater.folder
        assert on_disk(folder) == ("2026.12.03-1", None, ["2026.12.03-1"])
        assert (config.releases_dir / "current").resolve() == folder.path("2026.12.03-1")
        assert node.pipeline.detector is not before  # the release's own detector runs now
        assert watcher.heartbeat("2026.12.03-1").release_error is None

        # a second release: the first is kept as `previous`
        central.publish(source, "2026.12.03-2")
        watcher.update(central)
        assert wait_for(lambda: node.release == "2026.12.03-2", 60), node.updater.last_error
        assert on_disk(folder) == (
            "2026.12.03-2",
            "2026.12.03-1",
            ["2026.12.03-1", "2026.12.03-2"],
        )

        node.publisher.stop()  # keep the events in the outbox to read them back
        photo = stamp_copy(
            images_dir / "bird_coral_bird.jpg",
            tmp_path / "c_0900.jpg",
            datetime(2026, 11, 21, 9, tzinfo=SH),
        )
        assert node.process(media_item(photo, "cam1", config.tz)) >= 1
        events = [parse_message(e.topic, e.payload)[1] for e in node.outbox.pending(limit=50)]
        assert events and all(
            isinstance(e, EventPayload) and e.release == "2026.12.03-2" for e in events
        )
    finally:
        node.stop()


# -- bad inputs: nothing switched, the release before kept -------------------------------------
@pytest.fixture()
def on_v1(
    tmp_path: Path, central: CentralServer, source: Path, models_dir: Path
) -> tuple[NodeConfig, Updater[LoadedModels]]:
    """A node's updater already on release v1 (a good one)."""
    config = node_config(tmp_path, central, models_dir)
    up = updater(config)
    central.publish(source, "v1")
    outcome = up.check()
    assert outcome.switched, outcome.detail
    return config, up


def test_tampered_file_is_refused_and_v1_kept(
    central: CentralServer, source: Path, on_v1: tuple[NodeConfig, Updater[LoadedModels]]
) -> None:
    _config, up = on_v1
    central.publish(source, "v2")
    stored = central.releases / "v2" / "nanodet_m_416_coco.onnx"
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte on central's disk (or on the way)
    stored.write_bytes(bytes(data))
    outcome = up.check()
    assert not outcome.switched
    assert "nanodet_m_416_coco.onnx" in outcome.detail and "tampered" in outcome.detail
    assert on_disk(up.folder) == ("v1", None, ["v1"])
    assert not up.folder.staging.exists()  # nothing half-downloaded left behind
    assert up.last_error is not None and up.last_error.startswith("v2: ")


def test_truncated_file_is_refused(
    central: CentralServer, source: Path, on_v1: tuple[NodeConfig, Updater[LoadedModels]]
) -> None:
    _config, up = on_v1
    central.publish(source, "v2")
    stored = central.releases / "v2" / "yolox_nano_416_coco.onnx"
    stored.write_bytes(stored.read_bytes()[:100_000])
    outcome = up.check()
    assert not outcome.switched and "truncated: 100000 of 3660092 bytes" in outcome.detail
    assert on_disk(up.folder) == ("v1", None, ["v1"])


def test_wrong_signature_is_refused_before_any_file_is_fetched(
    tmp_path: Path, central: CentralServer, source: Path, models_dir: Path
) -> None:
    other_key, other_public = signing_key(tmp_path / "other")
    config = node_config(tmp_path, central, models_dir, key=other_public)
    up = updater(config)
    central.publish(source, "v1")  # signed with central's key, not the one the node trusts
    outcome = up.check()
    assert not outcome.switched
    assert "signature check failed" in outcome.detail
    assert on_disk(up.folder) == (None, None, [])
    # and a signature replaced on central's disk (made with another key) is refused too
    good = node_config(tmp_path, central, models_dir)
    up2 = updater(good)
    sig = central.releases / "v1" / "release.sig"
    sig.write_bytes(
        sign((central.releases / "v1" / "release.json").read_bytes(), load_signing_key(other_key))
    )
    assert "signature check failed" in up2.check().detail
    assert up2.folder.current() is None
    assert decode_public_key(public_key(central)) != decode_public_key(other_public)


def test_release_that_fails_its_self_test_is_rolled_back(
    tmp_path: Path,
    central: CentralServer,
    source: Path,
    on_v1: tuple[NodeConfig, Updater[LoadedModels]],
) -> None:
    _config, up = on_v1
    bad = tmp_path / "bad"
    shutil.copytree(source, bad)
    # signed and whole, but the YOLOX file is not the model it claims to be
    shutil.copyfile(source / "nanodet_m_416_coco.onnx", bad / "yolox_nano_416_coco.onnx")
    central.publish(bad, "v2-bad")
    outcome = up.check()
    assert not outcome.switched
    assert "self-test failed, rolled back to v1" in outcome.detail
    assert on_disk(up.folder) == ("v1", None, ["v1"])  # the bad release is not kept
    assert not (up.folder.root / "switching.json").exists()
    assert up.last_error is not None and "v2-bad" in up.last_error
    # a refused version is not fetched again on every periodic check, only when asked
    assert up.check().detail == outcome.detail
    assert "self-test failed" in up.check(force=True).detail
    # the next good release clears the error
    central.publish(source, "v3")
    assert up.check().switched and up.last_error is None
    assert on_disk(up.folder) == ("v3", "v1", ["v1", "v3"])


def test_full_disk_refuses_before_downloading(
    tmp_path: Path,
    central: CentralServer,
    source: Path,
    models_dir: Path,
    tiny_disk: TinyDisk,
) -> None:
    config = node_config(tmp_path, central, models_dir, releases_dir=tiny_disk.root / "releases")
    up = updater(config)
    central.publish(source, "v1")
    outcome = up.check()
    assert not outcome.switched and "not enough disk" in outcome.detail
    assert on_disk(up.folder) == (None, None, [])
    assert not up.folder.staging.exists()
    # not held against the release: the next periodic check measures the disk again
    (tiny_disk.root / "other").write_bytes(b"\0" * 100_000)
    again = up.check()
    assert "not enough disk" in again.detail and again.detail != outcome.detail
    assert up.last_error is not None and "not enough disk" in up.last_error


def stopped_mid_switch(
    config: NodeConfig, central: CentralServer, source: Path, *, publish_v2: bool = False
) -> None:
    """What a power cut leaves: the node on v1, then v2 in place and `current` pointing at it,
    never self-tested (`publish_v2`: v2 is also central's latest)."""
    up = updater(config)
    central.publish(source, "v1")
    assert up.check().switched
    up.stop()
    if publish_v2:
        central.publish(source, "v2")
    shutil.copytree(up.folder.path("v1"), up.folder.path("v2"))
    up.folder.switch("v2")
    assert up.folder.current() == "v2"


def test_a_stop_between_switch_and_self_test_is_undone_at_start(
    tmp_path: Path,
    central: CentralServer,
    source: Path,
    models_dir: Path,
    mosquitto: MosquittoServer,
    watcher: Watcher,
) -> None:
    config = node_config(tmp_path, central, models_dir, port=mosquitto.port)
    stopped_mid_switch(config, central, source)
    node = EdgeNode(config)
    node.start()
    try:
        assert node.release == "v1"
        assert node.updater is not None
        assert on_disk(node.updater.folder) == ("v1", None, ["v1"])
        assert node.updater.last_error is not None
        assert "v2: " in node.updater.last_error and "switch interrupted" in node.updater.last_error
        hb = watcher.heartbeat("v1")
        assert hb.release_error is not None and "rolled back to v1" in hb.release_error
    finally:
        node.stop()


# -- the self-test itself ------------------------------------------------------------------------
def test_self_test_frame_is_deterministic_and_the_models_pass_on_it(
    tmp_path: Path, central: CentralServer, models_dir: Path
) -> None:
    frame = self_test_frame()
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, self_test_frame())
    loaded = load_and_test(node_config(tmp_path, central, models_dir), models_dir)
    assert (loaded.self_test.width, loaded.self_test.height) == (640, 480)
    with pytest.raises(SelfTestError, match="frame is 640x480"):
        check_result(DetectionResult([], 320, 240, "x", 1.0), frame)


def test_central_unreachable_is_not_a_refused_release(
    tmp_path: Path, central: CentralServer, models_dir: Path
) -> None:
    config = node_config(tmp_path, central, models_dir)
    assert config.updates is not None
    gone = config.updates.model_copy(update={"central_url": "http://127.0.0.1:9"})
    up = Updater(
        gone,
        NODE_TOKEN,
        ReleaseFolder(config.releases_dir),
        load=partial(load_and_test, config),
        activate=lambda _m, _v: None,
        client=httpx.Client(timeout=2),
    )
    outcome = up.check()
    assert outcome.version is None and not outcome.switched
    assert up.last_error is None  # a network fault is retried, not held against a release
    assert not config.releases_dir.exists() or on_disk(up.folder) == (None, None, [])


def test_config_refuses_a_public_key_that_is_not_ed25519(tmp_path: Path) -> None:
    from edge.config import ConfigError

    data: dict[str, Any] = {
        "site": NODE[0],
        "node": NODE[1],
        "cameras": [{"id": "cam1"}],
        "updates": {"central_url": "http://127.0.0.1:8000", "public_key": "AAAA"},
    }
    with pytest.raises(ConfigError, match=r"updates\.public_key: .*32 bytes"):
        parse_config(data)
    _, good = signing_key(tmp_path)
    data["updates"]["public_key"] = good
    config = parse_config(data)
    assert config.releases_dir == config.data_dir / "releases"


# -- a release that carries the station's reference gallery --------------------------------
CLASSIFIER_FILES = ("inat_bird_mobilenetv2_224_uint8.onnx", "inat_bird_labels.txt")
CROW = "Corvus brachyrhynchos"


def test_a_release_with_a_gallery_gives_the_node_that_gallery_at_start(
    tmp_path: Path,
    central: CentralServer,
    shared_dir: Path,
    images_dir: Path,
    models_dir: Path,
    mosquitto: MosquittoServer,
) -> None:
    src = release_source(
        shared_dir / "models", tmp_path / "src-g", (*DETECTOR_FILES, *CLASSIFIER_FILES)
    )
    frame = cv2.imread(str(images_dir / "ct_ena24_7951.jpg"))
    assert frame is not None
    ok, jpeg = cv2.imencode(".jpg", frame[717:996, 492:791])
    assert ok
    item = GalleryItem(CROW, jpeg.tobytes(), "ct_ena24_7951.jpg")
    # embeddings left out: the node computes them from the crop with its own classifier
    write_bundle(src / "gallery.zip", Bundle((item,), "inat_bird_mobilenetv2_224", "0" * 64))
    config = node_config(tmp_path, central, models_dir, port=mosquitto.port)
    config = config.model_copy(
        update={"classifier": config.classifier.model_copy(update={"enabled": True})}
    )
    assert config.gallery is None  # the YAML names no gallery
    central.publish(src, "g1")
    outcome = updater(config).check()
    assert outcome.switched, outcome.detail
    folder = ReleaseFolder(config.releases_dir)
    assert release_gallery(folder.path("g1")) == folder.path("g1") / "gallery.zip"
    assert release_gallery(tmp_path) is None  # not a release: no gallery, no error

    node = EdgeNode(config)
    node.start()
    try:
        assert node.release == "g1"
        classifier = node.pipeline.classifier
        assert isinstance(classifier, GalleryClassifier)
        assert classifier.gallery.labels == (CROW,)
        assert classifier.gallery_settings.path == folder.path("g1") / "gallery.zip"
    finally:
        node.stop()


# -- review fixes: refusals that last, start-up fallbacks, replays, bounded reads ------------------
@pytest.fixture()
def config(
    tmp_path: Path, central: CentralServer, models_dir: Path, mosquitto: MosquittoServer
) -> NodeConfig:
    """A node's configuration on the test broker."""
    return node_config(tmp_path, central, models_dir, port=mosquitto.port)


def test_a_version_rolled_back_at_start_is_not_tried_again_unless_asked(
    central: CentralServer, source: Path, config: NodeConfig
) -> None:
    # v2 published, the node stopped (an OOM kill) during its self-test: rolled back at start
    stopped_mid_switch(config, central, source, publish_v2=True)
    node = EdgeNode(config)
    node.start()
    try:
        assert node.release == "v1" and node.updater is not None
        # the start-up check and the periodic ones leave v2 alone: no loop of crashes
        outcome = node.updater.check()
        assert not outcome.switched and "switch interrupted" in outcome.detail
        assert node.release == "v1"
        assert on_disk(node.updater.folder) == ("v1", None, ["v1"])
        # central's explicit `update` command tries it again
        assert node.updater.check(force=True).switched
        assert node.release == "v2"
    finally:
        node.stop()


def test_a_release_that_cannot_serve_the_configured_models_falls_back_to_the_model_store(
    central: CentralServer, source: Path, config: NodeConfig
) -> None:
    central.publish(source, "v1")  # detector files only
    assert updater(config).check().switched
    # the operator turns the classifier on later: v1 has no classifier model
    with_classifier = config.model_copy(
        update={"classifier": config.classifier.model_copy(update={"enabled": True})}
    )
    node = EdgeNode(with_classifier)
    node.start()
    try:
        assert node.release is None  # runs on the model store, events say no release
        assert node.pipeline.classifier is not None
        assert node.updater is not None and node.updater.last_error is not None
        assert node.updater.last_error.startswith("v1: ")
        assert "模型仓库" in node.updater.last_error
    finally:
        node.stop()
    # `current` naming a folder that is gone
    shutil.rmtree(ReleaseFolder(config.releases_dir).path("v1"))
    node = EdgeNode(config)
    node.start()
    try:
        assert node.release is None and node.updater is not None
        assert node.updater.last_error is not None and "v1: " in node.updater.last_error
    finally:
        node.stop()


def test_an_older_release_offered_again_is_refused_even_when_forced(
    central: CentralServer, source: Path, on_v1: tuple[NodeConfig, Updater[LoadedModels]]
) -> None:
    _config, up = on_v1
    central.publish(source, "v2")
    assert up.check().switched
    # central's LATEST turned back to v1 (a replay or a downgrade): signed, but older
    (central.releases / "LATEST").write_text("v1\n", encoding="utf-8")
    for force in (False, True):
        outcome = up.check(force=force)
        assert not outcome.switched and "not newer" in outcome.detail
        assert outcome.detail.startswith("版本过旧")
    assert on_disk(up.folder) == ("v2", "v1", ["v1", "v2"])


def test_plain_http_to_a_remote_central_is_warned_about(
    tmp_path: Path, central: CentralServer, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = node_config(tmp_path, central, models_dir)
    assert config.updates is not None
    for url, warned in (
        ("http://10.0.0.5:8000", True),
        ("https://central.example.org", False),
        (central.url, False),
        ("http://localhost:8000", False),
    ):
        caplog.clear()
        settings = config.updates.model_copy(update={"central_url": url})
        Updater(
            settings,
            NODE_TOKEN,
            ReleaseFolder(config.releases_dir),
            load=partial(load_and_test, config),
            activate=lambda _m, _v: None,
        ).stop()
        assert ("明文" in caplog.text) is warned, url


def test_an_oversized_manifest_is_not_read_into_memory(
    central: CentralServer, source: Path, on_v1: tuple[NodeConfig, Updater[LoadedModels]]
) -> None:
    up = on_v1[1]
    central.publish(source, "v2")
    with (central.releases / "v2" / "release.json").open("ab") as out:
        out.write(b" " * (32 << 20))  # 32 MB of a hostile or broken manifest
    tracemalloc.start()
    try:
        outcome = up.check()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not outcome.switched and "larger than 65536 bytes" in outcome.detail
    assert peak < 8 << 20, peak  # read in chunks, stopped past the limit
    assert on_disk(up.folder) == ("v1", None, ["v1"])
