"""Teaching by result ids: each frame counts once, and a selection is bounded (MQTT and the page alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.service.teach import MAX_TEACH, Teacher, unique


def _teacher(tmp_path: Path, count: int) -> Teacher:
    frames = {f"id{i}": np.full((8, 8, 3), i, np.uint8) for i in range(count)}
    return Teacher(tmp_path / "good", {}, frames.get)


def test_repeated_ids_are_taught_once_in_their_first_order(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path, 3)
    frames = teacher.recent(["id2", "id0", "id2", "id0", "id2", "id1"])
    assert [int(f[0, 0, 0]) for f in frames] == [2, 0, 1]
    stage, files = teacher.stage(frames)
    assert len(files) == 3 and len(list((tmp_path / "good" / stage).glob("*.png"))) == 3
    assert unique(["b", "a", "b"]) == ["b", "a"]


def test_a_selection_over_the_limit_is_refused_but_repeats_do_not_count(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path, MAX_TEACH + 1)
    with pytest.raises(ConfigError, match=f"{MAX_TEACH + 1} results selected; pick at most {MAX_TEACH}"):
        teacher.recent([f"id{i}" for i in range(MAX_TEACH + 1)])
    assert len(teacher.recent(["id1"] * 1000 + [f"id{i}" for i in range(MAX_TEACH)])) == MAX_TEACH
