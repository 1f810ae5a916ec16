"""The service publishing to a real mosquitto: contract, outages, restarts, refusals, commands."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.app import build_station
from edge.config import ServiceConfig
from tests.edge.conftest import PROMPTS, Collector
from tests.edge.mqtt.conftest import ROOT, USERS, Broker, Subscriber, validate_all

ROOT_TOPIC = "inspect/s1/l1/st1"


def _mqtt(broker: Broker, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": broker.port, **extra}


def _complete(sub: Subscriber, seqs: range) -> bool:
    return {r["seq"] for r in sub.results()} >= set(seqs)


def test_results_status_and_prompts_follow_the_contract(
        make_config: Callable[..., ServiceConfig], broker: Broker) -> None:
    sub = Subscriber(broker.port)
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=5&size=320x240&live=0"}],
                      mqtt=_mqtt(broker, message_expiry_s=600))
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        sub.wait(lambda s: bool(s.on("/status")))  # connected and subscribed to its commands
        sub.publish(f"{ROOT_TOPIC}/cmd/reload", {"id": "r1"})
        svc.run(duration=30)
        sub.wait(lambda s: _complete(s, range(1, 6)))
        sub.wait(lambda s: bool(s.on("/prompts/active")) and bool(s.on("/status")) and bool(s.on("/response")))
    results = sub.results()
    assert results[:5] == [r.to_dict() for r in local.results]  # the same payload as every sink
    topics = {t for t, *_ in sub.messages}
    assert f"{ROOT_TOPIC}/cam1/result" in topics
    status = sub.on("/status")
    assert status[0]["state"] == "online" and status[0]["version"] and status[0]["prompt_set"]["version"]
    assert status[-1]["state"] == "offline"  # clean shutdown says so (the will covers crashes)
    active = sub.on("/prompts/active")[0]
    assert active["version"] == local.results[0].prompt_set.version and active["name"] == "tiny"
    for suffix, schema in (("/result", "result"), ("/status", "status"), ("/prompts/active", "prompts-active"),
                           ("/cmd/reload/response", "response")):  # every kind of message says what it is
        for _, body, _, props in (m for m in sub.messages if m[0].endswith(suffix)):
            assert props.ContentType == "application/json", suffix
            want = f"edge-inspect/{schema}/1"  # prompts/active is the prompt set itself: its schema is said only here
            assert dict(props.UserProperty)["schema"] == want == body.get("schema", want), suffix
    for _, body, _, props in (m for m in sub.messages if m[0].endswith("/result")):
        assert props.UserProperty == [("schema", "edge-inspect/result/1"), ("id", body["id"])]  # each once
        assert 590 <= props.MessageExpiryInterval <= 600
    sub.close()


def test_the_will_says_since_and_carries_the_status_properties(
        make_config: Callable[..., ServiceConfig], broker: Broker) -> None:
    """The broker publishes the will when it loses the station (no DISCONNECT): offline, ts null, since = the
    connection's start, no stale cameras; then the station reconnects and says online again."""
    import socket

    sub = Subscriber(broker.port, f"{ROOT_TOPIC}/status")
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240"}], mqtt=_mqtt(broker))
    try:
        with build_station(cfg) as svc:
            sub.wait(lambda s: any(st["state"] == "online" for st in s.on("/status")), timeout=15)
            svc.bridge.link._client.socket().shutdown(socket.SHUT_RDWR)  # the connection is lost, not closed
            sub.wait(lambda s: any(st["ts"] is None for st in s.on("/status")), timeout=15)
            sub.wait(lambda s: s.on("/status")[-1]["state"] != "offline", timeout=30)  # back
        will, props = next((b, p) for _, b, _, p in sub.messages if b.get("ts") is None)
        assert will["state"] == "offline" and will["since"] and will["cameras"] is None and will["outbox"] is None
        assert props.ContentType == "application/json" and dict(props.UserProperty)["schema"] == "edge-inspect/status/1"
    finally:
        sub.close()


