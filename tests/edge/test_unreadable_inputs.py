"""Files that are not what they claim: a non-UTF-8 bundle manifest or config, and a boxes.jsonl whose box is
not 4 whole numbers, each refused in one line naming the file (and line) before any work."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import read_manifest
from edge.config import load_config
from edge.errors import BundleError, ConfigError
from edge.evaluate import labelled_folder
from tests.helpers import one_line_error, run_cli

NOT_UTF8 = b"family: clip\n# caf\xe9\n"


def test_a_non_utf8_manifest_is_a_bundle_error(tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_bytes(b'{"family": "clip", "x": "\xff"}')
    with pytest.raises(BundleError, match=r"bundle.json: not UTF-8 text \(byte \d+\); .*re-export the bundle"):
        read_manifest(tmp_path)


def test_a_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "inspect.yaml"
    cfg.write_bytes(NOT_UTF8)
    with pytest.raises(ConfigError, match=r"inspect.yaml: not UTF-8 text \(byte 18\); save the config as UTF-8"):
        load_config(cfg)
    line = one_line_error(run_cli("config", "check", str(cfg), expect=2))
    assert "inspect.yaml: not UTF-8 text" in line


def _folder(tmp_path: Path, boxes: list[str] | bytes) -> Path:
    for category in ("good", "hole"):
        (tmp_path / category).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / category / "a.png"), np.zeros((8, 8, 3), np.uint8))
    index = tmp_path / "boxes.jsonl"
    index.write_bytes(boxes if isinstance(boxes, bytes) else "\n".join(boxes).encode())
    return tmp_path


@pytest.mark.parametrize("box", [[1, 2, 3], [1, 2, 3, 4, 5], [1, 2, -3, 4], [1.5, 2, 3, 4], "1234", [1, 2, True, 4],
                                 None, {"x": 1}])
def test_a_box_that_is_not_4_whole_numbers_names_the_file_and_line(tmp_path: Path, box: object) -> None:
    good = json.dumps({"image": "hole/a.png", "box": [1, 2, 3, 4]})
    folder = _folder(tmp_path, [good, "", json.dumps({"image": "hole/a.png", "box": box})])
    with pytest.raises(ConfigError, match=r"boxes.jsonl:3: expected .*x, y, w, h whole numbers >= 0.*fix or remove"):
        labelled_folder(folder, ["good", "hole"])


@pytest.mark.parametrize("line", ["not json", "[1, 2]", '{"box": [1, 2, 3, 4]}', '{"image": 3, "box": [1, 2, 3, 4]}'])
def test_a_line_that_is_not_a_box_record_is_refused(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError, match=r"boxes.jsonl:1: .*expected"):
        labelled_folder(_folder(tmp_path, [line]), ["good", "hole"])


def test_boxes_are_kept_and_a_non_utf8_index_is_one_line(tmp_path: Path) -> None:
    samples = labelled_folder(_folder(tmp_path / "a", [json.dumps({"image": "hole/a.png", "box": [0, 1, 2, 3]})]),
                              ["good", "hole"])
    assert {s.name: s.box for s in samples} == {"good/a.png": None, "hole/a.png": (0, 1, 2, 3)}
    with pytest.raises(ConfigError, match=r"boxes.jsonl: not UTF-8 text"):
        labelled_folder(_folder(tmp_path / "b", NOT_UTF8), ["good", "hole"])
