"""One way to write a cache file: ``.npz`` under a unique temporary name, then renamed into place.

The embedding and memory caches are written by whichever thread builds a state (the line, a preview, the
page, MQTT); two of them writing the same entry at once must not share a temporary file, and a reader
must never see half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())  # a power cut leaves the old file or the new one, never half of one
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a cache written by another user (root) from the service
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