@pytest.mark.parametrize("outage", ["sigstop", "sigkill"])
def test_broker_outage_loses_nothing(make_config: Callable[..., ServiceConfig], broker: Broker,
                                     outage: str) -> None:
    sub = Subscriber(broker.port)
    cfg = make_config([{"name": "a", "source": "sim://line?seed=1&size=320x240", "fps": 20},
                       {"name": "b", "source": "sim://line?seed=2&size=320x240", "fps": 20}],
                      mqtt=_mqtt(broker, keepalive=5))
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: len(rs) >= 10)
        if outage == "sigstop":
            broker.pause()
            time.sleep(3)
            broker.resume()
        else:
            broker.kill()
            time.sleep(2)
            broker.start()
        n = len(local.results)
        local.wait_for(lambda rs: len(rs) >= n + 20)
        svc.request_stop()
        svc.run(duration=10)
    produced = {r.seq: r for r in local.results}
    # a broker killed after PUBACK may lose what it had not forwarded yet: the MES heals
    # such a gap with cmd/replay, exactly as it would in the plant
    if outage == "sigkill":
        have = {r["seq"] for r in sub.results()}
        missing = sorted(set(produced) - have)
        if missing:
            op = Subscriber(broker.port)
            op.publish(f"{ROOT_TOPIC}/cmd/replay", {"args": {"from_seq": missing[0], "to_seq": missing[-1]}})
            op.close()
    sub.wait(lambda s: _complete(s, range(1, max(produced) + 1)), timeout=30)
    received = sub.results()
    by_id: dict[str, dict[str, Any]] = {}
    for r in received:
        assert by_id.setdefault(r["id"], r)["seq"] == r["seq"]  # duplicates only as the same id
    for cam in ("a", "b"):
        seqs = [r["seq"] for r in received if r["camera"] == cam and not r["replayed"]]
        assert seqs == sorted(seqs)  # order per camera
    assert all(produced[r["seq"]].id == r["id"] for r in received)
    assert all(r["ts"] == produced[r["seq"]].ts for r in received)  # original timestamps
    sub.close()


def test_a_reconnect_never_retains_an_older_prompt_set(
        make_config: Callable[..., ServiceConfig], broker: Broker) -> None:
    """A reconnect re-sends the retained prompts/active; a set activated while it does must still be the one the
    broker keeps. The connect path is held between reading the active set and sending it, and a new set is
    activated in that gap: without the retained lock the new set went out first and the old one overwrote it."""
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 5}], mqtt=_mqtt(broker))
    read, go = threading.Event(), threading.Event()
    with build_station(cfg) as svc:
        first = Subscriber(broker.port)
        first.wait(lambda s: bool(s.on("/prompts/active")))
        first.close()
        link = svc.bridge.link
        original = link._retained

        def held() -> list[tuple[str, str, str]]:
            out = original()  # the active set as the connect path sees it
            read.set()
            go.wait(5)
            return out

        link._retained = held
        broker.kill()
        broker.start()  # persistence off: the broker holds nothing retained until the station re-sends it
        assert read.wait(30), "the station did not reconnect"
        new_set = {"name": "tiny2", "categories": [{"name": "good", "ok": True, "prompts": ["fine"]},
                                                   {"name": "dent", "prompts": ["dented"]}]}
        old = svc.prompt_state.version
        applying = threading.Thread(target=svc.prompts.apply, args=(new_set, "test"))
        applying.start()
        deadline = time.monotonic() + 30
        while svc.prompt_state.version == old and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # activated; its publish now waits for the connect path (unguarded, it went out already)
        assert applying.is_alive() and link.retained_lock.locked(), "the activation did not wait for the connect path"
        go.set()
        applying.join(10)
        assert not applying.is_alive() and svc.prompt_state.prompts.name == "tiny2"
        version = svc.prompt_state.version
        time.sleep(1.0)  # both sends reach the broker (loopback)
        late = Subscriber(broker.port)  # a client that connects now gets what the broker retained, flagged so

        def retained(s: Subscriber) -> list[str]:
            return [b["version"] for t, b, kept, _ in s.messages if t.endswith("/prompts/active") and kept]

        late.wait(lambda s: bool(retained(s)), timeout=10)
        assert retained(late) == [version]
        late.close()


def test_a_lost_sequence_file_never_reuses_a_seq(make_config: Callable[..., ServiceConfig], broker: Broker,
                                                tmp_path: Path) -> None:
    """sequence.sqlite lost (or restored from an older backup): numbering continues after the outbox's highest seq,
    never again from 1, which would give the MES new results under seqs it already holds."""
    sub = Subscriber(broker.port)
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=3&size=320x240&live=0"}],
                      mqtt=_mqtt(broker))
    first = Collector()
    with build_station(cfg, sinks=[first]) as svc:
        svc.run(duration=60)
    assert [r.seq for r in first.results] == [1, 2, 3]
    for name in ("sequence.sqlite", "sequence.sqlite-wal", "sequence.sqlite-shm"):
        (tmp_path / "state" / name).unlink(missing_ok=True)
    second = Collector()
    with build_station(cfg, sinks=[second]) as svc:
        svc.run(duration=60)
    assert [r.seq for r in second.results] == [4, 5, 6]
    sub.wait(lambda s: _complete(s, range(1, 7)), timeout=30)
    ids = {r["seq"]: r["id"] for r in sub.results()}
    assert [ids[r.seq] for r in first.results + second.results] == [r.id for r in first.results + second.results]
    sub.close()


