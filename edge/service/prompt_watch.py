"""Hot reload of the prompt file: edit, save, and the next frame uses the new set.

The file is polled (mtime, size, then content hash) rather than watched with inotify,
which also works on network mounts and with editors that replace the file. A set that
fails validation, exemplar loading or text encoding is rejected with the message naming
the field, and the previous set stays active.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from edge.errors import ConfigError

log = logging.getLogger("edge_inspect.prompts")


class PromptFileWatcher:
    def __init__(self, path: Path, on_change: Callable[[Path], None],
                 on_error: Callable[[str | None], None], interval_s: float = 0.5) -> None:
        self.path = path
        self._on_change = on_change
        self._on_error = on_error
        self._interval = interval_s
        self._stop = threading.Event()
        self._seen = self._signature()
        self._thread = threading.Thread(target=self._run, name="prompt-watch", daemon=True)

    def _signature(self) -> tuple[float, int, str] | None:
        try:
            st = self.path.stat()
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
        return (st.st_mtime, st.st_size, digest)

    def start(self) -> PromptFileWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def acknowledge(self) -> None:
        """The service wrote the file itself: remember it, do not reload it."""
        self._seen = self._signature()

    def check(self) -> None:
        """Look once; the thread calls this every interval, tests may call it directly."""
        sig = self._signature()
        if sig is None or sig == self._seen or (self._seen and sig[2] == self._seen[2]):
            self._seen = sig or self._seen
            return
        self._seen = sig
        try:
            self._on_change(self.path)
            self._on_error(None)
        except ConfigError as err:
            log.error("prompt set rejected, previous set stays active: %s", err)
            self._on_error(str(err))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
