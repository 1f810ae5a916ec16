"""The service's web app (Starlette): health and metrics for machines, the operator page for people.

One app, one port (``ops.http``). Everything the page shows comes from the JSON API below,
and every change it makes goes through the service's own methods - the same ones the MQTT
commands call - so an edit from the page is validated, versioned, written and audited
exactly like one from the MES. All assets are served from ``edge/ops/static`` (plants are
often offline: no CDN).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.errors import EdgeInspectError
from edge.ops.auth import SESSION_COOKIE, SESSION_S, Auth, User
from edge.ops.health import health
from edge.ops.metrics import Metrics
from edge.prompts import NAME_PATTERN, PromptSet
from edge.service.thresholds import propose_thresholds
from edge.service.tiles import tiles_for

if TYPE_CHECKING:
    from edge.config import OpsConfig
    from edge.service.service import InspectionService

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 256 * 1024  # a prompt set is a few KB; refuse anything that could fill memory
MAX_IMAGE = 8 * 1024 * 1024  # one exemplar upload
MAX_EXEMPLARS = 50  # per category: few-shot means few; also bounds the disk used
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/webp")


def _field_errors(err: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(set)", "message": e["msg"]} for e in err.errors()]


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ValueError(f"request of {len(raw)} bytes; the limit is {MAX_BODY}")
    return await request.json()


Handler = Callable[[Request], Any]


def create_app(service: InspectionService, cfg: OpsConfig) -> Starlette:
    metrics = Metrics(service)
    busy = asyncio.Semaphore(1)  # one preview at a time: it shares the encoder with the line
    auth = Auth(cfg, service.config.state_dir / "ui-session.key")

    def protected(handler: Handler, change: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Viewers read; operators change, with the session's CSRF token. Open page: everyone is 'local'."""
        async def endpoint(request: Request) -> Response:
            user = auth.user(request.cookies)
            if user is None:
                return JSONResponse({"error": "log in first", "login": True}, status_code=401)
            if change and not user.may_change:
                return JSONResponse({"error": f"{user.name} may look but not change (role {user.role})"},
                                    status_code=403)
            if change and not auth.csrf_ok(request.cookies, request.headers.get("x-csrf-token")):
                return JSONResponse({"error": "missing or wrong CSRF token; reload the page"}, status_code=403)
            request.state.user = user
            if inspect.iscoroutinefunction(handler):
                response: Response = await handler(request)
            else:
                response = await run_in_threadpool(handler, request)
            return response
        return endpoint

    def who(request: Request, body: dict[str, Any]) -> str:
        """The name for the audit log: the login, or (open page) the name the operator typed."""
        user: User = request.state.user
        return user.name if auth.enabled else str(body.get("operator") or "").strip()[:64]

    async def login(request: Request) -> Response:
        try:
            body = await _json_body(request)
            name, password = str(body["name"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send {name, password} as JSON"}, status_code=400)
        granted = await run_in_threadpool(auth.login, name, password) if auth.enabled else None
        if granted is None:
            return JSONResponse({"error": "wrong name or password" if auth.enabled else "logins are off: the page "
                                 "is open on loopback"}, status_code=401 if auth.enabled else 400)
        session, csrf = granted
        response = JSONResponse({"user": name, "role": auth.users[name].role, "csrf": csrf})
        response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_S, httponly=True, samesite="strict")
        return response

    async def logout(request: Request) -> Response:
        response = JSONResponse({"ok": True})
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def me(request: Request) -> Response:
        user = auth.user(request.cookies)
        if user is None:
            return JSONResponse({"auth": True, "user": None})
        csrf = auth.csrf_token(request.cookies.get(SESSION_COOKIE, "")) if auth.enabled else ""
        return JSONResponse({"auth": auth.enabled, "user": user.name, "role": user.role, "csrf": csrf})

    async def healthz(request: Request) -> Response:
        ok, body = health(service, cfg.stall_after_s)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    def state(request: Request) -> Response:
        latest: dict[str, Any] = {}
        for r in reversed(service.recent()):
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

    async def _change_prompts(request: Request, what: str, apply: Callable[[dict[str, Any], str], Any]) -> Response:
        """Activate and roll back alike: validate, name the operator, apply through the service, report."""
        body, problem = await _edit(request)
        if problem:
            return problem
        operator = who(request, body)
        if not operator:
            return JSONResponse({"error": f"say who you are (operator name) before {what}"}, status_code=422)
        try:
            state = await asyncio.to_thread(apply, body, f"ui:{operator}")
        except EdgeInspectError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse({"version": state.version, "name": state.prompts.name})

    async def activate(request: Request) -> Response:
        return await _change_prompts(request, "activating",
                                     lambda body, source: service.apply_prompt_set(body.get("prompt_set"), source))

    async def rollback(request: Request) -> Response:
        return await _change_prompts(request, "rolling back",
                                     lambda body, source: service.rollback(str(body.get("version", "")), source))

    def evidence(request: Request) -> Response:
        """An evidence JPEG by its result's ``snapshot`` reference (never a path outside the store)."""
        root = service.config.evidence_dir.resolve()
        path = (root / request.path_params["ref"]).resolve()
        if not path.is_relative_to(root) or path.suffix.lower() != ".jpg" or not path.is_file():
            return JSONResponse({"error": "no such evidence image (evicted, or not a reference)"}, status_code=404)
        return FileResponse(path, media_type="image/jpeg")

    async def upload_exemplar(request: Request) -> Response:
        """Store one example image for a category (re-encoded as PNG); the edit then points at the folder."""
        category = request.path_params["category"]
        if not re.fullmatch(NAME_PATTERN, category):
            return JSONResponse({"error": f"category {category!r}: not a category name"}, status_code=422)
        if request.headers.get("content-type", "").split(";")[0].strip() not in IMAGE_TYPES:
            return JSONResponse({"error": "upload a PNG, JPEG, BMP or WebP image"}, status_code=415)
        if int(request.headers.get("content-length") or 0) > MAX_IMAGE:
            return JSONResponse({"error": f"image larger than {MAX_IMAGE // 2**20} MB; send a smaller one"},
                                status_code=413)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_IMAGE:
                return JSONResponse({"error": f"image larger than {MAX_IMAGE // 2**20} MB"}, status_code=413)
        image = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            return JSONResponse({"error": "not a readable image; nothing was stored"}, status_code=422)
        folder = service.config.state_dir / "exemplars" / category
        existing = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if len(existing) >= MAX_EXEMPLARS:
            return JSONResponse({"error": f"{category} already has {MAX_EXEMPLARS} examples; that is plenty for "
                                 "few-shot"}, status_code=422)
        folder.mkdir(parents=True, exist_ok=True)
        ok, png = cv2.imencode(".png", image)
        name = hashlib.sha256(png.tobytes()).hexdigest()[:16] + ".png"
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(png.tobytes())
        tmp.replace(folder / name)
        return JSONResponse({"category": category, "folder": str(folder.resolve()),
                             "count": len(list(folder.glob("*.png")))})

    async def thresholds(request: Request) -> Response:
        """Threshold assistant: the operator labels recent frames; propose per-category thresholds."""
        body, problem = await _edit(request)
        if problem:
            return problem
        labels = body.get("labels")
        state = service.prompt_state
        names = {c.name for c in state.prompts.categories}
        if not isinstance(labels, dict) or any(v not in names for v in labels.values()):
            return JSONResponse({"error": f"labels must map result ids to categories ({', '.join(sorted(names))})"},
                                status_code=422)
        rows = [r for r in service.recent() if r.id in labels and r.prompt_set.version == state.version]
        if len(rows) < 2:
            return JSONResponse({"error": "label at least 2 recent frames scored by the active set (frames "
                                 "scored by an earlier version do not count)"}, status_code=422)
        probs = np.array([[r.scores[c.name] for c in state.prompts.categories] for r in rows])
        proposals = propose_thresholds(probs, [labels[r.id] for r in rows], state.prompts)
        return JSONResponse({"version": state.version, "frames": len(rows),
                             "proposals": [dataclasses.asdict(x) for x in proposals]})

    def results(request: Request) -> Response:
        q = request.query_params
        rows = [r for r in reversed(service.recent())
                if all(not q.get(k) or getattr(r, k) == q[k] for k in ("camera", "verdict", "category"))]
        limit = min(int(q.get("limit", "50")) if q.get("limit", "50").isdigit() else 50, 500)
        return JSONResponse([r.to_dict() for r in rows[:limit]])

    routes = [
        Route("/healthz", healthz), Route("/metrics", metrics_route), Route("/", index),
        Route("/api/login", login, methods=["POST"]), Route("/api/logout", logout, methods=["POST"]),
        Route("/api/me", me),
        Route("/api/state", protected(state)), Route("/api/cameras/{camera}/frame.jpg", protected(frame)),
        Route("/api/prompts", protected(prompts)),
        Route("/api/prompts/preview", protected(preview, change=True), methods=["POST"]),
        Route("/api/prompts/activate", protected(activate, change=True), methods=["POST"]),
        Route("/api/prompts/rollback", protected(rollback, change=True), methods=["POST"]),
        Route("/api/results", protected(results)),
        Route("/api/evidence/{ref:path}", protected(evidence)),
        Route("/api/thresholds", protected(thresholds), methods=["POST"]),
        Route("/api/exemplars/{category}", protected(upload_exemplar, change=True), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.metrics = metrics
    app.state.preview_busy = busy
    return app
