"""The MQTT bridge against a fake StationControl: fast checks of the command contract, no broker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.config import MqttConfig, StationConfig
from edge.mqtt.bridge import MqttBridge
from edge.mqtt.outbox import Outbox
from edge.service.control import Observers
from edge.service.status import StatusBoard
from tests.edge.fakes import SET, FakeControl

ROOT = "inspect/s/l/st"


@dataclass
class Message:
    topic: str
    payload: bytes
    properties: Any = None


@pytest.fixture
def bridge(tmp_path: Path) -> MqttBridge:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    status = StatusBoard()
    status.fact("version", "0.1.0")
    return MqttBridge(FakeControl(), MqttConfig(), StationConfig(site="s", line="l", station="st"), outbox,
                      status, Observers(), supervise=lambda *a, **k: None)


def run(bridge: MqttBridge, verb: str, body: Any) -> tuple[str, str | None, Any, str | None]:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return bridge._execute(Message(f"{ROOT}/cmd/{verb}", payload))


def test_each_verb_reaches_the_control(bridge: MqttBridge) -> None:
    control: FakeControl = bridge.control  # type: ignore[assignment]
    assert run(bridge, "prompts/set", {"id": "a", "args": {"prompt_set": SET, "requested_by": "mes-1"}})[2] == {
        "name": "fake", "version": control.prompt_state.version}
    assert run(bridge, "trigger", {"id": "b", "args": {"camera": "cam1", "part_id": "P-7"}})[2]["part_id"] == "P-7"
    assert run(bridge, "snapshot", {"id": "c", "args": {"camera": "cam1"}})[2] == {"snapshot": "cam1/snapshot-1.jpg"}
    assert run(bridge, "prompts/test", {"args": {"prompt_set": SET}})[2]["version"] == "candidate"
    assert run(bridge, "reload", {"args": {"requested_by": "ops"}})[2]["name"] == "fake"
    assert [c[0] for c in control.calls] == ["apply", "trigger", "snapshot", "preview", "reload"]
    assert control.calls[0] == ("apply", "mqtt:mes-1")


def test_prompts_active_turns_back_into_prompts_set(bridge: MqttBridge) -> None:
    active = json.loads(bridge.prompts_active_json(bridge.control.prompt_state))
    assert {"version", "source", "name", "categories"} <= set(active)
    verb, rid, result, error = run(bridge, "prompts/set", {"id": "x", "args": {"prompt_set": active}})
    assert error is None and result["version"] == active["version"]  # version and source are ignored


@pytest.mark.parametrize("body, expect_id, error", [
    ({"id": "u1", "args": {}}, "u1", "unknown command 'frobnicate'"),
    (b"{not json", None, "invalid command"),
    ({"id": "v1", "args": [], "extra": 1}, "v1", "invalid command"),
])
def test_errors_echo_the_id_they_could_read(bridge: MqttBridge, body: Any, expect_id: str | None, error: str) -> None:
    verb, rid, result, err = run(bridge, "frobnicate", body)
    assert rid == expect_id and result is None and err is not None and error in err


def test_a_verb_that_raises_unexpectedly_answers_with_an_error(bridge: MqttBridge) -> None:
    control: FakeControl = bridge.control  # type: ignore[assignment]
    control.snapshot = lambda camera: 1 / 0  # type: ignore[method-assign, assignment, return-value]
    verb, rid, result, err = run(bridge, "snapshot", {"id": "s9", "args": {"camera": "cam1"}})
    assert rid == "s9" and err is not None and err.startswith("internal error: ZeroDivisionError")


def test_bad_args_and_domain_errors_name_the_problem(bridge: MqttBridge) -> None:
    assert "part_id" in run(bridge, "trigger", {"id": "t", "args": {"camera": "cam1"}})[3]
    assert "unknown camera 'cam9'" in run(bridge, "trigger", {"id": "t", "args": {"camera": "cam9", "part_id": "P"}})[3]
    bad = {**SET, "templates": ["a {} {x}"]}
    assert "templates" in run(bridge, "prompts/set", {"id": "p", "args": {"prompt_set": bad}})[3]


def test_status_payloads(bridge: MqttBridge) -> None:
    live = json.loads(bridge.status_json("auto"))
    will = json.loads(bridge.status_json("will"))
    bye = json.loads(bridge.status_json("offline"))
    assert live["state"] == "online" and live["cameras"] == {"cam1": "streaming"} and live["ts"]
    assert live["backend_note"] is None
    bridge.status.fact("backend_note", "tensorrt: no engine for this GPU; running onnxruntime")
    assert json.loads(bridge.status_json("auto"))["backend_note"].startswith("tensorrt: no engine")
    assert will["state"] == "offline" and will["ts"] is None and will["cameras"] is None and will["since"]
    assert bye["state"] == "offline" and bye["ts"] and bye["cameras"] is None


def test_memory_verb(bridge: MqttBridge) -> None:
    control: FakeControl = bridge.control  # type: ignore[assignment]
    taught = run(bridge, "memory", {"id": "m1", "args": {"action": "teach", "camera": "cam1", "frames": 12,
                                                           "requested_by": "ops"}})
    assert taught[3] is None and taught[2]["prompt_set"] == control.prompt_state.version
    assert control.calls[-1] == ("teach", ("cam1", 12, [], "mqtt:ops"))
    assert run(bridge, "memory", {"args": {"action": "status"}})[2]["active"] is False
    assert run(bridge, "memory", {"args": {"action": "rollback"}})[3] is None
    assert "give a camera" in run(bridge, "memory", {"id": "m2", "args": {"action": "teach"}})[3]
    assert "action" in run(bridge, "memory", {"id": "m3", "args": {"action": "forget"}})[3]


def test_a_wildcard_response_topic_is_answered_on_the_default_one(bridge: MqttBridge,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing to 'x/#' is a protocol error that would drop the connection (and, before, the command thread):
    the answer goes to .../cmd/{verb}/response, with the command's correlation data."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(bridge.link, "publish_now", lambda topic, payload, **kw: sent.append((topic, kw)) or True)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic, props.CorrelationData = "x/#", b"corr-1"
    bridge._answer(Message(f"{ROOT}/cmd/reload", b"{}", props), "reload", "r9", {"name": "fake"}, None)
    assert [t for t, _ in sent] == [f"{ROOT}/cmd/reload/response"]
    assert sent[0][1]["properties"].CorrelationData == b"corr-1"


@pytest.mark.parametrize("topic, used", [
    (f"{ROOT}/cam1/result", f"{ROOT}/cmd/reload/response"),  # the station's own data topics: never
    (f"{ROOT}/status", f"{ROOT}/cmd/reload/response"),
    (f"{ROOT}/prompts/active", f"{ROOT}/cmd/reload/response"),
    (f"{ROOT}/reply/mes-1", f"{ROOT}/reply/mes-1"),  # what the shipped ACL gives replies
    (f"{ROOT}/cmd/reload/ops-7/response", f"{ROOT}/cmd/reload/ops-7/response"),
    ("replies/ops-7", "replies/ops-7"),  # outside the station's tree: the broker's ACL decides
])
def test_a_response_topic_cannot_be_one_of_the_station_s_data_topics(
        bridge: MqttBridge, monkeypatch: pytest.MonkeyPatch, topic: str, used: str) -> None:
    """The shipped ACL lets a station write its results, status and retained prompts: a command's response topic
    pointing there would let anyone who may send a command (the MES may send replay) publish as the station."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    sent: list[str] = []
    monkeypatch.setattr(bridge.link, "publish_now", lambda t, payload, **kw: sent.append(t) or True)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topic
    bridge._answer(Message(f"{ROOT}/cmd/reload", b"{}", props), "reload", "r1", {"name": "fake"}, None)
    assert sent == [used]


