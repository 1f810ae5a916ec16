"""The prompt manager: the active set, its edits, the file on disk and the history, under one lock.

Every change (a saved file, an MQTT ``prompts/set``, the operator page, a roll-back, a
reload) goes through :meth:`PromptManager.apply`, one at a time:

1. validate and encode (text embeddings, exemplars): a failure names the field and changes
   nothing;
2. make it durable: the set is written where operator edits live (below) and recorded in the
   history; a failure (read-only or full disk) is a one-line error and changes nothing;
3. swap the active reference (a frame is scored by one whole set, old or new) and tell the
   observers once (the MQTT bridge republishes ``prompts/active``).

Where edits live: in the prompt file when it is writable (the demo, a workstation), else in
``STATE_DIR/prompts/active.yaml`` (systemd keeps ``/etc/edge-inspect`` read-only and gives the
service a writable state directory). That override is used at start only while the prompt
file is unchanged since the edit; an administrator's later change to the file wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from edge.config import CameraConfig
from edge.errors import ConfigError, EdgeInspectError, PublishError
from edge.inspect.goodparts import MemoryCache, view_key
from edge.inspect.prompt_state import EmbeddingCache, PromptState, build_state
from edge.model import ZeroShotModel
from edge.prompts import PromptSet, load_prompt_set, parse_prompt_set
from edge.service.prompt_history import HistoryEntry, PromptHistory

log = logging.getLogger("edge_inspect.prompts")
audit = logging.getLogger("edge_inspect.audit")


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def write_atomically(path: Path, text: str) -> None:
    """Temp file in the same folder (unique name), fsync, rename: a reader sees the old or the new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def printable(source: str) -> str:
    """``source`` on one line, as written into the saved file's comment and the audit log: line breaks (YAML
    also breaks lines at NEL, U+2028 and U+2029) and other control characters become '?', so that a name
    cannot start a new YAML key or forge a log line, whoever passed it in."""
    return "".join(c if c.isprintable() else "?" for c in source)


