"""Central publishes signed model releases and serves them to nodes with their token."""

from __future__ import annotations

import hashlib
import queue
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from broker.client import BrokerAddress, Message, MqttLink
from broker.payloads import CommandName, CommandPayload
from broker.topics import TopicKind, subscription
from broker.validate import parse_message
from central.commands import cli
from models.release import decode_public_key, verify
from tests.helpers import MosquittoServer
from tests.releases import (
    NODE_TOKEN,
    TOKEN_ENV,
    CentralServer,
    release_source,
    running_central,
    signing_key,
)

VERSION = "2026.12.03-1"


@pytest.fixture()
def central(
    tmp_path: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CentralServer]:
    monkeypatch.setenv(TOKEN_ENV, NODE_TOKEN)
    key, _ = signing_key(tmp_path / "keys")
    with running_central(tmp_path / "central", key) as server:
        yield server


def _auth(token: str = NODE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_node_fetches_the_latest_release_byte_for_byte(
    central: CentralServer, shared_dir: Path, tmp_path: Path
) -> None:
    src = release_source(shared_dir / "models", tmp_path / "src")
    published = central.publish(src, VERSION)
    with httpx.Client(base_url=central.url, headers=_auth()) as client:
        assert client.get("/api/releases/latest").json() == {"version": VERSION}
        data = client.get(f"/api/releases/{VERSION}/release.json").content
        signature = client.get(f"/api/releases/{VERSION}/release.sig").content
        public = (central.key.parent / "release.key.pub").read_text()
        manifest = verify(data, signature, decode_public_key(public))
        assert manifest == published
        for entry in manifest.files:
            body = client.get(f"/api/releases/{VERSION}/{entry.name}").content
            assert len(body) == entry.size
            assert hashlib.sha256(body).hexdigest() == entry.sha256
            assert body == (src / entry.name).read_bytes()


def test_release_routes_need_a_node_token(central: CentralServer, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gallery.bin").write_bytes(b"x" * 10)
    central.publish(tmp_path / "src", VERSION)
    with httpx.Client(base_url=central.url) as client:
        assert client.get("/api/releases/latest").status_code == 401
        wrong = client.get("/api/releases/latest", headers=_auth("not-a-token"))
        assert wrong.status_code == 401
        assert "上传令牌" in wrong.json()["detail"]
        assert client.get(f"/api/releases/{VERSION}/gallery.bin").status_code == 401


def test_nothing_published_and_unknown_files_are_404(
    central: CentralServer, tmp_path: Path
) -> None:
    with httpx.Client(base_url=central.url, headers=_auth()) as client:
        none = client.get("/api/releases/latest")
        assert none.status_code == 404 and "尚未发布" in none.json()["detail"]
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "gallery.bin").write_bytes(b"x")
        central.publish(tmp_path / "src", VERSION)
        (central.releases / "secret.txt").write_text("not part of a release")
        for path in (
            f"/api/releases/{VERSION}/missing.onnx",
            "/api/releases/v9/gallery.bin",
            f"/api/releases/{VERSION}/..%2F..%2Fsecret.txt",
            "/api/releases/LATEST/secret.txt",
        ):
            assert client.get(path).status_code in (404, 422), path


def test_a_version_is_published_once_and_latest_moves(
    central: CentralServer, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gallery.bin").write_bytes(b"one")
    central.publish(tmp_path / "src", "v1")
    with pytest.raises(Exception, match="exists already"):
        central.publish(tmp_path / "src", "v1")
    (tmp_path / "src" / "gallery.bin").write_bytes(b"two")
    central.publish(tmp_path / "src", "v2")
    with httpx.Client(base_url=central.url, headers=_auth()) as client:
        assert client.get("/api/releases/latest").json() == {"version": "v2"}
        assert client.get("/api/releases/v1/gallery.bin").content == b"one"  # v1 kept whole
        assert client.get("/api/releases/v2/gallery.bin").content == b"two"


def test_publish_command(tmp_path: Path, shared_dir: Path) -> None:
    key, _ = signing_key(tmp_path / "keys")
    src = release_source(shared_dir / "models", tmp_path / "src", ("coco80.names",))
    config = tmp_path / "central.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\nalerts: {{duty_phones: ['13900000000']}}\n",
        encoding="utf-8",
    )
    args = ["release", "publish", str(src), "--config", str(config), "--key", str(key)]
    args.append("--no-notify")
    result = CliRunner().invoke(cli, [*args, "--version", VERSION])
    assert result.exit_code == 0, result.output
    assert "labels" in result.output and "coco80.names" in result.output
    folder = tmp_path / "data" / "releases" / VERSION
    assert sorted(p.name for p in folder.iterdir()) == [
        "coco80.names",
        "release.json",
        "release.sig",
    ]
    key.chmod(0o640)
    refused = CliRunner().invoke(cli, [*args, "--version", "v2"])
    assert refused.exit_code == 1 and "chmod 600" in refused.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o640


def test_publish_tells_every_uploading_node_over_mqtt(
    tmp_path: Path, mosquitto: MosquittoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, NODE_TOKEN)
    monkeypatch.setenv("WW_TEST_RELEASE_TOKEN_XZ", "release-token-of-xz-01-9876543210")
    key, _ = signing_key(tmp_path / "keys")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gallery.bin").write_bytes(b"x")
    config = tmp_path / "central.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "mqtt": {"port": mosquitto.port, "client_id": "release-cli-test"},
                "alerts": {"duty_phones": ["13900000000"]},
                "evidence": {
                    "uploaders": [
                        {"site": "changxing", "node": "cx-01", "token_env": TOKEN_ENV},
                        {
                            "site": "xiazhuhu",
                            "node": "xz-01",
                            "token_env": "WW_TEST_RELEASE_TOKEN_XZ",
                        },
                    ]
                },
            }
        ),
        encoding="utf-8",
    )
    received: queue.Queue[CommandPayload] = queue.Queue()

    def keep(message: Message) -> None:
        _topic, payload = parse_message(message.topic, message.payload)
        assert isinstance(payload, CommandPayload)
        received.put(payload)

    node = MqttLink("release-cli-node", BrokerAddress("127.0.0.1", mosquitto.port))
    node.subscribe(subscription(TopicKind.COMMAND), keep)
    node.start()
    assert node.wait_subscribed(10)
    try:
        args = ["release", "publish", str(tmp_path / "src"), "--config", str(config)]
        result = CliRunner().invoke(cli, [*args, "--key", str(key), "--version", VERSION])
        assert result.exit_code == 0, result.output
        assert "notified 2 node(s): changxing/cx-01, xiazhuhu/xz-01" in result.output
        got = sorted((received.get(timeout=10), received.get(timeout=10)), key=lambda c: c.site)
    finally:
        node.stop()
    assert [(c.site, c.node, c.command) for c in got] == [
        ("changxing", "cx-01", CommandName.UPDATE),
        ("xiazhuhu", "xz-01", CommandName.UPDATE),
    ]
