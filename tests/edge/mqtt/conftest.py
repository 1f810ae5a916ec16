"""A real mosquitto on a free loopback port (anonymous, or with the shipped ACL), and a subscriber."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.mqtt.local_broker import free_port, mosquitto_binary

ROOT = Path(__file__).resolve().parents[3]
MOSQUITTO = mosquitto_binary()
ACL = ROOT / "systemd" / "mosquitto" / "edge-inspect.acl"
USERS = {"st1": "device-secret", "operator": "operator-secret", "mes": "mes-secret", "intruder": "x"}


class Broker:
    """mosquitto as a subprocess; can be paused (SIGSTOP), killed and restarted on its port."""

    def __init__(self, folder: Path, auth: bool) -> None:
        self.folder = folder
        self.port = free_port()
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning"]
        if os.geteuid() == 0:  # as root mosquitto drops to its own user, who cannot read the test dir
            lines.append("user root")
        if auth:
            passwd = folder / "passwd"
            passwd.write_text("")
            for user, pw in USERS.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, pw], check=True)
            lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {ACL}"]
        else:
            lines += ["allow_anonymous true"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:  # e.g. the port is still held: try again
                self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=log, stderr=log)
            time.sleep(0.1)
        raise RuntimeError(f"mosquitto did not start: {(self.folder / 'mosquitto.log').read_text()[-500:]}")

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def require(*programs: str) -> None:
    """Skip where a program is missing, on a developer's machine; in CI, ./run installs them,
    so a missing one there is a set-up defect and fails."""
    missing = [p for p in programs if not (shutil.which(p) or (p == "mosquitto" and MOSQUITTO))]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{', '.join(missing)} not installed in CI; ./run should have installed it")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (./run installs it)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    require("mosquitto")
    b = Broker(tmp_path, auth=False).start()
    yield b
    b.kill()


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Broker]:
    require("mosquitto", "mosquitto_passwd")
    b = Broker(tmp_path, auth=True).start()
    yield b
    b.kill()


class Subscriber:
    """A separate MQTT client, as an MES would run it; reconnects by itself."""

    def __init__(self, port: int, topic: str = "inspect/#", user: str | None = None) -> None:
        self.messages: list[tuple[str, dict[str, Any], bool, Any]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user:
            self.client.username_pw_set(user, USERS[user])
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"raw": msg.payload.decode(errors="replace")}
        with self._lock:
            self.messages.append((msg.topic, body, bool(msg.retain), msg.properties))

    def on(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b for t, b, _, _ in self.messages if t.endswith(suffix)]

    def results(self) -> list[dict[str, Any]]:
        return self.on("/result")

    def wait(self, predicate: Callable[[Subscriber], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"not met in {timeout} s; {len(self.messages)} messages")

    def publish(self, topic: str, payload: dict[str, Any] | bytes, props: Any = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload)
        self.client.publish(topic, data, qos=1, properties=props).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA (openssl), returning (cert, key)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def make_server_cert(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = folder / "broker.key", folder / "broker.csr", folder / "broker.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
                    "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
                    "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    """A TLS listener signed by a test CA; yields the broker and that CA's certificate."""
    require("mosquitto", "openssl")
    ca = make_ca(tmp_path, "test-ca")
    cert, key = make_server_cert(tmp_path, ca)
    b = Broker(tmp_path, auth=False)
    b.conf.write_text(b.conf.read_text() + f"cafile {ca[0]}\ncertfile {cert}\nkeyfile {key}\n")
    b.start()
    yield b, ca[0]
    b.kill()


SCHEMAS_DIR = ROOT / "edge" / "schemas"


def schema_for(topic: str) -> str | None:
    """The committed JSON Schema file for a message on ``topic`` (None for commands and unknown topics)."""
    if topic.endswith("/result"):
        return "result.schema.json"
    if topic.endswith("/status"):
        return "status.schema.json"
    if topic.endswith("/prompts/active"):
        return "prompts-active.schema.json"
    if topic.endswith("/response") or "/reply/" in topic or topic.startswith("replies/"):
        return "response.schema.json"
    return None


def validate_all(messages: list[tuple[str, dict[str, Any], bool, Any]]) -> int:
    """Validate every message with a schema, as an integrator's validator would; returns how many."""
    import jsonschema  # type: ignore[import-untyped]

    checked = 0
    for topic, body, _, _ in messages:
        name = schema_for(topic)
        if name is None:
            continue
        schema = json.loads((SCHEMAS_DIR / name).read_text())
        jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
        unlisted = _unlisted(body, schema, schema)
        assert not unlisted, f"{topic}: keys the schema does not list: {unlisted}"
        checked += 1
    return checked


def _unlisted(value: Any, node: dict[str, Any], root: dict[str, Any], where: str = "") -> list[str]:
    """Keys in a payload that its schema does not list. The schemas allow unknown keys (a later build's additions
    must not break a consumer), so validation alone would not catch a key the device sends undocumented."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].split("/")[-1]]
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        found = [_unlisted(value, b, root, where) for b in branches if _fits(value, b, root)]
        return min(found, key=len) if found else []
    out: list[str] = []
    if isinstance(value, dict) and "properties" in node:
        for key, item in value.items():
            if key not in node["properties"]:
                if node.get("additionalProperties") is not True:  # prompts/active: the prompt set's own keys
                    out.append(f"{where}{key}")
            else:
                out += _unlisted(item, node["properties"][key], root, f"{where}{key}.")
    elif isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        for key, item in value.items():
            out += _unlisted(item, node["additionalProperties"], root, f"{where}{key}.")
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            out += _unlisted(item, node["items"], root, f"{where}{i}.")
    return out


def _fits(value: Any, node: dict[str, Any], root: dict[str, Any]) -> bool:
    import jsonschema  # type: ignore[import-untyped]

    return bool(jsonschema.Draft202012Validator({**node, "$defs": root.get("$defs", {})}).is_valid(value))
