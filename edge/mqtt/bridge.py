"""MQTT in front of a station: status, retained prompts, and the commands.

The bridge knows the station only as a :class:`~edge.service.control.StationControl`; the
composition root gives it the outbox (already the publisher's first sink), the status board
and the observers. Commands arrive on ``.../cmd/{verb}``; each is size-limited, parsed and
validated with pydantic, executed on a supervised worker thread (never in a paho callback),
and answered on the MQTT 5 response topic (or ``.../cmd/{verb}/response``) with the
correlation data and the request id echoed, also on errors.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from edge.config import MqttConfig, StationConfig
from edge.errors import ConfigError, EdgeInspectError
from edge.inspect.prompt_state import PromptState
from edge.mqtt.link import MqttLink
from edge.mqtt.outbox import Outbox
from edge.mqtt.payloads import (
    MAX_COMMAND_BYTES,
    PROMPTS_ACTIVE_SCHEMA_ID,
    RESPONSE_SCHEMA_ID,
    CommandRequest,
    CommandResponse,
    Empty,
    MemoryArgs,
    MemoryResult,
    OutboxStats,
    PromptsActive,
    PromptsArgs,
    PromptsSetResult,
    PromptsTestResult,
    ReplayArgs,
    ReplayResult,
    SnapshotArgs,
    SnapshotResult,
    StatusPayload,
    TriggerArgs,
    TriggerResult,
)
from edge.mqtt.topics import Topics
from edge.results import iso_ms
from edge.service.control import Observers, StationControl
from edge.service.status import StatusBoard
from edge.validation import describe

log = logging.getLogger("edge_inspect.mqtt")
audit = logging.getLogger("edge_inspect.audit")

Supervise = Callable[[str, Callable[[], None]], Any]
Verb = tuple[type[BaseModel], type[BaseModel], Callable[[Any], dict[str, Any]]]  # args, result, handler


def _now() -> str:
    return iso_ms(datetime.now(timezone.utc))


class MqttBridge:
    def __init__(self, control: StationControl, cfg: MqttConfig, station: StationConfig, outbox: Outbox,
                 status: StatusBoard, observers: Observers, supervise: Supervise) -> None:
        self.control = control
        self.cfg = cfg
        self.station = station
        self.topics = Topics(cfg.prefix, station)
        self.outbox = outbox
        self.status = status
        self._supervise = supervise
        self._connected_at = _now()
        self.link = MqttLink(cfg, self.topics, outbox, self.status_json, self._retained, self._enqueue_command,
                             lambda reason: status.problem("mqtt", reason), on_connect=self._on_connect)
        self._commands: queue.Queue[Any] = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        # every answer goes through its verb's result model, the one response.schema.json lists: a handler's dict
        # that drifts from the schema is a bug reported as an internal error, never a payload an MES rejects
        self.handlers: dict[str, Verb] = {
            "prompts/set": (PromptsArgs, PromptsSetResult, self._prompts_set),
            "prompts/test": (PromptsArgs, PromptsTestResult, self._prompts_test),
            "trigger": (TriggerArgs, TriggerResult, self._trigger),
            "snapshot": (SnapshotArgs, SnapshotResult, self._snapshot),
            "replay": (ReplayArgs, ReplayResult, self._replay), "reload": (Empty, PromptsSetResult, self._reload),
            "memory": (MemoryArgs, MemoryResult, self._memory),
        }
        observers.on_prompt_change.append(self._publish_prompts)  # once per activation, whoever made it

    def start(self) -> MqttBridge:
        self._supervise("mqtt-commands", self._command_loop)
        self._supervise("mqtt-sender", self.link.run)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.link.stop()

    # ---- status and retained topics ----
    def _on_connect(self) -> None:
        self._connected_at = _now()

    def status_json(self, state: str) -> str:
        """``online``/``degraded`` with everything current, or the ``offline`` payload (the last will,
        registered at connect time, and the clean shutdown): no camera states, which would be stale."""
        snap = self.status.snapshot()
        common: dict[str, Any] = dict(station=self.station.path, version=snap.get("version"),
                                      model=snap.get("model"), prompt_set=snap.get("prompt_set"),
                                      since=self._connected_at, backend_note=snap.get("backend_note"))
        if state in ("offline", "will"):
            payload = StatusPayload(state="offline", reasons=[], ts=None if state == "will" else _now(), **common)
        else:
            cams = {name: view.state for name, view in self.control.cameras().items()}
            payload = StatusPayload(state=snap["state"], reasons=snap["reasons"], ts=_now(),
                                    outbox=OutboxStats.model_validate(self.outbox.stats()), cameras=cams, **common)
        return payload.model_dump_json(by_alias=True)

    def prompts_active_json(self, state: PromptState) -> str:
        body = PromptsActive(version=state.version, source=state.source, **state.prompts.model_dump(mode="json"))
        return body.model_dump_json(by_alias=True, exclude_none=True)

    def _retained(self) -> list[tuple[str, str, str]]:
        """Retained messages besides the status, re-sent on every connect: (topic, payload, schema id)."""
        return [(self.topics.prompts_active, self.prompts_active_json(self.control.prompt_state),
                 PROMPTS_ACTIVE_SCHEMA_ID)]

    def _publish_prompts(self, state: PromptState) -> None:
        """A newly activated set, retained. Under the link's retained lock: a reconnect re-sending the retained
        topics reads the active set and hands it to paho under the same lock, so it cannot send an older set
        after this one (the broker would keep the older)."""
        with self.link.retained_lock:
            self.link.publish_now(self.topics.prompts_active, self.prompts_active_json(state), retain=True,
                                  properties=self.link.properties(PROMPTS_ACTIVE_SCHEMA_ID), what="prompts/active")

    # ---- commands ----
    def _enqueue_command(self, message: Any) -> None:
        if self.topics.verb_of(message.topic) is None:
            return
        try:
            self._commands.put_nowait(message)
        except queue.Full:  # answered at once (publishing does not block), so the sender is never left waiting
            log.warning("command dropped: %d commands already waiting", self._commands.qsize())
            try:  # on paho's network thread: nothing may escape from here (it would stop the connection's loop)
                self._answer(message, self.topics.verb_of(message.topic) or "?", _loose_id(message.payload), None,
                             f"busy: {self._commands.qsize()} commands are waiting; send it again later")
            except Exception:
                log.exception("the busy answer to a command on %s failed", message.topic)

    def _command_loop(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._commands.get(timeout=0.2)
            except queue.Empty:
                continue
            self._answer(message, *self._execute(message))

    def _execute(self, message: Any) -> tuple[str, str | None, dict[str, Any] | None, str | None]:
        """(verb, request id, result, error): every error is an answer, never a dead thread."""
        verb = self.topics.verb_of(message.topic) or "?"
        if len(message.payload) > MAX_COMMAND_BYTES:
            return verb, None, None, f"payload of {len(message.payload)} bytes exceeds {MAX_COMMAND_BYTES}"
        try:
            request = CommandRequest.model_validate_json(message.payload or b"{}")
        except ValidationError as err:
            return verb, _loose_id(message.payload), None, f"invalid command: {describe(err)}"
        if verb not in self.handlers:
            return verb, request.id, None, f"unknown command '{verb}'; known: {', '.join(self.handlers)}"
        model, answer, handler = self.handlers[verb]
        try:
            args = model.model_validate(request.args)
        except ValidationError as err:
            return verb, request.id, None, f"invalid args: {describe(err)}"
        try:
            done = handler(args)
        except EdgeInspectError as err:
            return verb, request.id, None, str(err)
        except Exception as err:  # a bug in a verb is an error answer; the loop goes on
            log.exception("command %s failed", verb)
            return verb, request.id, None, f"internal error: {type(err).__name__}: {err}"
        try:
            return verb, request.id, answer.model_validate(done).model_dump(mode="json", by_alias=True), None
        except ValidationError as err:  # a bug: say that the command itself was carried out (do not send it again)
            log.exception("command %s: its answer does not match %s", verb, answer.__name__)
            return verb, request.id, None, (f"internal error after the command was carried out (do not send it "
                                            f"again): its answer does not match the schema: {describe(err)}")

    def _answer(self, message: Any, verb: str, request_id: str | None, result: dict[str, Any] | None,
                error: str | None) -> None:
        incoming = getattr(message, "properties", None)
        topic = getattr(incoming, "ResponseTopic", None) or self.topics.response(verb)
        if not self.topics.may_answer_on(topic):
            log.warning("command %s: response topic %r is a wildcard or one of this station's own data topics; "
                        "answering on %s instead", verb, topic, self.topics.response(verb))
            topic = self.topics.response(verb)
        props = self.link.properties(RESPONSE_SCHEMA_ID)
        correlation = getattr(incoming, "CorrelationData", None)
        if props is not None and correlation is not None:
            props.CorrelationData = correlation
        body = CommandResponse(verb=verb, id=request_id, ok=error is None, error=error, result=result, ts=_now())
        if error:
            log.warning("command %s rejected: %s", verb, error)
        self.link.publish_now(topic, body.model_dump_json(by_alias=True), properties=props,
                              what=f"the response to {verb} on {topic}", fallback=self.topics.response(verb))

    # ---- the verbs ----
    def _prompts_set(self, args: PromptsArgs) -> dict[str, Any]:
        state = self.control.apply_prompts(args.prompt_set, source=f"mqtt:{args.requested_by or 'unknown'}")
        return {"name": state.prompts.name, "version": state.version}

    def _prompts_test(self, args: PromptsArgs) -> dict[str, Any]:
        return self.control.preview_prompts(args.prompt_set)

    def _trigger(self, args: TriggerArgs) -> dict[str, Any]:
        return self.control.trigger(args.camera, args.part_id)

    def _snapshot(self, args: SnapshotArgs) -> dict[str, Any]:
        return {"snapshot": self.control.snapshot(args.camera)}

    def _replay(self, args: ReplayArgs) -> dict[str, Any]:
        rows = self.outbox.delivered_since(args.from_seq, args.to_seq, args.limit)
        for row in rows:
            data = json.loads(row.payload)
            data["replayed"] = True
            self.link.publish_now(self.topics.result(row.camera), json.dumps(data, separators=(",", ":")),
                                  properties=self.link.result_properties(row.id), what=f"replay of seq {row.seq}")
        first = rows[0].seq if rows else None
        return {"replayed": len(rows), "first_seq": first, "last_seq": rows[-1].seq if rows else None}

    def _memory(self, args: MemoryArgs) -> dict[str, Any]:
        source = f"mqtt:{args.requested_by or 'unknown'}"
        activated = None
        if args.action == "teach":
            if not args.ids and not args.camera:
                raise ConfigError("memory teach: give a camera (and frames) or the ids of recent good results.")
            activated = self.control.teach(args.camera, args.frames, args.ids, source).version
        elif args.action == "rollback":
            activated = self.control.memory_rollback(source).version
        return {**self.control.memory_status(), "prompt_set": activated}

    def _reload(self, args: Empty) -> dict[str, Any]:
        state = self.control.reload_prompts(f"mqtt:{args.requested_by or 'unknown'}")
        return {"name": state.prompts.name, "version": state.version}


def _loose_id(payload: bytes) -> str | None:
    """The request id of a command that failed validation, when it can still be read (not past the size limit)."""
    if len(payload or b"") > MAX_COMMAND_BYTES:
        return None
    try:
        data = json.loads(payload or b"{}")
    except (ValueError, RecursionError):  # RecursionError: '[' nested deeper than the parser goes
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value[:128] if isinstance(value, str) else None