def _run_service(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "edge.cli.main", "run", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_sigkilled_service_restarts_and_loses_nothing_from_the_outbox(
        tiny_bundles: dict[str, Path], broker: Broker, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)
    args = ["--bundle", str(tiny_bundles["clip"]), "--camera", "sim://line?seed=1&size=320x240&fps=30",
            "--prompts", str(prompts), "--state-dir", str(tmp_path / "state"), "--mqtt", f"127.0.0.1:{broker.port}"]
    sub = Subscriber(broker.port)
    first = _run_service(args)
    sub.wait(lambda s: len(s.results()) >= 10, timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite") as db:
        stored = {row[0] for row in db.execute("SELECT seq FROM outbox")}
    with sqlite3.connect(tmp_path / "state" / "sequence.sqlite") as db:
        last_used = db.execute("SELECT last FROM seq").fetchone()[0]  # may exceed the outbox: in flight
    second = _run_service(args)
    sub.wait(lambda s: {r["seq"] for r in s.results()} >= stored, timeout=60)
    sub.wait(lambda s: max(r["seq"] for r in s.results()) > max(stored) + 3, timeout=60)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    seqs = [r["seq"] for r in sub.results()]
    assert set(range(1, max(stored) + 1)) <= set(seqs)  # nothing that reached the outbox is lost
    new = sorted({r["seq"] for r in sub.results() if r["seq"] > last_used})
    assert new == list(range(last_used + 1, new[-1] + 1))  # seq continues after the last used, never reused
    assert not {r["seq"] for r in sub.results()} & set(range(max(stored) + 1, last_used + 1))
    sub.close()


def test_wrong_password_is_reported_and_results_wait(
        make_config: Callable[..., ServiceConfig], auth_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_INSPECT_MQTT_PASSWORD", "wrong")
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 10}],
                      mqtt=_mqtt(auth_broker, username="st1"))
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: len(rs) >= 5)
        local.wait_for(lambda rs: "mqtt" in " ".join(svc.status.snapshot()["reasons"]), timeout=10)
        time.sleep(1.5)
        reasons = " ".join(svc.status.snapshot()["reasons"])
        backlog = svc.bridge.outbox.stats()["backlog"]  # type: ignore[union-attr]
        attempts = svc.bridge.link.state.connects  # type: ignore[union-attr]
    assert "refused the connection" in reasons and ("Not authorized" in reasons or "password" in reasons)
    assert backlog >= 5 and attempts == 0


def test_acl_denial_keeps_results_and_does_not_spin(
        make_config: Callable[..., ServiceConfig], auth_broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """'intruder' may not write under station st1: mosquitto answers PUBACK 0x87 (MQTT 5)."""
    monkeypatch.setenv("EDGE_INSPECT_MQTT_PASSWORD", USERS["intruder"])
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 20}],
                      mqtt=_mqtt(auth_broker, username="intruder"))
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: len(rs) >= 10)
        local.wait_for(lambda rs: "refused result" in " ".join(svc.status.snapshot()["reasons"]), timeout=10)
        time.sleep(2)
        link = svc.bridge.link  # type: ignore[union-attr]
        stats = svc.bridge.outbox.stats()  # type: ignore[union-attr]
        produced = len(local.results)
    assert link.state.delivered == 0 and stats["backlog"] >= produced - 1
    assert link.state.published <= link.max_inflight + 5  # paused after the refusals, no tight loop


def _command(sub: Subscriber, verb: str, args: dict[str, Any], correlation: bytes = b"c-1",
             request_id: str | None = "req-1") -> dict[str, Any]:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"replies/{verb}"
    props.CorrelationData = correlation
    before = len(sub.on(f"replies/{verb}"))
    sub.publish(f"{ROOT_TOPIC}/cmd/{verb}", {"id": "req-1", "args": args}, props)
    sub.wait(lambda s: len(s.on(f"replies/{verb}")) > before, timeout=20)
    reply = sub.on(f"replies/{verb}")[-1]
    got = [p for t, _, _, p in sub.messages if t == f"replies/{verb}"][-1]
    assert got.CorrelationData == correlation and reply["id"] == request_id, reply
    return reply


