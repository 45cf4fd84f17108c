"""The one class that talks MQTT (paho-mqtt 2.x); pipeline code never imports paho itself."""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger(__name__)

# Reconnect backoff: paho doubles from min to max; a random start spreads a fleet of nodes that
# all lost the link at the same moment (a broker restart) so they do not reconnect in lockstep.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
# Enough in flight to fill a slow 4G link, small enough that a reconnect resends little.
MAX_INFLIGHT = 100


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how to connect."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None  # set to use TLS
    keepalive_s: int = 30


@dataclass(frozen=True, slots=True)
class Message:
    """An incoming message, decoupled from paho's type."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


Handler = Callable[[Message], None]


class PublishHandle:
    """Tracks one QoS>0 publish until the broker acknowledged it."""

    def __init__(self, info: paho.MQTTMessageInfo) -> None:
        self._info = info

    @property
    def mid(self) -> int:
        """MQTT message id."""
        return int(self._info.mid)

    def acknowledged(self) -> bool:
        """True once PUBACK arrived (QoS 1); False while waiting or when the publish failed."""
        try:
            return bool(self._info.is_published())
        except (RuntimeError, ValueError):
            return False

    def failed(self) -> bool:
        """True when paho could not send it (e.g. the link dropped at that moment): send again."""
        return self._info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the acknowledgement; False on timeout or failure."""
        try:
            self._info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False
        return self.acknowledged()


class MqttLink:
    """A persistent-session MQTT connection with reconnect, a retained status and dispatch by topic.

    `manual_ack=True` makes the caller acknowledge each QoS 1 message with `ack()` after it has
    been stored, so a crash before storage means the broker redelivers it.
    """

    def __init__(
        self,
        client_id: str,
        address: BrokerAddress,
        *,
        clean_session: bool = False,
        manual_ack: bool = False,
        will: tuple[str, bytes] | None = None,
        online: tuple[str, bytes] | None = None,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> None:
        self._address = address
        self._online = online
        self._manual_ack = manual_ack
        self._subs: dict[str, tuple[int, Handler]] = {}
        self._connected = threading.Event()
        self._stopping = False
        self._subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._sub_lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            manual_ack=manual_ack,
        )
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.max_queued_messages_set(0)  # unbounded: the outbox bounds what we hand over
        spread = random.uniform(0, 2 * reconnect_min_s)
        self._client.reconnect_delay_set(  # paho's hints say int, its arithmetic takes floats
            reconnect_min_s + spread,  # type: ignore[arg-type]
            max(reconnect_max_s, reconnect_min_s + spread),  # type: ignore[arg-type]
        )
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        if address.ca_file is not None:
            self._client.tls_set(ca_certs=str(address.ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_unrouted
        self._client.on_subscribe = self._on_subscribe

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; reconnects by itself until `stop()`."""
        a = self._address
        self._client.connect_async(a.host, a.port, keepalive=a.keepalive_s)
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (True) or the timeout passed (False)."""
        return self._connected.wait(timeout_s)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until connected and every subscription was acknowledged by the broker."""
        return self._subscribed.wait(timeout_s)

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return self._connected.is_set()

    def stop(self, offline: tuple[str, bytes] | None = None) -> None:
        """Publish a final retained status (optional), disconnect and stop the network thread."""
        self._stopping = True
        if offline is not None and self.connected:
            self.publish(offline[0], offline[1], retain=True).wait(2.0)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- traffic ---------------------------------------------------------------------------------
    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> PublishHandle:
        """Queue a publish; the handle tells when the broker acknowledged it."""
        return PublishHandle(self._client.publish(topic, payload, qos=qos, retain=retain))

    def subscribe(self, topic_filter: str, handler: Handler, *, qos: int = 1) -> None:
        """Route messages matching `topic_filter` to `handler` (re-subscribed on every connect)."""
        self._client.message_callback_add(_match_filter(topic_filter), self._wrap(handler))
        # Under the lock _on_connect sets `connected` with: either it sees this filter, or this
        # sees `connected` and subscribes here; never neither, never both.
        with self._sub_lock:
            self._subs[topic_filter] = (qos, handler)
            connected = self._connected.is_set()
        if connected:
            self._subscribe(self._client, topic_filter, qos)

    def _subscribe(self, client: paho.Client, topic_filter: str, qos: int) -> None:
        with self._sub_lock:
            self._subscribed.clear()
            _rc, mid = client.subscribe(topic_filter, qos=qos)
            if mid is not None:
                self._pending_subs.add(mid)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a message received with manual_ack (after it was stored)."""
        rc = self._client.ack(mid, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("ack of mid %s failed: %s", mid, paho.error_string(rc))

    # -- paho callbacks --------------------------------------------------------------------------
    def _wrap(self, handler: Handler) -> Callable[[paho.Client, object, paho.MQTTMessage], None]:
        # An exception raised into paho 2.x ends its network loop while `connected` stays True:
        # nothing would be received or sent again. So a handler's failure is logged here. With
        # manual_ack the handler did not ack, so the broker sends the message again after the
        # next reconnect; otherwise paho acknowledges it once this returns and it is gone.
        fate = (
            "left unacknowledged: the broker sends it again after a reconnect"
            if self._manual_ack
            else "acknowledged and dropped"
        )

        def _cb(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
            message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid)
            try:
                handler(message)
            except Exception:
                log.exception(
                    "handler %s failed on a message on %s (mid %s); %s",
                    getattr(handler, "__qualname__", handler),
                    message.topic,
                    message.mid,
                    fate,
                )

        return _cb

    def _on_unrouted(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        log.debug("message on unrouted topic %s", msg.topic)

    def _on_connect(
        self, client: paho.Client, _u: object, _flags: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to %s:%s", self._address.host, self._address.port)
        with self._sub_lock:
            self._pending_subs.clear()
            made = {topic_filter: qos for topic_filter, (qos, _h) in self._subs.items()}
        for topic_filter, qos in made.items():
            self._subscribe(client, topic_filter, qos)
        with self._sub_lock:
            if not self._pending_subs:
                self._subscribed.set()
        if self._online is not None:
            client.publish(self._online[0], self._online[1], qos=1, retain=True)
        with self._sub_lock:
            # subscribe() calls since `made` was taken saw `connected` still clear: ours to make
            late = {f: qos for f, (qos, _h) in self._subs.items() if made.get(f) != qos}
            self._connected.set()
        for topic_filter, qos in late.items():
            self._subscribe(client, topic_filter, qos)

    def _on_subscribe(
        self, _c: paho.Client, _u: object, mid: int, _reasons: object, _p: object
    ) -> None:
        with self._sub_lock:
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self._subscribed.set()

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _flags: object, reason: object, _p: object
    ) -> None:
        if self._connected.is_set() and not self._stopping:
            log.warning("disconnected from broker: %s (will reconnect)", reason)
        self._connected.clear()
        self._subscribed.clear()


def _match_filter(topic_filter: str) -> str:
    """paho routes callbacks by the filter without the $share/<group>/ prefix."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter
