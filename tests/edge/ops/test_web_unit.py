"""The web app against a fake StationControl (Starlette's TestClient): the API contract and its guards,
fast and without a station. The end-to-end tests run the same app on a real station."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from edge.config import OpsConfig
from edge.errors import ConfigError
from edge.ops.auth import SESSION_COOKIE, hash_password
from edge.ops.metrics import Metrics
from edge.ops.sources import OpsSources
from edge.ops.web import create_app
from edge.service.pipeline import Counters
from edge.service.publisher import Tally
from tests.edge.fakes import SET, FakeControl

LOCAL = "http://127.0.0.1:9108"


def make_app(tmp_path: Path, **ops: Any) -> tuple[TestClient, FakeControl]:
    control = FakeControl()
    sources = OpsSources(control=control, health=[], counters=Counters, tally=Tally, queue_depth=lambda: 0,
                         stalled_for=lambda: 0.0, backend="fake", state_dir=tmp_path, evidence_dir=tmp_path / "ev",
                         stall_after_s=5.0)
    cfg = OpsConfig.model_validate({"http": {"port": 9108}, **ops})
    app = create_app(sources, cfg, Metrics(sources))
    return TestClient(app, base_url=LOCAL), control


@pytest.fixture
def open_page(tmp_path: Path) -> tuple[TestClient, FakeControl]:
    return make_app(tmp_path)


@pytest.fixture
def login_page(tmp_path: Path) -> Callable[[], TestClient]:
    users = [{"name": "anna", "role": "operator", "password_hash": hash_password("s3cret", 1000)}]
    return lambda: make_app(tmp_path, users=users, http={"host": "0.0.0.0", "port": 9108})[0]


def test_reads_and_changes_go_through_the_control(open_page: tuple[TestClient, FakeControl]) -> None:
    client, control = open_page
    assert client.get("/api/state").json()["cameras"]["cam1"]["state"] == "streaming"
    assert client.get("/api/prompts").json()["active"]["name"] == "fake"
    assert client.get("/api/cameras/cam1/frame.jpg").headers["content-type"] == "image/jpeg"
    r = client.post("/api/prompts/activate", json={"prompt_set": SET, "operator": "otto"})
    assert r.status_code == 200 and control.calls[-1] == ("apply", "ui:otto")
    assert client.post("/api/prompts/preview", json={"prompt_set": SET}).json()["version"] == "candidate"
    r = client.post("/api/prompts/rollback", json={"version": "0123456789abcdef", "operator": "otto"})
    assert r.status_code == 422 and "not in the history" in r.json()["error"]
    bad = client.post("/api/prompts/activate", json={"prompt_set": {**SET, "templates": ["{x}"]}, "operator": "o"})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "templates"


def test_bodies_are_refused_by_length_and_while_streaming(open_page: tuple[TestClient, FakeControl]) -> None:
    client, _ = open_page
    big = b"{" + b" " * (300 * 1024) + b"}"
    r = client.post("/api/prompts/preview", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Any:  # no Content-Length: refused once the stream passes the limit
        for _ in range(100):
            yield b" " * 8192

    r = client.post("/api/prompts/preview", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    nested = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/api/prompts/preview", content=nested, headers={"content-type": "application/json"})
    assert r.status_code in (400, 413)


def test_login_body_is_bounded_and_nested_json_is_a_400(login_page: Callable[[], TestClient]) -> None:
    client = login_page()
    assert client.post("/api/login", content=b"x" * 50_000).status_code == 413
    assert client.post("/api/login", content=b"[" * 2000 + b"]" * 2000).status_code == 400


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def test_a_decompression_bomb_is_refused_from_its_header(open_page: tuple[TestClient, FakeControl],
                                                        tmp_path: Path) -> None:
    client, _ = open_page
    r = client.post("/api/exemplars/hole", content=_png_header(30000, 30000), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "30000 x 30000" in r.json()["error"]
    assert not (tmp_path / "exemplars" / "hole").exists()


def test_a_foreign_host_or_origin_is_refused(open_page: tuple[TestClient, FakeControl]) -> None:
    client, control = open_page
    assert client.get("/api/state", headers={"host": "evil.example:9108"}).status_code == 421
    r = client.post("/api/prompts/activate", json={"prompt_set": SET, "operator": "x"},
                    headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and control.calls == []
    assert client.get("/healthz", headers={"host": "localhost:9108"}).status_code == 200


def test_logins_are_throttled_and_logout_revokes(login_page: Callable[[], TestClient]) -> None:
    client = login_page()
    for _ in range(5):  # five free tries, then each further one waits longer
        assert client.post("/api/login", json={"name": "anna", "password": "wrong"}).status_code == 401
    r = client.post("/api/login", json={"name": "anna", "password": "s3cret"})
    assert r.status_code == 429 and "try again" in r.json()["error"]  # even the right password waits
    fresh = login_page()  # another app (a restart): no failures remembered, the right password works
    r = fresh.post("/api/login", json={"name": "anna", "password": "s3cret"})
    assert r.status_code == 200
    session, csrf = r.cookies[SESSION_COOKIE], r.json()["csrf"]
    assert fresh.get("/api/state").status_code == 200
    fresh.post("/api/logout", headers={"x-csrf-token": csrf})
    fresh.cookies.set(SESSION_COOKIE, session)  # the old cookie, replayed after logout
    assert fresh.get("/api/state").status_code == 401


def test_odd_cookies_and_tokens_are_401_or_403_never_500(login_page: Callable[[], TestClient]) -> None:
    client = login_page()  # raw latin-1 header bytes, as a hostile client sends them
    odd = f"{SESSION_COOKIE}=abc.d\u00e9f".encode("latin-1")
    assert client.get("/api/state", headers={"cookie": odd}).status_code == 401  # type: ignore[dict-item]
    r = client.post("/api/login", json={"name": "anna", "password": "s3cret"})
    assert r.status_code == 200
    token = "t\u00f6ken".encode("latin-1")
    r = client.post("/api/prompts/preview", json={"prompt_set": SET}, headers={"x-csrf-token": token})  # type: ignore[dict-item]
    assert r.status_code == 403


def test_an_exposed_page_with_an_empty_user_file_refuses_to_start(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text("[]\n")
    with pytest.raises(ConfigError, match="exposes the operator page but no login is configured"):
        make_app(tmp_path, users_file=str(users), http={"host": "0.0.0.0", "port": 9108})


def test_a_name_is_throttled_across_clients_and_unknown_names_cost_a_hash() -> None:
    """16 clients guessing one name share its wait (per name, not only per client); an unknown name is checked
    against a dummy hash of the same cost as a real one, so its answer time does not reveal that it is unknown."""
    from edge.ops.auth import DUMMY_HASH, ITERATIONS
    from edge.ops.guard import FREE_FAILURES, LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for i in range(FREE_FAILURES):
        assert throttle.wait_s(f"10.0.0.{i}", "anna") == 0.0
        throttle.record(f"10.0.0.{i}", "anna", ok=False)  # each client fails once
    assert throttle.wait_s("10.0.0.99", "anna") > 0  # a fresh client waits for this name
    assert throttle.wait_s("10.0.0.99", "bert") == 0.0  # other names are not held up
    now[0] += 3600
    assert throttle.wait_s("10.0.0.99", "anna") == 0.0  # forgotten after FORGET_S
    assert int(DUMMY_HASH.split("$")[1]) == ITERATIONS
