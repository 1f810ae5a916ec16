"""The operator page's JSON API on a real server: state, frames, preview, activate, roll back, results."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edge.app import build_station
from edge.config import ServiceConfig
from tests.edge.ops.conftest import get, wait_for


def post(port: int, path: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    """POST JSON (or raw bytes as they are) and return (status, decoded JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_page_and_its_api(config: Callable[..., ServiceConfig]) -> None:
    with build_station(config()) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        wait_for(lambda: len(svc.recent()) >= 3)
        code, html = get(port, "/")
        assert code == 200 and "/static/app.js" in html and "cdn" not in html.lower()
        assert get(port, "/static/app.js")[0] == 200 and get(port, "/static/style.css")[0] == 200
        state = json.loads(get(port, "/api/state")[1])
        assert state["cameras"]["cam1"]["state"] == "streaming" and state["cameras"]["cam1"]["result"]["verdict"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras/cam1/frame.jpg", timeout=10) as r:
            jpeg = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
        assert jpeg is not None and jpeg.shape[:2] == (120, 160)
        assert get(port, "/api/cameras/nope/frame.jpg")[0] == 404

        prompts = json.loads(get(port, "/api/prompts")[1])
        first = prompts["version"]
        edited = prompts["active"]
        edited["categories"][1]["prompts"] = ["with a deep scratch"]
        code, preview = post(port, "/api/prompts/preview", {"prompt_set": edited})
        assert code == 200 and preview["version"] != first
        assert {"active", "candidate"} <= set(preview["cameras"]["cam1"])
        recent = preview["recent_defects"]  # the last NG/uncertain frames, re-scored by both sets
        assert recent and all({"active", "candidate", "seq", "camera"} <= set(d) for d in recent)
        assert all(d["active"]["verdict"] != "ok" for d in recent if d["active"]["verdict"])
        assert svc.prompt_state.version == first  # a preview changes nothing

        bad = json.loads(json.dumps(edited))
        bad["categories"][1]["prompts"] = []
        code, err = post(port, "/api/prompts/activate", {"prompt_set": bad, "operator": "anna"})
        assert code == 422 and err["fields"][0]["field"] == "categories.1.prompts"
        assert svc.prompt_state.version == first
        assert post(port, "/api/prompts/activate", {"prompt_set": edited})[0] == 422  # who is it?
        assert post(port, "/api/prompts/activate", {"prompt_set": edited, "operator": "anna"},
                    content_type="text/plain")[0] == 415  # what a cross-site form could send

        code, done = post(port, "/api/prompts/activate", {"prompt_set": edited, "operator": "anna"})
        assert code == 200 and svc.prompt_state.version == done["version"] != first
        wait_for(lambda: svc.recent() and svc.recent()[-1].prompt_set.version == done["version"])
        history = json.loads(get(port, "/api/prompts")[1])["history"]
        assert history[0]["source"] == "ui:anna" and history[0]["version"] == done["version"]

        code, back = post(port, "/api/prompts/rollback", {"version": first, "operator": "ben"})
        assert code == 200 and back["version"] == first == svc.prompt_state.version
        assert post(port, "/api/prompts/rollback", {"version": "nothere", "operator": "ben"})[0] == 422

        rows = json.loads(get(port, "/api/results?camera=cam1&limit=5")[1])
        assert 0 < len(rows) <= 5 and all(r["camera"] == "cam1" for r in rows)
        assert rows[0]["seq"] > rows[-1]["seq"]  # newest first
        assert json.loads(get(port, "/api/results?camera=other")[1]) == []


def _session(port: int, name: str, password: str) -> tuple[int, str, str]:
    """(status, cookie header, csrf token) of a login."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/login", method="POST",
                                 data=json.dumps({"name": name, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie
            return r.status, cookie.split(";")[0], body["csrf"]
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def _call(port: int, path: str, cookie: str, body: Any = None, csrf: str = "") -> int:
    headers = {"Cookie": cookie, "Content-Type": "application/json", "X-CSRF-Token": csrf}
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_logins_roles_and_csrf(config: Callable[..., ServiceConfig], tmp_path: Any) -> None:
    from edge.ops.auth import hash_password

    users = [{"name": "vera", "role": "viewer", "password_hash": hash_password("viewer-pass", 1000)},
             {"name": "otto", "role": "operator", "password_hash": hash_password("operator-pass", 1000)}]
    from edge.mqtt.local_broker import free_port

    cfg = config(ops={"http": {"port": free_port()}, "users": users})
    with build_station(cfg) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        assert get(port, "/api/state")[0] == 401 and get(port, "/")[0] == 200  # the login page itself loads
        assert get(port, "/healthz")[0] == 200  # machines keep their endpoints
        assert _session(port, "otto", "wrong")[0] == 401 and _session(port, "nobody", "x")[0] == 401

        _, viewer, viewer_csrf = _session(port, "vera", "viewer-pass")
        prompts = svc.prompt_state.prompts.model_dump(mode="json")
        assert _call(port, "/api/state", viewer) == 200
        assert _call(port, "/api/prompts/activate", viewer, {"prompt_set": prompts}, viewer_csrf) == 403

        _, operator, csrf = _session(port, "otto", "operator-pass")
        edited = json.loads(json.dumps(prompts))
        edited["categories"][1]["prompts"] = ["with a hairline scratch"]
        assert _call(port, "/api/prompts/activate", operator, {"prompt_set": edited}) == 403  # no CSRF token
        assert _call(port, "/api/prompts/activate", operator, {"prompt_set": edited}, viewer_csrf) == 403
        assert _call(port, "/api/prompts/activate", operator, {"prompt_set": edited}, csrf) == 200
        assert svc.prompts.history.entries()[0].source == "ui:otto"  # the login, not a typed name
        forged = operator.replace(operator[-5:], "AAAAA")
        assert _call(port, "/api/state", forged) == 401


def test_exposing_the_page_without_logins_is_refused(config: Callable[..., ServiceConfig]) -> None:
    import pytest

    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="exposes the operator page: add ops.users"):
        config(ops={"http": {"host": "0.0.0.0", "port": 9}})


def test_threshold_assistant_proposes_from_marked_frames(config: Callable[..., ServiceConfig]) -> None:
    with build_station(config()) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        wait_for(lambda: len(svc.recent()) >= 8)
        rows = [r for r in svc.recent() if r.prompt_set.version == svc.prompt_state.version][:8]
        by_scratch = sorted(rows, key=lambda r: r.scores["scratch"])
        labels = {r.id: "good" for r in by_scratch[:4]} | {r.id: "scratch" for r in by_scratch[4:]}
        code, body = post(port, "/api/thresholds", {"labels": labels})
        assert code == 200 and body["frames"] == 8
        proposals = {p["category"]: p for p in body["proposals"]}
        assert set(proposals) == {"scratch", "hole"}  # defects only: 'good' is the ok class
        scratch = proposals["scratch"]
        assert scratch["positives"] == 4 and scratch["precision"] == scratch["recall"] == 1.0  # separable by design
        assert by_scratch[3].scores["scratch"] < scratch["threshold"] <= by_scratch[4].scores["scratch"]
        assert post(port, "/api/thresholds", {"labels": {rows[0].id: "nonsense"}})[0] == 422
        assert post(port, "/api/thresholds", {"labels": {rows[0].id: "good"}})[0] == 422  # one frame is not enough


def test_evidence_thumbnails_and_no_path_escape(config: Callable[..., ServiceConfig]) -> None:
    with build_station(config()) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        ref = wait_for(lambda: next((r.snapshot for r in svc.recent() if r.snapshot), None))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/evidence/{ref}", timeout=10) as r:
            assert r.headers["Content-Type"] == "image/jpeg"
            assert cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR) is not None
        assert get(port, "/api/evidence/..%2F..%2Fsequence.sqlite")[0] == 404
        assert get(port, "/api/evidence/../../prompts.yaml")[0] == 404
        assert get(port, "/api/evidence/nothere.jpg")[0] == 404


def _upload(port: int, category: str, data: bytes, content_type: str = "image/png") -> tuple[int, Any]:
    return post(port, f"/api/exemplars/{category}", data, content_type)


def test_exemplar_upload_feeds_few_shot_and_is_bounded(config: Callable[..., ServiceConfig]) -> None:
    from edge.ops.web import MAX_IMAGE
    from edge.sim import LineSimulator

    with build_station(config()) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        png = cv2.imencode(".png", LineSimulator(seed=9).frame(0).image)[1].tobytes()
        code, body = _upload(port, "scratch", png)
        assert code == 200 and body["count"] == 1
        assert _upload(port, "scratch", png)[1]["count"] == 1  # the same image is stored once
        assert _upload(port, "scratch", b"GIF89a not really")[0] == 422
        try:  # refused from its Content-Length, before the body: the server may close while we still send
            assert _upload(port, "scratch", b"x" * (MAX_IMAGE + 1))[0] == 413
        except urllib.error.URLError as err:
            assert "reset" in str(err.reason).lower() or "broken pipe" in str(err.reason).lower()
        assert _upload(port, "scratch", png, "text/plain")[0] == 415
        assert _upload(port, "..", png)[0] == 422
        assert len(list((svc.config.state_dir / "exemplars").rglob("*.png"))) == 1  # nothing else was stored
        edited = svc.prompt_state.prompts.model_dump(mode="json")
        edited["categories"][1]["exemplars"] = body["folder"]
        code, _ = post(port, "/api/prompts/activate", {"prompt_set": edited, "operator": "anna"})
        assert code == 200 and svc.prompt_state.prototypes is not None and svc.prompt_state.has_exemplars[1]


def test_a_second_preview_while_the_encoder_is_busy_is_told_to_wait(config: Callable[..., ServiceConfig]) -> None:
    import threading

    from edge.bundle import Bundle
    from edge.encoders.onnxruntime import OrtTextEncoder
    from edge.model import ZeroShotModel
    from tests.edge.ops.conftest import HangingEncoder

    cfg = config()
    bundle = Bundle.open(cfg.model.bundle)
    encoder = HangingEncoder(bundle.path("vision"))
    with build_station(cfg, model=ZeroShotModel(bundle, encoder, OrtTextEncoder(bundle.path("text")))) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        wait_for(lambda: svc.counters.inspected >= 1)
        prompts = svc.prompt_state.prompts.model_dump(mode="json")
        prompts["categories"][1]["prompts"] = ["with a faint scratch"]
        encoder.hang()
        first: dict[str, Any] = {}
        t = threading.Thread(target=lambda: first.update(code=post(port, "/api/prompts/preview",
                                                                   {"prompt_set": prompts})[0]))
        t.start()
        wait_for(lambda: svc.ops.app.state.preview_busy.locked())  # type: ignore[union-attr]  # first one is in
        code, body = post(port, "/api/prompts/preview", {"prompt_set": prompts})
        assert code == 429 and "already running" in body["error"]
        encoder.release()
        t.join(30)
        assert first["code"] == 200