def test_commands(make_config: Callable[..., ServiceConfig], broker: Broker, prompts_file: Path) -> None:
    sub = Subscriber(broker.port, topic="#")
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 10}],
                      mqtt=_mqtt(broker))
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: len(rs) >= 3)
        old = svc.prompt_state.version
        bad = _command(sub, "prompts/set", {"prompt_set": {"name": "x", "categories": [{"name": "good"}]}})
        assert not bad["ok"] and "categories" in bad["error"] and svc.prompt_state.version == old
        unknown = _command(sub, "prompts/set", {"prompt_set": {"name": "x", "colour": 1}})
        assert not unknown["ok"] and "colour" in unknown["error"]
        new_set = {"name": "tiny2", "categories": [{"name": "good", "ok": True, "prompts": ["fine"]},
                                                   {"name": "dent", "prompts": ["dented"]}]}
        test = _command(sub, "prompts/test", {"prompt_set": new_set})
        assert test["ok"] and set(test["result"]["cameras"]["cam1"]) == {"candidate", "active"}
        assert svc.prompt_state.version == old  # a test activates nothing
        ok = _command(sub, "prompts/set", {"prompt_set": new_set, "requested_by": "anna"})
        assert ok["ok"] and svc.prompt_state.version == ok["result"]["version"] != old
        local.wait_for(lambda rs: rs[-1].prompt_set.version == ok["result"]["version"])
        assert "tiny2" in prompts_file.read_text()  # kept across a restart
        sub.wait(lambda s: s.on("/prompts/active")[-1]["version"] == ok["result"]["version"])
        trig = _command(sub, "trigger", {"camera": "nope", "part_id": "P1"})
        assert not trig["ok"] and "unknown camera 'nope'" in trig["error"]
        snap = _command(sub, "snapshot", {"camera": "cam1"})
        assert snap["ok"] and snap["result"]["snapshot"].startswith("cam1/")
        sub.wait(lambda s: len(s.results()) >= 3)
        replay = _command(sub, "replay", {"from_seq": 1, "to_seq": 2})
        assert replay["ok"] and replay["result"]["replayed"] == 2
        sub.wait(lambda s: sum(r["replayed"] for r in s.results() if r["seq"] <= 2) >= 2)
        huge = _command(sub, "reload", {"requested_by": "x" * 300_000}, request_id=None)  # not even parsed
        assert not huge["ok"] and "exceeds" in huge["error"]
        reload = _command(sub, "reload", {})
        assert reload["ok"] and reload["result"]["version"] == ok["result"]["version"]
        memory = _command(sub, "memory", {"action": "status"})  # no memory: still every key of MemoryResult
        assert memory["ok"] and memory["result"]["active"] is False and memory["result"]["views"] == []
    sub.close()
    topics = {t for t, *_ in sub.messages}
    assert validate_all(sub.messages) > 10 and any(t.endswith("/prompts/active") for t in topics)
    actives = sub.on("/prompts/active")
    assert len([a for a in actives if a["source"] == "mqtt:anna"]) == 1  # one activation, published once


def test_only_operators_can_command(make_config: Callable[..., ServiceConfig], auth_broker: Broker,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_INSPECT_MQTT_PASSWORD", USERS["st1"])
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 10}],
                      mqtt=_mqtt(auth_broker, username="st1"))
    new_set = {"name": "evil", "categories": [{"name": "good", "ok": True, "prompts": ["x"]},
                                              {"name": "bad", "prompts": ["y"]}]}
    mes, operator = Subscriber(auth_broker.port, user="mes"), Subscriber(auth_broker.port, user="operator")
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: len(rs) >= 2)
        mes.wait(lambda s: len(s.results()) >= 1)  # the MES reads results
        old = svc.prompt_state.version
        mes.publish(f"{ROOT_TOPIC}/cmd/prompts/set", {"args": {"prompt_set": new_set}})
        time.sleep(1.5)
        assert svc.prompt_state.version == old  # the broker dropped the MES's command
        operator.publish(f"{ROOT_TOPIC}/cmd/prompts/set", {"args": {"prompt_set": new_set}})
        local.wait_for(lambda rs: svc.prompt_state.prompts.name == "evil", timeout=20)
    mes.close()
    operator.close()
    _ = json  # payloads are JSON throughout