def test_a_full_command_queue_answers_busy_with_the_id(bridge: MqttBridge, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands wait in a bounded queue; one that finds it full is answered at once, never silently dropped."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(bridge.link, "publish_now", lambda t, payload, **kw: sent.append(json.loads(payload)) or True)
    for i in range(bridge._commands.maxsize):
        bridge._enqueue_command(Message(f"{ROOT}/cmd/reload", json.dumps({"id": f"q{i}"}).encode()))
    assert sent == []
    bridge._enqueue_command(Message(f"{ROOT}/cmd/snapshot", b'{"id": "late-1", "args": {"camera": "cam1"}}'))
    assert len(sent) == 1 and sent[0]["id"] == "late-1" and not sent[0]["ok"] and "busy" in sent[0]["error"]
    assert sent[0]["verb"] == "snapshot"


def test_an_answer_off_its_schema_is_an_internal_error(bridge: MqttBridge) -> None:
    """Every answer passes its verb's result model (what response.schema.json lists), so one that drifts from the
    schema is reported, not published for an MES validator to reject; a memory without views answers views []."""
    control: FakeControl = bridge.control  # type: ignore[assignment]
    control.snapshot = lambda camera: {"snapshot": 7}  # type: ignore[method-assign, assignment, return-value]
    err = run(bridge, "snapshot", {"id": "s1", "args": {"camera": "cam1"}})[3]
    assert err is not None and err.startswith("internal error after the command was carried out (do not send it")
    assert "'snapshot'" in err
    control.memory_status = lambda: {"active": False, "version": None, "images": 0,  # type: ignore[method-assign]
                                     "good": None}
    assert run(bridge, "memory", {"args": {"action": "status"}})[2]["views"] == []


def test_a_command_nested_too_deep_to_parse_is_still_answered(bridge: MqttBridge,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A payload of 100,000 '[' (under the size limit) makes json raise RecursionError: it is an invalid command,
    whether it is executed or finds the queue full (then on paho's own thread, where nothing may escape)."""
    deep = b"[" * 100_000
    verb, rid, result, err = run(bridge, "reload", deep)
    assert rid is None and result is None and err is not None and err.startswith("invalid command")
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(bridge.link, "publish_now", lambda t, payload, **kw: sent.append(json.loads(payload)) or True)
    for _ in range(bridge._commands.maxsize):
        bridge._enqueue_command(Message(f"{ROOT}/cmd/reload", b"{}"))
    bridge.link._cb_message(None, None, Message(f"{ROOT}/cmd/reload", deep))  # paho's callback: must not raise
    assert len(sent) == 1 and "busy" in sent[0]["error"] and sent[0]["id"] is None


def test_reply_is_not_a_camera_name() -> None:
    """Within a station's tree only reply/... and command responses take answers: a camera named 'reply' would put
    its results under reply/ and reopen that door."""
    from pydantic import ValidationError

    from edge.config import CameraConfig

    with pytest.raises(ValidationError, match="reserved for station topics"):
        CameraConfig(name="reply", source="0")
