"""Prompt sets: the DESIGN.md minimal set, versions, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.prompts import load_prompt_set

MINIMAL = """\
name: brackets
templates: ["a photo of a {} metal part"]
categories:
  - {name: good, ok: true, prompts: ["flawless", "clean"]}
  - {name: scratch, prompts: ["scratched", "with a long thin scratch"], threshold: 0.5}
  - {name: hole, prompts: ["with a hole"]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "set.yaml"
    path.write_text(text)
    return path


def test_design_minimal_set_is_valid(tmp_path: Path) -> None:
    ps = load_prompt_set(_write(tmp_path, MINIMAL))
    assert [c.name for c in ps.categories] == ["good", "scratch", "hole"]
    assert ps.texts(ps.categories[1]) == ["a photo of a scratched metal part",
                                          "a photo of a with a long thin scratch metal part"]
    assert ps.threshold(ps.categories[2]) == 0.5


def test_version_is_content_not_formatting(tmp_path: Path) -> None:
    a = load_prompt_set(_write(tmp_path, MINIMAL)).version
    b = load_prompt_set(_write(tmp_path, "# comment\n" + MINIMAL.replace(": ", ":  "))).version
    c = load_prompt_set(_write(tmp_path, MINIMAL.replace("with a hole", "with a round hole"))).version
    assert a == b != c


@pytest.mark.parametrize("text, field", [
    (MINIMAL.replace("prompts: [\"with a hole\"]", "promts: [\"with a hole\"]"), "categories.2.promts"),
    (MINIMAL.replace("threshold: 0.5", "threshold: 1.5"), "categories.1.threshold"),
    (MINIMAL.replace("{name: good, ok: true,", "{name: good,"), "at least one category needs 'ok: true'"),
    (MINIMAL.replace("a photo of a {} metal part", "a photo of a metal part"), "templates"),
    (MINIMAL + "decision: {thresholds: {scratchy: 0.4}}\n", "unknown category scratchy"),
    (MINIMAL.replace("name: hole", "name: scratch"), "repeated: scratch"),
    (MINIMAL + "decision: {smoothing: {n: 3, m: 2}}\n", "must not exceed"),
    ("name: x\ncategories: [\n", "not valid YAML at line"),
])
def test_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("{", r"\{").replace("(", r"\(")) as err:
        load_prompt_set(_write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_thresholds_map_and_own_threshold(tmp_path: Path) -> None:
    ps = load_prompt_set(_write(tmp_path, MINIMAL + "decision: {threshold: 0.6, thresholds: {hole: 0.3}}\n"))
    by = {c.name: ps.threshold(c) for c in ps.categories}
    assert by["hole"] == 0.3 and by["scratch"] == 0.5
