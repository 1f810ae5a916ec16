"""Every prompt set that was ever active, kept so that any of them can be restored.

Operators change the words while the line runs; the one they liked yesterday must never be
lost. Each activation stores the set under its version (the hash of its content, so the
same words are stored once) and appends who, when and from where to ``history.jsonl``.
Both the MQTT commands and the operator page activate through the service, so both land here.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from edge.errors import ConfigError
from edge.prompts import PromptSet, parse_prompt_set


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    name: str
    ts: str
    source: str  # file path, "mqtt:<client>", "ui:<operator>", "rollback:..."


class PromptHistory:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    @property
    def _log(self) -> Path:
        return self.folder / "history.jsonl"

    def record(self, prompts: PromptSet, source: str) -> HistoryEntry:
        """Store the set (once per version) and append the activation."""
        entry = HistoryEntry(version=prompts.version, name=prompts.name, source=source,
                             ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            stored = self.folder / f"{prompts.version}.yaml"
            if not stored.exists():
                tmp = stored.with_suffix(".tmp")
                tmp.write_text(yaml.safe_dump(prompts.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
                tmp.replace(stored)
            with self._log.open("a", encoding="utf-8") as f:
                f.write(entry.model_dump_json() + "\n")
        return entry

    def entries(self, limit: int = 200) -> list[HistoryEntry]:
        """Newest first."""
        try:
            lines = self._log.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in reversed(lines[-limit:]):
            try:
                out.append(HistoryEntry.model_validate_json(line))
            except ValueError:
                continue  # a torn last line after a power cut is skipped, not fatal
        return out

    def load(self, version: str) -> PromptSet:
        if not version.isalnum():
            raise ConfigError(f"prompt set version {version!r}: not a version; pick one from the history.")
        path = self.folder / f"{version}.yaml"
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"prompt set version {version}: not in the history ({err.strerror}); pick one "
                              "from the history.") from err
        return parse_prompt_set(data, str(path))

    def as_json(self, limit: int = 200) -> str:
        return json.dumps([e.model_dump() for e in self.entries(limit)])