def saved_text(prompts: PromptSet, source: str, where: Path) -> str:
    """The file text of an activated set, checked to read back as that very set: the comment cannot add keys
    (a station that restarts reads this file, and nothing in it may differ from what was validated)."""
    text = f"# activated by {printable(source)}\n" + yaml.safe_dump(
        prompts.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    try:
        again: str | None = parse_prompt_set(yaml.safe_load(text), str(where)).version
    except (yaml.YAMLError, EdgeInspectError):
        again = None
    if again != prompts.version:
        raise ConfigError(f"prompt set {prompts.version} not activated: its saved form for {where} reads back as "
                          f"{again or 'an invalid set'}; nothing was written, the previous set stays active (report "
                          "this as a bug, with the set).")
    return text


class PromptManager:
    """Owns the active :class:`PromptState`; thread-safe; see the module docstring."""

    def __init__(self, model: ZeroShotModel, path: Path, state_dir: Path,
                 on_change: Callable[[PromptState], None] | None = None, views: Sequence[CameraConfig] = ()) -> None:
        self.model = model
        self.path = path
        self.views: list[CameraConfig | None] = [*views] or [None]  # each camera's ROI and tiles: a memory per view
        # a candidate's memories (one per distinct view) stay in process until it is activated or replaced: two
        # candidates' worth, as much memory again as the active set's
        self._memories = MemoryCache(state_dir / "memories", model.bundle.hash,
                                     recent=2 * len({view_key(v) for v in self.views}))
        self.history = PromptHistory(state_dir / "prompt-sets")
        self._cache = EmbeddingCache(state_dir / "embeddings", model.bundle.hash)
        # where the page's uploads and taught good parts go: reference folders may live there
        self.roots = (state_dir / "exemplars", state_dir / "good")
        self._override = state_dir / "prompts" / "active.yaml"
        self._override_meta = state_dir / "prompts" / "active.json"
        self._on_change = on_change or (lambda state: None)
        self._lock = threading.RLock()
        self._seen: str | None = None  # sha256 of the prompt file as last read or written by us
        self._state: PromptState | None = None

    # ---- reading ----
    @property
    def state(self) -> PromptState:
        if self._state is None:
            raise RuntimeError("PromptManager.start() was not called")
        return self._state

    @property
    def base(self) -> Path:
        """Relative exemplar and good-part folders are resolved against the prompt file's folder."""
        return self.path.resolve().parent

    def entries(self, limit: int = 100) -> list[HistoryEntry]:
        return self.history.entries(limit)

    def candidate(self, data: object, source: str) -> PromptState:
        """Validate and encode a set without activating it (previews, prompts/test): nothing is written."""
        return build_state(self.model, self._parse(data, source), self.base, self._cache, source, self.roots,
                           self.views, self._memories, keep=False)

    # ---- start-up ----
    def start(self) -> PromptState:
        """The set to run with: the operator's override if the file has not changed since, else the file."""
        with self._lock:
            file_hash = _sha256(self.path)
            prompts, source = load_prompt_set(self.path), str(self.path)
            meta = self._read_meta()
            if meta and meta.get("base_sha256") == file_hash and self._override.is_file():
                prompts, source = load_prompt_set(self._override), str(self._override)
                log.info("prompt set: the operator's last edit (%s), the prompt file %s being unchanged since",
                         self._override, self.path)
            elif meta:
                log.warning("prompt file %s changed since the last operator edit; it wins over %s",
                            self.path, self._override)
            state = build_state(self.model, prompts, self.base, self._cache, source, self.roots,
                           self.views, self._memories)
            self.history.record(prompts, source)
            self._seen = file_hash
            self._state = state
            return state

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self._override_meta.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    # ---- changing ----
    @staticmethod
    def _parse(data: object, source: str) -> PromptSet:
        if isinstance(data, dict):  # prompts/active carries version and source: accepted, ignored
            data = {k: v for k, v in data.items() if k not in ("version", "source")}
        return parse_prompt_set(data, source)

    def apply(self, data: object | PromptSet, source: str, persist: bool = True) -> PromptState:
        """Validate, encode, make durable, activate, notify; raises ConfigError/PublishError and
        changes nothing when any step before activation fails."""
        source = printable(source)  # it reaches the history, the audit log and prompts/active
        prompts = data if isinstance(data, PromptSet) else self._parse(data, source)
        with self._lock:
            state = build_state(self.model, prompts, self.base, self._cache, source, self.roots,
                           self.views, self._memories)
            if persist:
                self._persist(prompts, source)
            try:
                self.history.record(prompts, source)
            except OSError as err:
                raise PublishError(f"prompt history {self.history.folder}: cannot record the set ({err.strerror}); "
                                   "free space in the state dir; the previous set stays active.") from err
            self._state = state
            log.info("prompt set active: %s %s (from %s)", prompts.name, state.version, source)
            audit.info("prompt set %s %s activated by %s", prompts.name, state.version, source)
            # under the lock: observers (prompts/active, the status) hear of activations in the order they
            # happened. They only queue messages; the MQTT bridge may first wait for the link's retained_lock
            # (a reconnect re-sending the active set). Lock order: this lock, then retained_lock, never the
            # reverse: whatever holds retained_lock reads the active set without this lock (the state property)
            self._on_change(state)
        return state

    def _persist(self, prompts: PromptSet, source: str) -> None:
        text = saved_text(prompts, source, self.path)
        try:
            write_atomically(self.path, text)
            self._seen = _sha256(self.path)
            self._override_meta.unlink(missing_ok=True)  # the file holds the edit itself
            return
        except OSError as err:
            file_error = err
        try:  # a read-only prompt file (systemd): the edit lives in the state dir
            self._override.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self._override, text)
            write_atomically(self._override_meta, json.dumps({"base_sha256": _sha256(self.path),
                                                              "version": prompts.version, "source": source}))
            log.info("prompt file %s is not writable (%s): the edit lives in %s", self.path,
                     file_error.strerror, self._override)
        except OSError as err:
            raise PublishError(f"prompt set not activated: neither {self.path} ({file_error.strerror}) nor "
                               f"{self._override} ({err.strerror}) can be written; free space or fix the "
                               "permissions of the state dir.") from err

    def rollback(self, version: str, source: str) -> PromptState:
        """Activate an earlier set from the history, through the same path as any edit."""
        return self.apply(self.history.load(version), f"rollback to {version} by {source}")

    def reload(self, source: str) -> PromptState:
        """Read the prompt file again (cmd/reload); the file wins over an override."""
        with self._lock:
            prompts = load_prompt_set(self.path)
            state = self.apply(prompts, f"{self.path} (reload by {source})", persist=False)
            self._seen = _sha256(self.path)
            self._override_meta.unlink(missing_ok=True)
            return state

    def reload_if_changed(self) -> PromptState | None:
        """The file watcher's check: apply the file when its content changed since we last read or
        wrote it; ConfigError (invalid set) propagates with the active set unchanged."""
        with self._lock:
            current = _sha256(self.path)
            if current is None or current == self._seen:
                return None
            self._seen = current  # a rejected file is reported once, not on every poll
            prompts = load_prompt_set(self.path)
            state = self.apply(prompts, str(self.path), persist=False)
            self._override_meta.unlink(missing_ok=True)
            return state
