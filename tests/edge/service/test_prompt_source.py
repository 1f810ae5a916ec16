"""Who asked for an edit never becomes part of the saved prompt file: names are checked where they arrive
(MQTT ``requested_by``), written as a one-line comment whatever they hold, and the saved text must read
back as the very set that was validated; previews and ``prompts/test`` write nothing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import pytest
import yaml
from pydantic import ValidationError

from edge.bundle import Bundle
from edge.errors import ConfigError
from edge.inspect import goodparts
from edge.model import ZeroShotModel
from edge.mqtt.payloads import CommandRequest, Empty, MemoryArgs, PromptsArgs
from edge.prompts import load_prompt_set, parse_prompt_set
from edge.service import prompts as prompt_manager
from edge.service.prompts import PromptManager, printable
from edge.sim import LineSimulator
from edge.validation import describe
from tests.edge.conftest import PROMPTS

INJECTION = "mes\ndecision: {threshold: 1.0}"


@pytest.mark.parametrize("model", [PromptsArgs, MemoryArgs, Empty])
@pytest.mark.parametrize("name", [INJECTION, "anna\r", "a\tb", "x" * 129, "mes\x85x", "mes\u2028x"])
def test_a_requested_by_outside_the_safe_pattern_is_refused(model: Any, name: str) -> None:
    args = {"requested_by": name, **({"prompt_set": yaml.safe_load(PROMPTS)} if model is PromptsArgs else {}),
            **({"action": "status"} if model is MemoryArgs else {})}
    request = CommandRequest.model_validate({"args": args})  # the envelope passes; the verb's args do not
    with pytest.raises(ValidationError) as err:
        model.model_validate(request.args)
    line = describe(err.value)
    assert "'requested_by'" in line and "control character" in line and "\n" not in line


@pytest.mark.parametrize("name", ["mes-1", "anna@plant.example", "ops:line_2", "A.B", "Anna K", "MES line 3",
                                  "Zoë Ñ", "山田\u3000太郎", "a\u00a0b", ""])
def test_ordinary_names_pass(name: str) -> None:
    assert PromptsArgs.model_validate({"prompt_set": {}, "requested_by": name}).requested_by == name
    assert Empty.model_validate({}).requested_by is None


def _manager(tmp_path: Path) -> PromptManager:
    """The persist path needs no encoder: a stand-in that only has the bundle hash the caches are keyed by."""
    path = tmp_path / "prompts.yaml"
    path.write_text(PROMPTS)
    model = SimpleNamespace(bundle=SimpleNamespace(hash="0" * 64))
    return PromptManager(model, path, tmp_path / "state")  # type: ignore[arg-type]


def test_a_source_with_a_newline_cannot_add_keys_to_the_saved_file(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    prompts = parse_prompt_set({**yaml.safe_load(PROMPTS), "name": "edited"}, "test")
    manager._persist(prompts, f"mqtt:{INJECTION}\x85ok: 1\u2028more: 2")
    text = manager.path.read_text()
    assert load_prompt_set(manager.path).version == prompts.version  # the same set, no key added
    assert "threshold: 1.0" not in yaml.safe_dump(yaml.safe_load(text))
    assert text.splitlines()[0].startswith("# activated by mqtt:mes?decision")
    assert printable("a\nb\tc") == "a?b?c"


def test_a_saved_text_that_reads_back_otherwise_is_refused_and_nothing_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = _manager(tmp_path)
    before = manager.path.read_bytes()
    prompts = parse_prompt_set({**yaml.safe_load(PROMPTS), "name": "edited"}, "test")
    real = yaml.safe_dump
    monkeypatch.setattr(prompt_manager.yaml, "safe_dump",  # as if the dump let a key in
                        lambda data, **kw: real(data, **kw) + "decision: {threshold: 1.0}\n")
    with pytest.raises(ConfigError, match=f"prompt set {prompts.version} not activated: its saved form .* reads back"):
        manager._persist(prompts, "ui:anna")
    assert manager.path.read_bytes() == before
    assert not (tmp_path / "state" / "prompts" / "active.yaml").exists()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_candidate_writes_no_cache_but_an_activated_set_does(tiny_bundles: dict[str, Path], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good"
    good.mkdir()
    line = LineSimulator(seed=5000, product="steel-plate", defect_rate=0.0)
    for i in range(4):
        cv2.imwrite(str(good / f"good{i}.png"), cv2.resize(line.frame(i).image, (96, 72)))
    data = {**yaml.safe_load(PROMPTS), "good": "good", "memory": {"augment": 0}}
    (tmp_path / "prompts.yaml").write_text(yaml.safe_dump(data))
    state = tmp_path / "state"
    with ZeroShotModel(Bundle.open(tiny_bundles["clip"])) as model:
        manager = PromptManager(model, tmp_path / "prompts.yaml", state)
        manager.start()
        before = _files(state)
        assert any(f.startswith("embeddings/") for f in before) and any(f.startswith("memories/") for f in before)
        new_words = {**data, "categories": [*data["categories"][:2], {"name": "hole", "prompts": ["pierced"]}]}
        new_memory = {**data, "memory": {"augment": 1}}
        for candidate in (new_words, new_memory):
            assert manager.candidate(candidate, "preview").version != manager.state.version
            assert _files(state) == before  # nothing written, though it was encoded and built
        built: list[str] = []
        real_build = goodparts.build_view_memory
        monkeypatch.setattr(goodparts, "build_view_memory", lambda *a, **k: built.append(a[5]) or real_build(*a, **k))
        manager.apply(new_memory, "ui:anna")
        assert built == []  # the previewed memory, held in process: activating it does not build it again
        after = _files(state)
        assert len([f for f in after if f.startswith("memories/")]) > len([f for f in before
                                                                          if f.startswith("memories/")])
