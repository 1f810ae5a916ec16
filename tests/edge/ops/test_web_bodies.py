"""The operator page's JSON bodies on a real server: checked by models before anything runs, so a wrong type
is a 422 with one line (never a 500), an operator name cannot carry a newline into the audit log or the saved
prompt file, and teaching by ids is bounded."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import parse_config
from edge.ops.http import OpsServer
from edge.ops.sources import OpsSources
from edge.service.control import Observers
from edge.service.pipeline import Counters
from edge.service.publisher import Tally
from edge.service.status import StatusBoard
from edge.service.supervise import supervised
from edge.service.teach import MAX_TEACH
from tests.edge.fakes import SET, FakeControl
from tests.edge.ops.conftest import get


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[int, FakeControl]]:
    cfg = parse_config({"cameras": [{"name": "c", "source": "sim://line"}], "model": {"bundle": "b"},
                        "prompts": "p.yaml", "ops": {"http": {"port": _free_port()}}}, "test")
    control = FakeControl()
    sources = OpsSources(control=control, health=[], counters=Counters, tally=Tally, queue_depth=lambda: 0,
                         stalled_for=lambda: 0.0, backend="fake", state_dir=tmp_path, evidence_dir=tmp_path / "ev",
                         stall_after_s=5.0)
    (tmp_path / "ev").mkdir()
    status, stop = StatusBoard(), threading.Event()
    ops = OpsServer(cfg, sources, Observers(), lambda name, loop, restart=True: supervised(
        name, loop, status, stop, restart=restart)).start()
    yield ops.port, control
    ops.stop()
    stop.set()


def post(port: int, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/thresholds", {"labels": {"x": ["hole"]}}, "'labels.x'"),
    ("/api/thresholds", {"labels": ["x"]}, "'labels'"),
    ("/api/memory/teach", {"ids": "abc"}, "'ids'"),
    ("/api/memory/teach", {"camera": 5}, "'camera'"),
    ("/api/memory/teach", {"camera": "c", "frames": True}, "'frames'"),
    ("/api/memory/teach", {"camera": "c", "frames": MAX_TEACH + 1}, "'frames'"),
    ("/api/memory/teach", {"ids": [f"r{i}" for i in range(MAX_TEACH + 1)]}, "'ids'"),
    ("/api/memory/teach", {"ids": [1, 2]}, "'ids.0'"),
    ("/api/prompts/preview", {"prompt_set": [1]}, "'prompt_set'"),
    ("/api/prompts/rollback", {"version": 7, "operator": "ben"}, "'version'"),
    ("/api/memory/keep", {"stage": {"a": 1}, "operator": "ben"}, "'stage'"),
    ("/api/prompts/activate", {"prompt_set": SET, "operator": "otto", "extra": 1}, "'extra'"),
])
def test_a_body_of_the_wrong_shape_is_a_422_naming_the_field(page: tuple[int, FakeControl], path: str,
                                                             body: Any, field: str) -> None:
    port, control = page
    code, answer = post(port, path, body)
    assert code == 422, answer
    assert answer["error"].startswith(f"request body {field}") and "\n" not in answer["error"]
    assert control.calls == []  # nothing reached the station


@pytest.mark.parametrize("name", ["anna\ndecision: {threshold: 1.0}", "anna\tsmith", "x" * 65, "b\ren"])
def test_an_operator_name_outside_the_safe_pattern_changes_nothing(page: tuple[int, FakeControl], name: str) -> None:
    port, control = page
    for path, body in (("/api/prompts/activate", {"prompt_set": SET}), ("/api/memory/rollback", {}),
                       ("/api/prompts/rollback", {"version": "0123456789abcdef"})):
        code, answer = post(port, path, {**body, "operator": name})
        assert code == 422 and "'operator'" in answer["error"] and "control character" in answer["error"]
    assert control.calls == []
    code, answer = post(port, "/api/prompts/activate", {"prompt_set": SET, "operator": " anna.k@line-2 "})
    assert code == 200 and control.calls == [("apply", "ui:anna.k@line-2")]


def test_teaching_by_ids_reaches_the_station_bounded(page: tuple[int, FakeControl]) -> None:
    port, control = page
    ids = [f"r{i % 3}" for i in range(MAX_TEACH)]  # repeats are the Teacher's to drop, within the bound
    code, _ = post(port, "/api/memory/teach", {"ids": ids})
    assert code == 200 and control.calls == [("teach_stage", (None, 16, ids))]
    assert post(port, "/api/memory/teach", {})[0] == 422  # neither a camera nor ids


def test_an_evidence_reference_with_a_nul_byte_is_a_404(page: tuple[int, FakeControl], tmp_path: Path) -> None:
    port, _ = page
    (tmp_path / "ev" / "a.jpg").write_bytes(b"jpeg")
    assert get(port, "/api/evidence/a.jpg") == (200, "jpeg")
    for ref in ("%00.jpg", "a%00.jpg", "x" * 5000 + ".jpg", "..%2F..%2Fetc%2Fpasswd"):
        code, body = get(port, f"/api/evidence/{ref}")
        assert code == 404 and "no such evidence image" in body
