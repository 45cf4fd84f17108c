"""The generated Mosquitto configuration, run by a real mosquitto: TLS, passwords, ACLs."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.certs import dev_certs
from broker.client import BrokerAddress, Handler, Message, MqttLink
from broker.mosquitto import Deployment, NodeEntry, write_config
from broker.topics import TopicKind, event_topic, subscription
from tests.helpers import free_port, wait_for, wait_port


def _passwords(env_file: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    user = ""
    for line in env_file.read_text().splitlines():
        if line.startswith("# "):
            user = line[2:]
        elif "=" in line:
            users[user] = line.split("=", 1)[1]
    return users


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Deployment, dict[str, str], Path]]:

    root = tmp_path_factory.mktemp("secured")
    certs = dev_certs(root / "certs")
    dep = Deployment(
        port=free_port(),
        local_port=None,
        cafile=certs["ca.crt"],
        certfile=certs["server.crt"],
        keyfile=certs["server.key"],
        persistence_dir=root,
        run_as_user="root",
        nodes=[
            NodeEntry(site="changxing", node="cx-node-01"),
            NodeEntry(site="xiazhuhu", node="xz-node-01"),
        ],
    )
    w = write_config(dep, root / "conf")
    proc = subprocess.Popen(["mosquitto", "-c", str(w.conf)], stderr=subprocess.PIPE)
    if not wait_port(dep.port):
        proc.kill()  # reading stderr of a broker still running would block for ever
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"mosquitto did not listen on port {dep.port}: {err.decode(errors='replace')}")
    yield dep, _passwords(w.secrets), certs["ca.crt"]
    proc.terminate()
    proc.wait(10)


def _link(
    dep: Deployment,
    user: str,
    password: str,
    ca: Path,
    subscriptions: dict[str, Handler] | None = None,
) -> MqttLink:
    """A started link; its subscriptions are made on connect (wait_subscribed tells when)."""
    link = MqttLink(
        f"t-{user}-{time.monotonic_ns()}",
        BrokerAddress("127.0.0.1", dep.port, user, password, ca),
        clean_session=True,
    )
    for topic_filter, handler in (subscriptions or {}).items():
        link.subscribe(topic_filter, handler)
    link.start()
    return link


def _refused(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.name == "broker.client" and r.getMessage().startswith("broker refused the connection")
        for r in caplog.records
    )


def test_config_sizes_queue_for_days(tmp_path: Path) -> None:
    dep = Deployment(
        nodes=[NodeEntry(site="changxing", node="a")], backlog_days=7, events_per_node_day=20_000
    )
    text = write_config(dep, tmp_path).conf.read_text()
    assert "max_queued_messages 140000" in text
    assert "allow_anonymous false" in text and "persistence true" in text


def test_node_cannot_publish_as_another_site(
    secured: tuple[Deployment, dict[str, str], Path],
) -> None:
    dep, pw, ca = secured
    got: list[Message] = []
    central = _link(dep, "central", pw["central"], ca, {subscription(TopicKind.EVENT): got.append})
    assert central.wait_subscribed(10), "central's subscription was not acknowledged"
    node = _link(dep, "changxing.cx-node-01", pw["changxing.cx-node-01"], ca)
    assert node.wait_connected(10), "the node could not connect"
    node.publish(event_topic("xiazhuhu", "xz-node-01"), b"forged").wait(5)
    assert node.publish(event_topic("changxing", "cx-node-01"), b"own").wait(5)
    # The broker handles one client's publishes in order and delivers them to a subscriber in
    # that order: had "forged" been let through, it would have arrived before "own".
    assert wait_for(lambda: any(m.payload == b"own" for m in got), 10), "own event not delivered"
    assert [m.payload for m in got] == [b"own"]
    node.stop()
    central.stop()


def test_wrong_password_and_anonymous_refused(
    secured: tuple[Deployment, dict[str, str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    dep, _, ca = secured
    caplog.set_level(logging.ERROR, logger="broker.client")
    bad = _link(dep, "changxing.cx-node-01", "wrong", ca)
    assert wait_for(lambda: _refused(caplog), 10), "the wrong password got no refusal"
    assert not bad.connected
    bad.stop()
    caplog.clear()
    anon = MqttLink("anon", BrokerAddress("127.0.0.1", dep.port, ca_file=ca), clean_session=True)
    anon.start()
    assert wait_for(lambda: _refused(caplog), 10), "the anonymous client got no refusal"
    assert not anon.connected
    anon.stop()
