"""The operator page's JSON API on a real server: state, frames, preview, activate, roll back, results."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edge.config import ServiceConfig
from edge.service.service import InspectionService
from tests.edge.ops.conftest import get, wait_for


def post(port: int, path: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_page_and_its_api(config: Callable[..., ServiceConfig]) -> None:
    with InspectionService(config()) as svc:
        port = svc.ops.port  # type: ignore[union-attr]
        wait_for(lambda: len(svc.recent) >= 3)
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
        wait_for(lambda: svc.recent and svc.recent[-1].prompt_set.version == done["version"])
        history = json.loads(get(port, "/api/prompts")[1])["history"]
        assert history[0]["source"] == "ui:anna" and history[0]["version"] == done["version"]

        code, back = post(port, "/api/prompts/rollback", {"version": first, "operator": "ben"})
        assert code == 200 and back["version"] == first == svc.prompt_state.version
        assert post(port, "/api/prompts/rollback", {"version": "nothere", "operator": "ben"})[0] == 422

        rows = json.loads(get(port, "/api/results?camera=cam1&limit=5")[1])
        assert 0 < len(rows) <= 5 and all(r["camera"] == "cam1" for r in rows)
        assert rows[0]["seq"] > rows[-1]["seq"]  # newest first
        assert json.loads(get(port, "/api/results?camera=other")[1]) == []
