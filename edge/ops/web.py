"""The service's web app (Starlette): health and metrics for machines, the operator page for people.

One app, one port (``ops.http``). Everything the page shows comes from the JSON API below,
and every change it makes goes through the service's own methods - the same ones the MQTT
commands call - so an edit from the page is validated, versioned, written and audited
exactly like one from the MES. All assets are served from ``edge/ops/static`` (plants are
often offline: no CDN).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.errors import EdgeInspectError
from edge.ops.health import health
from edge.ops.metrics import Metrics
from edge.prompts import PromptSet
from edge.service.tiles import tiles_for

if TYPE_CHECKING:
    from edge.config import OpsConfig
    from edge.service.service import InspectionService

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 256 * 1024  # a prompt set is a few KB; refuse anything that could fill memory


def _field_errors(err: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(set)", "message": e["msg"]} for e in err.errors()]


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ValueError(f"request of {len(raw)} bytes; the limit is {MAX_BODY}")
    return await request.json()


def create_app(service: InspectionService, cfg: OpsConfig) -> Starlette:
    metrics = Metrics(service)
    busy = asyncio.Semaphore(1)  # one preview at a time: it shares the encoder with the line

    async def healthz(request: Request) -> Response:
        ok, body = health(service, cfg.stall_after_s)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    def state(request: Request) -> Response:
        latest: dict[str, Any] = {}
        for r in reversed(service.recent):
            latest.setdefault(r.camera, r)
        cams = {}
        for name, cam in service.cameras.items():
            result = latest.get(name)
            cams[name] = {"state": cam.state.value, "frames": cam.stats.frames, "last_error": cam.stats.last_error,
                          "result": None if result is None else {
                              "verdict": result.verdict, "category": result.category, "score": result.score,
                              "top": sorted(result.scores.items(), key=lambda kv: -kv[1])[:3], "seq": result.seq,
                              "version": result.prompt_set.version}}
        ok, body = health(service, cfg.stall_after_s)
        p = service.prompt_state
        return JSONResponse({"cameras": cams, "prompt_set": {"name": p.prompts.name, "version": p.version},
                             "healthy": ok, "health": body, "backend": service.backend})

    def frame(request: Request) -> Response:
        name = request.path_params["camera"]
        cam = service.cameras.get(name)
        newest = cam.latest_peek() if cam is not None else None
        if newest is None:
            return JSONResponse({"error": f"camera {name}: no frame yet"}, status_code=404)
        image = newest.image.copy()
        h, w = image.shape[:2]
        for tile in tiles_for(cam.config, w, h):  # type: ignore[union-attr]
            x, y, tw, th = tile.box
            cv2.rectangle(image, (x, y), (x + tw - 1, y + th - 1), (0, 200, 255), 1)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return Response(jpeg.tobytes() if ok else b"", media_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})

    def prompts(request: Request) -> Response:
        return JSONResponse({"active": service.prompt_state.prompts.model_dump(mode="json"),
                             "version": service.prompt_state.version,
                             "history": [e.model_dump() for e in service.history.entries(100)]})

    async def _edit(request: Request) -> tuple[Any, JSONResponse | None]:
        # a JSON content type cannot be sent cross-site without a CORS preflight, which this app never
        # grants: a page elsewhere in the plant network cannot make an operator's browser change the prompts
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return None, JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
        try:
            body = await _json_body(request)
        except ValueError as err:
            return None, JSONResponse({"error": f"not a JSON object: {err}"}, status_code=400)
        if not isinstance(body, dict):
            return None, JSONResponse({"error": "expected a JSON object"}, status_code=400)
        if "prompt_set" in body:
            try:
                PromptSet.model_validate(body["prompt_set"])
            except ValidationError as err:
                return None, JSONResponse({"error": "the prompt set is not valid; nothing changed",
                                           "fields": _field_errors(err)}, status_code=422)
        return body, None

    async def preview(request: Request) -> Response:
        body, problem = await _edit(request)
        if problem:
            return problem
        if busy.locked():
            return JSONResponse({"error": "a preview is already running; try again in a moment"}, status_code=429)
        async with busy:
            try:
                result = await asyncio.to_thread(service.preview, body.get("prompt_set"))
            except EdgeInspectError as err:
                return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse(result)

    async def activate(request: Request) -> Response:
        body, problem = await _edit(request)
        if problem:
            return problem
        operator = str(body.get("operator") or "").strip()[:64]
        if not operator:
            return JSONResponse({"error": "say who you are (operator name) before activating"}, status_code=422)
        try:
            state = await asyncio.to_thread(service.apply_prompt_set, body.get("prompt_set"), f"ui:{operator}")
        except EdgeInspectError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse({"version": state.version, "name": state.prompts.name})

    async def rollback(request: Request) -> Response:
        body, problem = await _edit(request)
        if problem:
            return problem
        operator = str(body.get("operator") or "").strip()[:64]
        if not operator:
            return JSONResponse({"error": "say who you are (operator name) before rolling back"}, status_code=422)
        try:
            state = await asyncio.to_thread(service.rollback, str(body.get("version", "")), f"ui:{operator}")
        except EdgeInspectError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse({"version": state.version, "name": state.prompts.name})

    def results(request: Request) -> Response:
        q = request.query_params
        rows = [r for r in reversed(service.recent)
                if all(not q.get(k) or getattr(r, k) == q[k] for k in ("camera", "verdict", "category"))]
        limit = min(int(q.get("limit", "50")) if q.get("limit", "50").isdigit() else 50, 500)
        return JSONResponse([r.to_dict() for r in rows[:limit]])

    routes = [
        Route("/healthz", healthz), Route("/metrics", metrics_route), Route("/", index),
        Route("/api/state", state), Route("/api/cameras/{camera}/frame.jpg", frame),
        Route("/api/prompts", prompts), Route("/api/prompts/preview", preview, methods=["POST"]),
        Route("/api/prompts/activate", activate, methods=["POST"]),
        Route("/api/prompts/rollback", rollback, methods=["POST"]),
        Route("/api/results", results),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.metrics = metrics
    return app
