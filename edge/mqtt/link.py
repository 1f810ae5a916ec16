"""The MQTT link: one sender thread that owns the paho client and publishes the outbox.

paho callbacks only put events on a queue (and hand commands to the bridge, which queues them or answers
"busy"; nothing raised there may escape into paho's loop); everything else happens on the sender thread:
connecting (a fresh client per attempt, so only the outbox decides what is re-sent),
birth and retained topics, publishing undelivered results in seq order, reconciling
PUBACKs, and backing off. A PUBACK with a failure reason code (>= 0x80, e.g. 0x87 not
authorized) is not a delivery: the result stays in the outbox, the status names the
reason, and publishing pauses instead of retrying in a tight loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.config import MqttConfig
from edge.mqtt.outbox import Outbox
from edge.mqtt.payloads import MAX_COMMAND_BYTES, STATUS_SCHEMA_ID
from edge.mqtt.topics import Topics
from edge.results import RESULT_SCHEMA_ID

log = logging.getLogger("edge_inspect.mqtt")

CONNECT_TIMEOUT_S = 10.0
BACKOFF_MAX_S = 30.0
REFUSED_PAUSE_S = 10.0
# Commands are at most MAX_COMMAND_BYTES (answered with an error up to here, dropped by the broker beyond).
MAX_PACKET_BYTES = 4 * MAX_COMMAND_BYTES


@dataclass
class LinkState:
    connected: bool = False
    connects: int = 0
    published: int = 0
    delivered: int = 0
    refused: int = 0
    last_error: str | None = None
    inflight: dict[int, int] = field(default_factory=dict)  # mid -> seq


def reason_text(rc: Any) -> str:
    value = getattr(rc, "value", rc)
    return f"{rc} (0x{int(value):02x})" if isinstance(value, int) else str(rc)


def is_failure(rc: Any) -> bool:
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value >= 0x80


class MqttLink:
    """At-least-once delivery of the outbox, plus retained status and active prompts."""

    def __init__(self, cfg: MqttConfig, topics: Topics, outbox: Outbox,
                 status_payload: Callable[[str], str], retained: Callable[[], list[tuple[str, str, str]]],
                 on_message: Callable[[Any], None], problem: Callable[[str | None], None],
                 max_inflight: int = 100, on_connect: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.topics = topics
        self.outbox = outbox
        self._status_payload = status_payload  # state -> JSON
        self._retained = retained  # extra retained (topic, payload) re-sent on every connect
        # held while a retained topic is read and handed to paho, by the connect path and by whoever publishes a
        # new value (bridge._publish_prompts): the broker keeps the last one sent, so sends must follow reads
        self.retained_lock = threading.Lock()
        self._on_connect = on_connect or (lambda: None)  # before the client (and its will) is made
        self._on_message = on_message
        self._problem = problem
        self.max_inflight = max_inflight
        self.state = LinkState()
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._client: Any = None
        self._floor = 0  # results up to this seq existed before the current connection
        self._paused_until = 0.0
        self._status_sent: str | None = None
        # mid -> (what, fallback (topic, payload, properties) or None): responses, status, replays. A refusal
        # is logged; a response the broker refused on a client's response topic goes again on the default one
        self._others: dict[int, tuple[str, tuple[str, str, Any] | None]] = {}
        self._exited = threading.Event()
        self._exited.set()

    # ---- public ----
    def start(self) -> MqttLink:
        """Run the sender loop on a thread of its own (benchmarks; the station supervises ``run``)."""
        threading.Thread(target=self.run, name="mqtt-sender", daemon=True).start()
        return self

    def wake(self) -> None:
        """New results are in the outbox."""
        self._wake.set()

    def publish_now(self, topic: str, payload: str, retain: bool = False, properties: Any = None,
                    what: str | None = None, fallback: str | None = None) -> bool:
        """Responses, status, retained topics and replays (not the outbox): best effort, QoS 1. A broker
        that refuses one (an ACL) is logged with ``what``; with ``fallback``, it is sent again there (a
        response topic the station may not write: the answer goes to the default response topic)."""
        client = self._client
        if client is None or not self.state.connected:
            if what:
                log.warning("not connected: %s was not sent", what)
            return False
        info = client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc == 0 and what:
            self._others[info.mid] = (what, (fallback, payload, properties) if fallback and fallback != topic else None)
        return bool(info.rc == 0)

    def properties(self, schema_id: str, will: bool = False) -> Any:
        """The MQTT 5 properties of every message the station sends: content type ``application/json`` and the
        payload's schema id as the ``schema`` user property (None on MQTT 3.1.1, which has no properties)."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        if self.cfg.protocol != "5":
            return None
        props = Properties(PacketTypes.WILLMESSAGE if will else PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.UserProperty = [("schema", schema_id)]
        return props

    def result_properties(self, result_id: str) -> Any:
        """Every message that carries a result (live, re-sent or replayed) also has its ``id`` and the expiry."""
        props = self.properties(RESULT_SCHEMA_ID)
        if props is None:
            return None
        props.UserProperty = [("id", result_id)]  # paho appends user properties: this adds the id after 'schema'
        if self.cfg.message_expiry_s:
            props.MessageExpiryInterval = int(self.cfg.message_expiry_s)
        return props

    def stop(self, drain_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``drain_s``, say offline, disconnect."""
        deadline = time.monotonic() + drain_s
        while self.state.connected and self.outbox.stats()["backlog"] and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._exited.wait(drain_s + 5)

    # ---- paho callbacks: record events only ----
    def _cb_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self._events.put(("connect", client, rc))

    def _cb_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self._events.put(("disconnect", client, rc))

    def _cb_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any = None) -> None:
        self._events.put(("ack", client, mid, rc))
        self._wake.set()

    def _cb_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:  # an exception here would end paho's network loop without a disconnect event: never let one out
            self._on_message(message)
        except Exception:
            log.exception("handling a message on %s failed", getattr(message, "topic", "?"))

    # ---- the sender thread ----
    def _new_client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        protocol = mqtt.MQTTv5 if self.cfg.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id or "",
                             protocol=protocol)
        client.on_connect, client.on_disconnect = self._cb_connect, self._cb_disconnect
        client.on_publish, client.on_message = self._cb_publish, self._cb_message
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)
        self._on_connect()
        client.will_set(self.topics.status, self._status_payload("will"), qos=1, retain=True,
                        properties=self.properties(STATUS_SCHEMA_ID, will=True))
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password())
        if self.cfg.tls is not None:
            client.tls_set(ca_certs=str(self.cfg.tls.ca) if self.cfg.tls.ca else None,
                           certfile=str(self.cfg.tls.cert) if self.cfg.tls.cert else None,
                           keyfile=str(self.cfg.tls.key) if self.cfg.tls.key else None)
        return client

    def _connect_properties(self) -> Any:
        """MQTT 5: the largest packet the station takes (MAX_PACKET_BYTES), so that the broker drops an oversized
        command instead of handing the station hundreds of MB to hold before the command's size check."""
        if self.cfg.protocol != "5":
            return None
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.MaximumPacketSize = MAX_PACKET_BYTES
        return props

    def _connect(self) -> bool:
        """One attempt: TCP + CONNACK within CONNECT_TIMEOUT_S."""
        where = f"{self.cfg.host}:{self.cfg.port}"
        client = self._new_client()
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive,
                           properties=self._connect_properties())
        except (OSError, ValueError) as err:
            self._fail(f"cannot reach the broker at {where} ({err}); check mqtt.host/port and the network")
            return False
        client.loop_start()
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if event[0] == "connect" and event[1] is client:
                if is_failure(event[2]):
                    self._drop(client)
                    self._fail(f"the broker at {where} refused the connection: {reason_text(event[2])}; "
                               "check mqtt.username, the password and the broker's ACL")
                    return False
                self._client = client
                return True
            if event[0] == "disconnect" and event[1] is client:
                break
        self._drop(client)
        self._fail(f"no CONNACK from {where} within {CONNECT_TIMEOUT_S:g} s (TLS or protocol mismatch?)")
        return False

    def _fail(self, reason: str) -> None:
        self.state.last_error = reason
        self._problem(reason)

    def _drop(self, client: Any) -> None:
        try:
            client.loop_stop()
            client.disconnect()
        except Exception:  # noqa: BLE001 - a dead socket may fail either call; we discard the client anyway
            log.debug("mqtt client teardown failed", exc_info=True)

    def _on_connected(self) -> None:
        self.state.connected = True
        self.state.connects += 1
        self.state.inflight.clear()
        self._floor = self.outbox.last_seq()  # what exists now and is still pending is a replay
        self._problem(None)
        self._client.subscribe(self.topics.commands, qos=1)
        self._status_sent = None
        self._publish_status()
        with self.retained_lock:  # a prompt set activated meanwhile is sent after this one, never before
            for topic, payload, schema_id in self._retained():
                self._client.publish(topic, payload, qos=1, retain=True, properties=self.properties(schema_id))
        log.info("mqtt connected to %s:%s (%s undelivered results to replay)",
                 self.cfg.host, self.cfg.port, self.outbox.stats()["backlog"])

    def _publish_status(self) -> None:
        payload = self._status_payload("auto")
        key = json.dumps({k: v for k, v in json.loads(payload).items() if k not in ("ts", "outbox")})
        if key != self._status_sent and self.publish_now(self.topics.status, payload, retain=True,
                                                         properties=self.properties(STATUS_SCHEMA_ID)):
            self._status_sent = key

    def _send_pending(self) -> None:
        if time.monotonic() < self._paused_until:
            return
        room = self.max_inflight - len(self.state.inflight)
        if room <= 0:
            return
        rows = self.outbox.pending(room, exclude=set(self.state.inflight.values()))
        sent = []
        for row in rows:
            payload = row.payload
            if row.attempts > 0 or row.seq <= self._floor:
                data = json.loads(payload)
                data["replayed"] = True
                payload = json.dumps(data, separators=(",", ":"))
            info = self._client.publish(self.topics.result(row.camera), payload, qos=1,
                                        properties=self.result_properties(row.id))
            if info.rc != 0:
                break
            self.state.inflight[info.mid] = row.seq
            sent.append(row.seq)
        if sent:
            self.outbox.mark_sent(sent)
            self.state.published += len(sent)

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind, client = event[0], event[1]
        if client is not self._client:
            return  # an event of a discarded client
        if kind == "ack":
            seq = self.state.inflight.pop(event[2], None)
            if seq is None:
                other = self._others.pop(event[2], None)
                if other is not None and is_failure(event[3]):
                    what, fallback = other
                    log.warning("the broker refused %s: %s (check the broker's ACL)%s", what, reason_text(event[3]),
                                f"; sending it on {fallback[0]} instead" if fallback else "")
                    if fallback:
                        self.publish_now(*fallback[:1], fallback[1], properties=fallback[2], what=f"{what} (again)")
                return
            if is_failure(event[3]):
                self.state.refused += 1
                self._paused_until = time.monotonic() + REFUSED_PAUSE_S
                self._fail(f"the broker refused result seq {seq}: {reason_text(event[3])}; it stays in the "
                           "outbox (check the broker ACL for this station's result topics)")
            else:
                self._acked.append(seq)
        elif kind == "disconnect":
            self.state.connected = False
            self._others.clear()
            self._fail(f"disconnected from {self.cfg.host}:{self.cfg.port} ({reason_text(event[2])})")
            self._drop(client)
            self._client = None

    def run(self) -> None:
        """The sender loop: connect, publish, reconcile acks, until ``stop()``."""
        self._exited.clear()
        try:
            self._loop()
        finally:
            self._exited.set()

    def _loop(self) -> None:
        backoff = 0.5
        self._acked: list[int] = []
        while not self._stop.is_set():
            if self._client is None:
                if self._connect():
                    backoff = 0.5
                    self._on_connected()
                else:
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
            self._cycle()
        self._shutdown()

    def _cycle(self) -> None:
        self._send_pending()
        self._wake.wait(0.05)
        self._wake.clear()
        while True:
            try:
                self._handle(self._events.get_nowait())
            except queue.Empty:
                break
        if self._acked:
            self.outbox.mark_delivered(self._acked)
            self.state.delivered += len(self._acked)
            if not self.state.refused or time.monotonic() >= self._paused_until:
                self._problem(None)
            self._acked = []
        if self._client is not None:
            self._publish_status()

    def _shutdown(self) -> None:
        client = self._client
        if client is None:
            return
        info = client.publish(self.topics.status, self._status_payload("offline"), qos=1, retain=True,
                              properties=self.properties(STATUS_SCHEMA_ID))
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(timeout=2)
        self._drop(client)
        self._client = None
        self.state.connected = False
