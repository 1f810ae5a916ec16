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
