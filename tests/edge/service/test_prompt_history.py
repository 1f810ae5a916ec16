"""Every activated prompt set is kept and can be restored, whoever activated it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.app import build_station
from edge.config import ServiceConfig
from edge.errors import ConfigError
from edge.prompts import load_prompt_set
from tests.edge.conftest import PROMPTS


def test_activations_are_recorded_and_any_version_rolls_back(make_config: Callable[..., ServiceConfig],
                                                              prompts_file: Path) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=160x120", "fps": 10}])
    with build_station(cfg) as svc:
        first = svc.prompt_state.version
        edited = load_prompt_set(prompts_file).model_dump(mode="json")
        edited["categories"][1]["prompts"] = ["with a long scratch"]
        second = svc.station.apply_prompts(edited, "ui:anna").version
        entries = svc.prompts.history.entries()
        assert [e.version for e in entries[:2]] == [second, first] and entries[0].source == "ui:anna"
        back = svc.station.rollback_prompts(first, "ui:ben")
        assert back.version == first == svc.prompt_state.version
        assert svc.prompts.history.entries()[0].source == f"rollback to {first} by ui:ben"
        assert load_prompt_set(prompts_file).version == first  # the file follows, so a restart keeps it
        with pytest.raises(ConfigError, match="not in the history"):
            svc.station.rollback_prompts("0123456789abcdef", "ui:ben")
        with pytest.raises(ConfigError, match="not a version"):
            svc.station.rollback_prompts("../../etc/passwd", "ui:ben")


def test_a_torn_history_line_is_skipped(tmp_path: Path) -> None:
    from edge.service.prompt_history import PromptHistory

    history = PromptHistory(tmp_path)
    (tmp_path / "p.yaml").write_text(PROMPTS)
    prompts = load_prompt_set(tmp_path / "p.yaml")
    history.record(prompts, "file")
    with (tmp_path / "history.jsonl").open("a") as f:
        f.write('{"version": "abc", "na')  # power cut mid-write
    assert [e.version for e in history.entries()] == [prompts.version]
    assert history.load(prompts.version) == prompts

