"""The topic tree of DESIGN.md's MQTT contract, built in one place."""

from __future__ import annotations

from dataclasses import dataclass

from edge.config import StationConfig

VERBS = ("prompts/set", "prompts/test", "trigger", "snapshot", "replay", "reload", "memory")


@dataclass(frozen=True)
class Topics:
    prefix: str
    station: StationConfig

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.station.site}/{self.station.line}/{self.station.station}"

    def result(self, camera: str) -> str:
        return f"{self.root}/{camera}/result"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def prompts_active(self) -> str:
        return f"{self.root}/prompts/active"

    @property
    def commands(self) -> str:
        return f"{self.root}/cmd/#"

    def command(self, verb: str) -> str:
        return f"{self.root}/cmd/{verb}"

    def response(self, verb: str) -> str:
        return f"{self.root}/cmd/{verb}/response"

    def may_answer_on(self, topic: str) -> bool:
        """A command's MQTT 5 response topic the station will publish on: no wildcard (a protocol error that would
        drop the connection), and within the station's own tree only ``reply/...`` or a command's response topic,
        so that a command cannot make the station publish onto its result, status or prompts topics (the
        shipped ACL lets the station write those). Topics outside its tree are left to the broker's ACL."""
        if not topic or "+" in topic or "#" in topic:
            return False
        if not topic.startswith(f"{self.root}/"):
            return True
        rest = topic[len(self.root) + 1:]
        return rest.startswith("reply/") or (rest.startswith("cmd/") and rest.endswith("/response"))

    def verb_of(self, topic: str) -> str | None:
        """The verb of a command topic, or None for anything else (responses included)."""
        head = f"{self.root}/cmd/"
        if not topic.startswith(head) or topic.endswith("/response"):
            return None
        return topic[len(head):]
