"""The topic tree of DESIGN.md's MQTT contract, built in one place."""

from __future__ import annotations

from dataclasses import dataclass

from edge.config import StationConfig

RESERVED = ("status", "prompts", "cmd")  # camera names that would collide with station topics
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

    def verb_of(self, topic: str) -> str | None:
        """The verb of a command topic, or None for anything else (responses included)."""
        head = f"{self.root}/cmd/"
        if not topic.startswith(head) or topic.endswith("/response"):
            return None
        return topic[len(head):]
