"""The station's web app (Starlette): health and metrics for machines, the operator page for people.

One app, one port (``ops.http``). Everything the page shows comes from the JSON API below,
and every change it makes goes through the :class:`StationControl` the composition root
handed over - the same calls the MQTT commands make - so an edit from the page is
validated, versioned, written and audited exactly like one from the MES. All assets are
served from ``edge/ops/static`` (plants are often offline: no CDN).

Handlers are module-level functions of a request; what they share (the control, the
sources, auth, metrics) is one :class:`Context` on ``app.state``. Request bodies are read
by :func:`read_body`, which refuses a body over its limit from its Content-Length or while
streaming it, and gives up on a body that trickles in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import cv2
import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.config import OpsConfig
from edge.errors import EdgeInspectError
from edge.inspect.memory import blend_heat
from edge.inspect.thresholds import best_threshold, propose_thresholds
from edge.inspect.tiles import tiles_for
from edge.ops.auth import SESSION_COOKIE, SESSION_S, Auth, User
from edge.ops.guard import HostGuard, LoginThrottle
from edge.ops.health import health
from edge.ops.images import MAX_PIXELS, image_size
from edge.ops.metrics import Metrics
from edge.ops.sources import OpsSources
from edge.prompts import NAME_PATTERN, PromptSet
from edge.service.control import StationControl
from edge.service.teach import MAX_TEACH
from edge.validation import REQUESTED_BY_PATTERN, describe

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 256 * 1024  # a prompt set is a few KB; refuse anything that could fill memory
MAX_LOGIN_BODY = 4 * 1024  # a name and a password
MAX_IMAGE = 8 * 1024 * 1024  # one exemplar upload
MAX_EXEMPLARS = 50  # per category: few-shot means few; also bounds the disk used
BODY_TIMEOUT_S = 10.0  # a body that has not arrived by then is dropped (slow-loris)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/webp")
# the open page's typed operator name goes into the audit log and the saved prompt file's comment, where a line
# break would forge a line or inject a YAML key: the same rule as MQTT's requested_by (spaces allowed: "Anna K")
OPERATOR_MAX = 64
MAX_LABELS = 10_000  # threshold assistant: far more than the recent results the station keeps


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _operator(value: str) -> str:
    value = value.strip()
    if value and (len(value) > OPERATOR_MAX or not re.fullmatch(REQUESTED_BY_PATTERN, value)):  # empty: below
        raise ValueError(f"operator name: 1 to {OPERATOR_MAX} characters, none of them a line break, tab or other "
                         "control character, e.g. 'Anna K'")
    return value


Operator = Annotated[str, AfterValidator(_operator)]


class _Body(BaseModel):
    """A JSON body of the page, checked before anything runs (like the MQTT verbs' args): a wrong type is a
    422 with one line, never a TypeError deep in a handler."""

    model_config = ConfigDict(extra="forbid")


class PreviewBody(_Body):
    prompt_set: dict[str, Any]


class _ChangeBody(_Body):
    operator: Operator | None = Field(default=None, description="The open page's name for the audit log.")


class ActivateBody(_ChangeBody):
    prompt_set: dict[str, Any]


class RollbackBody(_ChangeBody):
    version: str = Field(max_length=64)


class KeepBody(_ChangeBody):
    stage: str = Field(max_length=64)


class ThresholdsBody(_Body):
    labels: dict[str, str] = Field(max_length=MAX_LABELS, description="Result id -> category.")


class TeachBody(_Body):
    """The camera's next ``frames`` frames, or recent results by id (as many as a teaching takes)."""

    ids: list[Annotated[str, Field(max_length=128)]] = Field(default_factory=list, max_length=MAX_TEACH)
    camera: str | None = Field(default=None, max_length=64)
    frames: StrictInt = Field(default=16, ge=1, le=MAX_TEACH)


B = TypeVar("B", bound=_Body)
C = TypeVar("C", bound=_ChangeBody)


@dataclass
class Context:
    """What the handlers share; built once per app."""

    sources: OpsSources
    cfg: OpsConfig
    auth: Auth
    metrics: Metrics
    throttle: LoginThrottle
    guard: HostGuard
    busy: asyncio.Semaphore  # one preview at a time: it shares the encoder with the line

    @property
    def control(self) -> StationControl:
        return self.sources.control

    def health(self) -> tuple[bool, dict[str, Any]]:
        return health(self.control.status(), self.sources.health)


def ctx(request: Request) -> Context:
    context: Context = request.app.state.ctx
    return context


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) over ``limit`` by its Content-Length or as soon as the stream passes
    it, and (408) when it has not fully arrived within BODY_TIMEOUT_S."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyError(413, f"request body of {declared} bytes; the limit is {limit}")

    async def collect() -> bytes:
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise BodyError(413, f"request body over {limit} bytes")
        return bytes(data)

    try:
        return await asyncio.wait_for(collect(), BODY_TIMEOUT_S)
    except asyncio.TimeoutError as err:
        raise BodyError(408, f"request body not complete within {BODY_TIMEOUT_S:g} s") from err
    except ClientDisconnect as err:
        raise BodyError(400, "client went away") from err


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    raw = await read_body(request, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as err:  # RecursionError: deeply nested arrays
        raise BodyError(400, "not valid JSON") from err


Handler = Callable[[Request], Any]


def protected(handler: Handler, change: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Viewers read; operators change, with the session's CSRF token. Open page: everyone is 'local'."""
    async def endpoint(request: Request) -> Response:
        c = ctx(request)
        user = c.auth.user(request.cookies)
        if user is None:
            return error(401, "log in first", login=True)
        if change and not user.may_change:
            return error(403, f"{user.name} may look but not change (role {user.role})")
        if change and not c.auth.csrf_ok(request.cookies, request.headers.get("x-csrf-token")):
            return error(403, "missing or wrong CSRF token; reload the page")
        request.state.user = user
        try:
            if inspect.iscoroutinefunction(handler):
                response: Response = await handler(request)
            else:
                response = await run_in_threadpool(handler, request)
        except BodyError as err:
            return error(err.status, str(err))
        return response
    return endpoint


def who(request: Request, body: _ChangeBody) -> str:
    """The name for the audit log: the login, or (open page) the name the operator typed."""
    user: User = request.state.user
    return user.name if ctx(request).auth.enabled else body.operator or ""


# ---- sessions ----
async def login(request: Request) -> Response:
    c = ctx(request)
    client = request.client.host if request.client else "?"
    try:
        body = await read_json(request, MAX_LOGIN_BODY)
        name, password = str(body["name"])[:64], str(body["password"])[:256]
    except BodyError as err:
        return error(err.status if err.status != 400 else 400, "send {name, password} as JSON")
    except (KeyError, TypeError):
        return error(400, "send {name, password} as JSON")
    if not c.auth.enabled:
        return error(400, "logins are off: the page is open on loopback")
    wait = c.throttle.wait_s(client, name)
    if wait > 0:
        return error(429, f"too many failed logins; try again in {wait:.0f} s", retry_after=round(wait))
    granted = await c.throttle.hash(lambda: c.auth.login(name, password))
    c.throttle.record(client, name, granted is not None)
    if granted is None:
        return error(401, "wrong name or password")
    session, csrf = granted
    response = JSONResponse({"user": name, "role": c.auth.users[name].role, "csrf": csrf})
    response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_S, httponly=True, samesite="strict")
    return response


async def logout(request: Request) -> Response:
    ctx(request).auth.revoke(request.cookies.get(SESSION_COOKIE, ""))
    response = JSONResponse({"ok": True})
    response.delete_cookie(SESSION_COOKIE)
    return response


async def me(request: Request) -> Response:
    c = ctx(request)
    user = c.auth.user(request.cookies)
    if user is None:
        return JSONResponse({"auth": True, "user": None})
    csrf = c.auth.csrf_token(request.cookies.get(SESSION_COOKIE, "")) if c.auth.enabled else ""
    return JSONResponse({"auth": c.auth.enabled, "user": user.name, "role": user.role, "csrf": csrf})


# ---- machines ----
async def healthz(request: Request) -> Response:
    ok, body = await run_in_threadpool(ctx(request).health)
    return JSONResponse(body, status_code=200 if ok else 503)


async def metrics_route(request: Request) -> Response:
    data = await run_in_threadpool(ctx(request).metrics.exposition)
    return Response(data, media_type="text/plain; version=0.0.4; charset=utf-8")


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


# ---- what the page shows ----
def state(request: Request) -> Response:
    c = ctx(request)
    latest: dict[str, Any] = {}
    for r in reversed(c.control.recent()):
        latest.setdefault(r.camera, r)
    cams = {}
    for name, cam in c.control.cameras().items():
        result = latest.get(name)
        cams[name] = {"state": cam.state, "frames": cam.frames, "last_error": cam.last_error,
                      "result": None if result is None else {
                          "verdict": result.verdict, "category": result.category, "score": result.score,
                          "top": sorted(result.scores.items(), key=lambda kv: -kv[1])[:3], "seq": result.seq,
                          "version": result.prompt_set.version}}
    ok, body = c.health()
    p = c.control.prompt_state
    memory = {"version": p.memory_version, "images": p.good_images} if p.memories else None
    return JSONResponse({"cameras": cams, "prompt_set": {"name": p.prompts.name, "version": p.version},
                         "memory": memory, "healthy": ok, "health": body, "backend": c.sources.backend})


def frame(request: Request) -> Response:
    """The camera's newest frame with its tile grid; ``?where=1``: the last inspected frame with its anomaly
    map (a good-part memory) and the region the verdict was named from."""
    c = ctx(request)
    name = request.path_params["camera"]
    cams = c.control.cameras()
    if name in cams and request.query_params.get("where") and (seen := c.control.latest_where(name)) is not None:
        image, heat, region = seen
        image = blend_heat(image, heat) if heat is not None else image.copy()
        if region is not None:
            x, y, w, h = region
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 0, 255), 2)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return Response(jpeg.tobytes() if ok else b"", media_type="image/jpeg", headers={"Cache-Control": "no-store"})
    newest = c.control.latest_frame(name) if name in cams else None
    if newest is None:
        return error(404, f"camera {name}: no frame yet")
    image = newest.image.copy()
    h, w = image.shape[:2]
    for tile in tiles_for(cams[name].config, w, h):
        x, y, tw, th = tile.box
        cv2.rectangle(image, (x, y), (x + tw - 1, y + th - 1), (0, 200, 255), 1)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return Response(jpeg.tobytes() if ok else b"", media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def prompts(request: Request) -> Response:
    control = ctx(request).control
    return JSONResponse({"active": control.prompt_state.prompts.model_dump(mode="json"),
                         "version": control.prompt_state.version,
                         "history": [e.model_dump() for e in control.prompt_history(100)]})


def evidence(request: Request) -> Response:
    """An evidence JPEG by its result's ``snapshot`` reference (never a path outside the store)."""
    root = ctx(request).sources.evidence_dir.resolve()
    try:
        path = (root / request.path_params["ref"]).resolve()
        found = path.is_relative_to(root) and path.suffix.lower() == ".jpg" and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long: not a reference either
        found = False
    if not found:
        return error(404, "no such evidence image (evicted, or not a reference)")
    return FileResponse(path, media_type="image/jpeg")


def results(request: Request) -> Response:
    q = request.query_params
    rows = [r for r in reversed(ctx(request).control.recent())
            if all(not q.get(k) or getattr(r, k) == q[k] for k in ("camera", "verdict", "category"))]
    limit = min(int(q.get("limit", "50")) if q.get("limit", "50").isdigit() else 50, 500)
    return JSONResponse([r.to_dict() for r in rows[:limit]])


# ---- what the page changes ----
def _field_errors(err: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(set)", "message": e["msg"]} for e in err.errors()]


async def _edit(request: Request, model: type[B]) -> B | JSONResponse:
    """The body as ``model``, or the error to answer with (422 naming the field); a prompt set in it is
    validated in full, with every field's error listed for the page."""
    # a JSON content type cannot be sent cross-site without a CORS preflight, which this app never
    # grants: a page elsewhere in the plant network cannot make an operator's browser change the prompts
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return error(415, "send JSON (Content-Type: application/json)")
    data = await read_json(request)
    if not isinstance(data, dict):
        return error(400, "expected a JSON object")
    try:
        body = model.model_validate(data)
    except ValidationError as err:
        return error(422, f"request body {describe(err)}; nothing changed")
    prompt_set = getattr(body, "prompt_set", None)
    if prompt_set is not None:
        try:
            PromptSet.model_validate(prompt_set)
        except ValidationError as err:
            return error(422, "the prompt set is not valid; nothing changed", fields=_field_errors(err))
    return body


async def preview(request: Request) -> Response:
    c = ctx(request)
    body = await _edit(request, PreviewBody)
    if isinstance(body, JSONResponse):
        return body
    if c.busy.locked():
        return error(429, "a preview is already running; try again in a moment")
    async with c.busy:
        try:
            result = await asyncio.to_thread(c.control.preview_prompts, body.prompt_set)
        except EdgeInspectError as err:
            return error(422, str(err))
    return JSONResponse(result)


async def _change_prompts(request: Request, what: str, model: type[C], apply: Callable[[C, str], Any]) -> Response:
    """Activate and roll back alike: validate, name the operator, apply through the control, report."""
    body = await _edit(request, model)
    if isinstance(body, JSONResponse):
        return body
    operator = who(request, body)
    if not operator:
        return error(422, f"say who you are (operator name) before {what}")
    try:
        active = await asyncio.to_thread(apply, body, f"ui:{operator}")
    except EdgeInspectError as err:
        return error(422, str(err))
    return JSONResponse({"version": active.version, "name": active.prompts.name,
                         "memory": {"version": active.memory_version, "images": active.good_images}
                         if active.memories else None})


async def activate(request: Request) -> Response:
    control = ctx(request).control
    return await _change_prompts(request, "activating", ActivateBody,
                                 lambda body, source: control.apply_prompts(body.prompt_set, source))


async def rollback(request: Request) -> Response:
    control = ctx(request).control
    return await _change_prompts(request, "rolling back", RollbackBody,
                                 lambda body, source: control.rollback_prompts(body.version, source))


def _store_exemplar(folder: Path, data: bytes) -> tuple[int, str] | str:
    """Decode (off the event loop), re-encode as PNG, store once by content: (count, name) or an error."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return "not a readable image; nothing was stored"
    existing = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if len(existing) >= MAX_EXEMPLARS:
        return f"{folder.name} already has {MAX_EXEMPLARS} examples; that is plenty for few-shot"
    folder.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", image)
    name = hashlib.sha256(png.tobytes()).hexdigest()[:16] + ".png"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(png.tobytes())
    tmp.replace(folder / name)
    return len(list(folder.glob("*.png"))), name


async def upload_exemplar(request: Request) -> Response:
    """Store one example image for a category; the edit then points at the folder."""
    category = request.path_params["category"]
    if not re.fullmatch(NAME_PATTERN, category):
        return error(422, f"category {category!r}: not a category name")
    if request.headers.get("content-type", "").split(";")[0].strip() not in IMAGE_TYPES:
        return error(415, "upload a PNG, JPEG, BMP or WebP image")
    data = await read_body(request, MAX_IMAGE)
    size = image_size(data)
    if size is None:
        return error(422, "not a PNG, JPEG, BMP or WebP image (its header says otherwise); nothing was stored")
    if size[0] * size[1] > MAX_PIXELS:
        return error(413, f"image of {size[0]} x {size[1]} pixels; the limit is {MAX_PIXELS // 10**6} megapixels")
    folder = ctx(request).sources.state_dir / "exemplars" / category
    stored = await run_in_threadpool(_store_exemplar, folder, data)
    if isinstance(stored, str):
        return error(422, stored)
    return JSONResponse({"category": category, "folder": str(folder.resolve()), "count": stored[0]})


async def thresholds(request: Request) -> Response:
    """Threshold assistant: the operator labels recent frames; propose per-category thresholds."""
    control = ctx(request).control
    body = await _edit(request, ThresholdsBody)
    if isinstance(body, JSONResponse):
        return body
    labels = body.labels
    active = control.prompt_state
    names = {c.name for c in active.prompts.categories}
    if any(v not in names for v in labels.values()):
        return error(422, f"labels must map result ids to categories ({', '.join(sorted(names))})")
    rows = [r for r in control.recent() if r.id in labels and r.prompt_set.version == active.version]
    if len(rows) < 2:
        return error(422, "label at least 2 recent frames scored by the active set (frames scored by an earlier "
                     "version do not count)")
    probs = np.array([[r.scores[c.name] for c in active.prompts.categories] for r in rows])
    proposals = propose_thresholds(probs, [labels[r.id] for r in rows], active.prompts)
    return JSONResponse({"version": active.version, "frames": len(rows),
                         "proposals": [dataclasses.asdict(x) for x in proposals],
                         "anomaly": _anomaly_proposal(rows, labels, active)})


def _anomaly_proposal(rows: list[Any], labels: dict[str, str], active: Any) -> dict[str, Any] | None:
    """With a memory: where the anomaly threshold should sit on the marks, as the memory margin to set."""
    marked = [r for r in rows if r.anomaly is not None]
    good = {c.name for c in active.prompts.categories if c.ok}
    if not marked:
        return None
    ratio = np.array([r.anomaly.score / max(r.anomaly.threshold, 1e-9) for r in marked])
    defect = np.array([labels[r.id] not in good for r in marked])
    t, precision, recall = best_threshold(ratio, defect, clip=False)
    return {"ratio": round(t, 4), "margin": round(active.prompts.memory.margin * t, 4), "precision": precision,
            "recall": recall, "defects": int(defect.sum()), "good": int((~defect).sum())}


# ---- the good-part memory ----
def memory(request: Request) -> Response:
    return JSONResponse(ctx(request).control.memory_status())


async def teach(request: Request) -> Response:
    """Stage good frames (the camera's next N, or recent results by id) for the operator to look at."""
    control = ctx(request).control
    body = await _edit(request, TeachBody)
    if isinstance(body, JSONResponse):
        return body
    if not body.ids and not body.camera:
        return error(422, "pick a camera (and how many of its next frames) or tick good frames in the history")
    try:
        staged = await asyncio.to_thread(control.teach_stage, body.camera, body.frames, body.ids)
    except EdgeInspectError as err:
        return error(422, str(err))
    return JSONResponse({**staged, "urls": [f"/api/memory/staged/{staged['stage']}/{f}" for f in staged["files"]]})


def staged_image(request: Request) -> Response:
    try:
        path = ctx(request).control.staged_image(request.path_params["stage"], request.path_params["name"])
    except EdgeInspectError as err:
        return error(404, str(err))
    return FileResponse(path, media_type="image/png")


async def keep(request: Request) -> Response:
    control = ctx(request).control
    return await _change_prompts(request, "keeping good parts", KeepBody,
                                 lambda body, source: control.teach_keep(body.stage, source))


async def memory_rollback(request: Request) -> Response:
    control = ctx(request).control
    return await _change_prompts(request, "rolling the memory back", _ChangeBody,
                                 lambda body, source: control.memory_rollback(source))


ROUTES = [
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
    Route("/api/memory", protected(memory)),
    Route("/api/memory/teach", protected(teach, change=True), methods=["POST"]),
    Route("/api/memory/staged/{stage}/{name}", protected(staged_image)),
    Route("/api/memory/keep", protected(keep, change=True), methods=["POST"]),
    Route("/api/memory/rollback", protected(memory_rollback, change=True), methods=["POST"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def create_app(sources: OpsSources, cfg: OpsConfig, metrics: Metrics) -> Starlette:
    auth = Auth(cfg, sources.state_dir / "ui-session.key")
    context = Context(sources, cfg, auth, metrics, LoginThrottle(), HostGuard(cfg), asyncio.Semaphore(1))
    app = Starlette(routes=ROUTES, middleware=[context.guard.middleware()])
    app.state.ctx = context
    app.state.metrics = metrics
    app.state.preview_busy = context.busy
    return app