def test_the_mes_may_replay_and_a_refused_response_topic_falls_back(
        make_config: Callable[..., ServiceConfig], auth_broker: Broker, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The shipped ACL lets the MES heal gaps with cmd/replay (its README says so), answers on a response
    topic under .../st1/reply/, and a response topic the station may not write is answered on the
    default topic instead of being lost."""
    monkeypatch.setenv("EDGE_INSPECT_MQTT_PASSWORD", USERS["st1"])
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 10}],
                      mqtt=_mqtt(auth_broker, username="st1"))
    mes, operator = Subscriber(auth_broker.port, user="mes"), Subscriber(auth_broker.port, user="operator")
    local = Collector()
    with build_station(cfg, sinks=[local]):
        local.wait_for(lambda rs: len(rs) >= 3)
        mes.wait(lambda s: len(s.results()) >= 3)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{ROOT_TOPIC}/reply/mes-1"
        props.CorrelationData = b"gap-1"
        mes.publish(f"{ROOT_TOPIC}/cmd/replay", {"id": "heal-1", "args": {"from_seq": 1, "to_seq": 2}}, props)
        mes.wait(lambda s: any(r.get("id") == "heal-1" for r in s.on("/reply/mes-1")), timeout=20)
        assert mes.on("/reply/mes-1")[-1]["ok"] and mes.on("/reply/mes-1")[-1]["result"]["replayed"] == 2
        mes.wait(lambda s: sum(1 for r in s.results() if r["replayed"] and r["seq"] <= 2) >= 2)
        replayed = [p for t, b, _, p in mes.messages if t.endswith("/result") and b["replayed"]]
        assert all(dict(p.UserProperty)["schema"] == "edge-inspect/result/1" for p in replayed)  # same properties
        assert all(p.ContentType == "application/json" and dict(p.UserProperty)["id"] for p in replayed)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "elsewhere/replies"  # the station may not write there
        operator.publish(f"{ROOT_TOPIC}/cmd/reload", {"id": "r-1", "args": {}}, props)
        operator.wait(lambda s: any(r.get("id") == "r-1" for r in s.on("/cmd/reload/response")), timeout=20)
        assert "the broker refused the response to reload on elsewhere/replies" in caplog.text  # not silent
    mes.close()
    operator.close()


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_full_outbox_applies_its_policy_and_says_so(make_config: Callable[..., ServiceConfig], policy: str) -> None:
    from tests.edge.mqtt.conftest import free_port

    port = free_port()  # nobody listens: the broker is down for the whole test
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 30}],
                      mqtt={"host": "127.0.0.1", "port": port, "outbox": {"max_rows": 10, "policy": policy}},
                      results={"queue": 4})
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: len(rs) >= 9)
        local.wait_for(lambda rs: "outbox" in " ".join(svc.status.snapshot()["reasons"]), timeout=10)
        reasons = " ".join(svc.status.snapshot()["reasons"])
        if policy == "drop_oldest":
            local.wait_for(lambda rs: len(rs) >= 25)
        else:
            time.sleep(1.5)
        produced = len(local.results)
        stats = svc.bridge.outbox.stats()  # type: ignore[union-attr]
        svc.request_stop()
    assert "cannot reach the broker" in reasons and f"policy {policy}" in reasons
    if policy == "block":
        assert produced == 10 and stats["dropped"] == 0  # held back, none discarded
    else:
        assert produced >= 25 and stats["dropped"] >= produced - 10 and stats["backlog"] == 10


def test_tls_with_the_right_ca_delivers_and_an_untrusted_one_is_reported(
        make_config: Callable[..., ServiceConfig], tls_broker: tuple[Broker, Path], tmp_path: Path) -> None:
    from tests.edge.mqtt.conftest import make_ca

    broker, ca = tls_broker
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=3&size=320x240&live=0"}],
                      mqtt=_mqtt(broker, tls={"ca": str(ca)}))
    with build_station(cfg) as svc:
        svc.run(duration=30)
        deadline = time.monotonic() + 20
        while svc.bridge.outbox.stats()["backlog"] and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        assert svc.bridge.outbox.stats()["backlog"] == 0  # type: ignore[union-attr]
    other_ca, _ = make_ca(tmp_path, "other-ca")
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 10}],
                      mqtt=_mqtt(broker, tls={"ca": str(other_ca)}), state_dir=str(tmp_path / "state2"))
    local = Collector()
    with build_station(cfg, sinks=[local]) as svc:
        local.wait_for(lambda rs: "mqtt" in " ".join(svc.status.snapshot()["reasons"]), timeout=15)
        reasons = " ".join(svc.status.snapshot()["reasons"])
        local.wait_for(lambda rs: len(rs) >= 3)
        backlog = svc.bridge.outbox.stats()["backlog"]  # type: ignore[union-attr]
    assert "CERTIFICATE_VERIFY_FAILED" in reasons or "certificate" in reasons.lower()
    assert backlog >= 3  # kept for when the certificate is fixed


def _readme_subscriber(port: int) -> str:
    """The README's subscriber, pointed at the test broker as the mes user."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("**A subscriber** (paho-mqtt 2)")
    code = readme[readme.index("```python\n", start) + len("```python\n"):readme.index("```\n", start + 40)]
    assert 'c.username_pw_set("mes", "..."); c.connect("broker", 1883,' in code and 'client_id="mes-line3"' in code
    return code.replace('"...")', f'"{USERS["mes"]}")').replace('"broker", 1883', f'"127.0.0.1", {port}')


def test_the_readme_subscriber_gets_what_it_missed_and_heals_a_gap(
        make_config: Callable[..., ServiceConfig], auth_broker: Broker, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """The integrator's example, run as it is printed: its persistent session gets the results sent while it was
    away, and when results expired at the broker before it came back (a gap in seq) it asks cmd/replay for them."""
    monkeypatch.setenv("EDGE_INSPECT_MQTT_PASSWORD", USERS["st1"])
    script = tmp_path / "subscriber.py"
    script.write_text(_readme_subscriber(auth_broker.port))
    out = tmp_path / "subscriber.out"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-u", str(script)], stdout=out.open("ab"), stderr=subprocess.STDOUT,
                                cwd=tmp_path)  # its mes-state.json: what it took, across its restarts

    _open_session(auth_broker.port, "mes-line3")  # as its first run would: from here the broker keeps its results

    def seen() -> list[int]:
        return [int(line.split()[0]) for line in out.read_text().splitlines() if line.split()[:1] != []
                and line.split()[0].isdigit()]

    def run(frames: int, expiry: int | None = None) -> None:
        cfg = make_config([{"name": "cam1", "source": f"sim://line?seed=1&frames={frames}&size=320x240&live=0"}],
                          mqtt=_mqtt(auth_broker, username="st1", message_expiry_s=expiry))
        with build_station(cfg) as svc:
            svc.run(duration=60)

    sub = start()
    run(3)
    _wait_for(lambda: seen() == [1, 2, 3], out)
    sub.kill()
    sub.wait(10)
    run(3)  # away: the broker keeps them for its session
    sub = start()
    _wait_for(lambda: seen() == [1, 2, 3, 4, 5, 6], out)
    sub.kill()
    sub.wait(10)
    run(3, expiry=1)  # away, and these expire at the broker: 7-9 are a gap when 10 arrives
    time.sleep(2.5)
    sub = start()
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 4}],
                      mqtt=_mqtt(auth_broker, username="st1"))
    try:
        with build_station(cfg) as svc:
            _wait_for(lambda: {7, 8, 9, 10} <= set(seen()), out)
            svc.request_stop()
            svc.run(duration=10)
    finally:
        sub.kill()
        sub.wait(10)
    got = seen()
    assert got[:7] == [1, 2, 3, 4, 5, 6, 10] and {7, 8, 9} <= set(got[7:]), got  # the gap healed after 10 came
    assert len(got) == len(set(got))  # de-duplicated on id


def _open_session(port: int, client_id: str) -> None:
    """Connect once as ``client_id`` with the README's session settings and subscription, then leave: the broker
    keeps the session (and queues QoS 1 results for it) whether or not the subscriber is connected yet."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    subscribed = threading.Event()
    session = Properties(PacketTypes.CONNECT)
    session.SessionExpiryInterval = 7 * 24 * 3600
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_connect = lambda client, *a: client.subscribe("inspect/+/+/+/+/result", qos=1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.username_pw_set("mes", USERS["mes"])
    c.connect("127.0.0.1", port, clean_start=False, properties=session)
    c.loop_start()
    assert subscribed.wait(10)
    c.disconnect()
    c.loop_stop()


def _wait_for(predicate: Callable[[], bool], out: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, out.read_text()[:1500]
        time.sleep(0.1)
