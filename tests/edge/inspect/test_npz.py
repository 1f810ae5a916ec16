"""The caches' one writer: a unique temporary file per write, renamed into place."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edge.inspect.npz import save_npz


def test_concurrent_writers_of_one_entry_never_leave_a_broken_or_stray_file(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "v1.npz"
    errors: list[BaseException] = []

    def write(value: int) -> None:
        try:
            for _ in range(20):
                save_npz(path, {"a": np.full(50_000, value, np.float32)})
        except BaseException as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # a shared temporary name made writers replace each other's half-written files
    with np.load(path) as data:
        assert len(set(data["a"].tolist())) == 1  # whole, one writer's
    assert [p.name for p in path.parent.iterdir()] == ["v1.npz"]


def test_a_cache_file_cut_short_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    from edge.inspect.prompt_state import EmbeddingCache

    cache = EmbeddingCache(tmp_path, "b" * 64)
    cache.put("v1", np.ones((2, 4), np.float32))
    path = next(tmp_path.glob("*.npz"))
    assert path.stat().st_mode & 0o777 == 0o644
    path.write_bytes(path.read_bytes()[:40])  # what a power cut without fsync could leave
    assert cache.get("v1") is None
