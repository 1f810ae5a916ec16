"""Ties the service to MQTT: outbox writes, status, retained prompts, and commands.

Commands arrive on ``.../cmd/{verb}``; each is size-limited, parsed and validated with
pydantic, executed on a worker thread (never in a paho callback), and answered on the
MQTT 5 response topic (or ``.../cmd/{verb}/response``) with the correlation data and the
request id echoed. Changing prompts over MQTT goes through the same code path as a file
edit, is written to the prompt file (so a restart keeps it), and is audit-logged.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from edge.config import MqttConfig
from edge.errors import EdgeInspectError
from edge.mqtt.link import MqttLink
from edge.mqtt.outbox import Outbox
from edge.mqtt.payloads import (
    MAX_COMMAND_BYTES,
    CommandRequest,
    CommandResponse,
    Empty,
    PromptsArgs,
    ReplayArgs,
    SnapshotArgs,
    StatusPayload,
    TriggerArgs,
)
from edge.mqtt.topics import Topics
from edge.results import InspectionResult, iso_ms
from edge.validation import describe

if TYPE_CHECKING:
    from edge.service.service import InspectionService

log = logging.getLogger("edge_inspect.mqtt")
audit = logging.getLogger("edge_inspect.audit")


def _now() -> str:
    return iso_ms(datetime.now(timezone.utc))


class CommandError(EdgeInspectError):
    """A command that cannot be carried out; its message goes back in the response."""


class MqttBridge:
    def __init__(self, service: InspectionService, cfg: MqttConfig) -> None:
        self.service = service
        self.cfg = cfg
        self.topics = Topics(cfg.prefix, service.config.station)
        ob = cfg.outbox
        self.outbox = Outbox(service.config.state_dir / "outbox.sqlite", ob.max_rows, ob.policy,
                             ob.keep_delivered_s, ob.synchronous)
        self.link = MqttLink(cfg, self.topics, self.outbox, self.status_json, self._retained,
                             self._enqueue_command, lambda reason: service.status.problem("mqtt", reason))
        self._commands: queue.Queue[Any] = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._command_loop, name="mqtt-commands", daemon=True)
        self.handlers: dict[str, tuple[type[BaseModel], Callable[[Any], dict[str, Any]]]] = {
            "prompts/set": (PromptsArgs, self._prompts_set), "prompts/test": (PromptsArgs, self._prompts_test),
            "trigger": (TriggerArgs, self._trigger), "snapshot": (SnapshotArgs, self._snapshot),
            "replay": (ReplayArgs, self._replay), "reload": (Empty, self._reload),
        }

    def start(self) -> MqttBridge:
        self._worker.start()
        self.link.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._worker.join(5)
        self.link.stop()
        self.outbox.close()

    # ---- results ----
    def store(self, results: list[InspectionResult], stop: threading.Event | None = None) -> None:
        """Durable before anything is published (called by the service's publisher thread)."""
        self.outbox.append([(r.seq, r.id, r.camera, r.to_json()) for r in results], stop)
        self.link.wake()
        stats = self.outbox.stats()
        full = stats["backlog"] >= 0.9 * stats["max_rows"]  # type: ignore[operator]
        self.service.status.problem("outbox", f"outbox {stats['backlog']}/{stats['max_rows']} results "
                                    f"undelivered (policy {self.outbox.policy})" if full else None)

    # ---- status and retained topics ----
    def status_json(self, state: str) -> str:
        snap = self.service.status.snapshot()
        prompt = snap.get("prompt_set")
        cams = {n: c.state.value for n, c in self.service.cameras.items()}
        payload = StatusPayload(
            state="offline" if state == "offline" else snap["state"],
            reasons=[] if state == "offline" else snap["reasons"], ts=_now(),
            station=self.service.config.station.path, version=snap.get("version"), model=snap.get("model"),
            prompt_set=prompt, outbox=None if state == "offline" else self.outbox.stats(), cameras=cams)
        return payload.model_dump_json(by_alias=True)

    def _retained(self) -> list[tuple[str, str]]:
        state = self.service.prompt_state
        body = {"version": state.version, "source": state.source, **state.prompts.model_dump(mode="json")}
        return [(self.topics.prompts_active, json.dumps(body))]

    def publish_prompts(self) -> None:
        for topic, payload in self._retained():
            self.link.publish_now(topic, payload, retain=True)

    # ---- commands ----
    def _enqueue_command(self, message: Any) -> None:
        if self.topics.verb_of(message.topic) is None:
            return
        try:
            self._commands.put_nowait(message)
        except queue.Full:
            log.warning("command dropped: %d commands already waiting", self._commands.qsize())

    def _command_loop(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._commands.get(timeout=0.2)
            except queue.Empty:
                continue
            self._answer(message, *self._execute(message))

    def _execute(self, message: Any) -> tuple[str, str | None, dict[str, Any] | None, str | None]:
        """(verb, request id, result, error)."""
        verb = self.topics.verb_of(message.topic) or "?"
        if len(message.payload) > MAX_COMMAND_BYTES:
            return verb, None, None, f"payload of {len(message.payload)} bytes exceeds {MAX_COMMAND_BYTES}"
        if verb not in self.handlers:
            return verb, None, None, f"unknown command '{verb}'; known: {', '.join(self.handlers)}"
        try:
            request = CommandRequest.model_validate_json(message.payload or b"{}")
        except ValidationError as err:
            return verb, None, None, f"invalid command: {describe(err)}"
        model, handler = self.handlers[verb]
        try:
            args = model.model_validate(request.args)
            return verb, request.id, handler(args), None
        except ValidationError as err:
            return verb, request.id, None, f"invalid args: {describe(err)}"
        except EdgeInspectError as err:
            return verb, request.id, None, str(err)

    def _answer(self, message: Any, verb: str, request_id: str | None, result: dict[str, Any] | None,
                error: str | None) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        incoming = getattr(message, "properties", None)
        topic = getattr(incoming, "ResponseTopic", None) or self.topics.response(verb)
        props = None
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = "application/json"
            correlation = getattr(incoming, "CorrelationData", None)
            if correlation is not None:
                props.CorrelationData = correlation
        body = CommandResponse(verb=verb, id=request_id, ok=error is None, error=error, result=result, ts=_now())
        if error:
            log.warning("command %s rejected: %s", verb, error)
        self.link.publish_now(topic, body.model_dump_json(by_alias=True), properties=props)

    # ---- the verbs ----
    def _prompts_set(self, args: PromptsArgs) -> dict[str, Any]:
        state = self.service.apply_prompt_set(args.prompt_set, source=f"mqtt:{args.requested_by or 'unknown'}")
        audit.info("prompt set %s %s activated over MQTT by %s", state.prompts.name, state.version,
                   args.requested_by or "unknown")
        self.publish_prompts()
        return {"name": state.prompts.name, "version": state.version}

    def _prompts_test(self, args: PromptsArgs) -> dict[str, Any]:
        return self.service.preview(args.prompt_set)

    def _trigger(self, args: TriggerArgs) -> dict[str, Any]:
        self.service.trigger(args.camera, args.part_id)
        return {"camera": args.camera, "part_id": args.part_id}

    def _snapshot(self, args: SnapshotArgs) -> dict[str, Any]:
        return {"snapshot": self.service.snapshot(args.camera)}

    def _replay(self, args: ReplayArgs) -> dict[str, Any]:
        rows = self.outbox.delivered_since(args.from_seq, args.to_seq, args.limit)
        for row in rows:
            data = json.loads(row.payload)
            data["replayed"] = True
            self.link.publish_now(self.topics.result(row.camera), json.dumps(data, separators=(",", ":")))
        first = rows[0].seq if rows else None
        return {"replayed": len(rows), "first_seq": first, "last_seq": rows[-1].seq if rows else None}

    def _reload(self, args: Empty) -> dict[str, Any]:
        state = self.service.reload_prompts()
        self.publish_prompts()
        return {"name": state.prompts.name, "version": state.version}
