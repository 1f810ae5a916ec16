"""Operator edits are never lost and never half-applied: read-only prompt files, races, bad files."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from edge.app import build_station
from edge.config import ServiceConfig
from edge.errors import ConfigError, PublishError
from edge.prompts import MAX_CATEGORIES, PromptSet, load_prompt_set
from edge.service import prompts as prompt_manager
from tests.edge.conftest import PROMPTS

CAM = [{"name": "cam1", "source": "sim://line?seed=1&size=160x120", "fps": 10}]


def _edited(word: str) -> dict:
    data = yaml.safe_load(PROMPTS)
    data["categories"][1]["prompts"] = [word]
    return data


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make writes to one path fail as on a read-only mount (systemd's ReadOnlyPaths=). The tests run as
    root, which file modes do not stop, so the failure is injected at the one write function."""
    real = prompt_manager.write_atomically

    def make(path: Path) -> None:
        def write(target: Path, text: str) -> None:
            if target.resolve() == path.resolve():
                raise OSError(errno.EROFS, "Read-only file system", str(target))
            real(target, text)

        monkeypatch.setattr(prompt_manager, "write_atomically", write)
    return make


def test_a_read_only_prompt_file_keeps_edits_in_the_state_dir(make_config: Callable[..., ServiceConfig],
                                                             prompts_file: Path,
                                                             read_only: Callable[[Path], None]) -> None:
    read_only(prompts_file)
    cfg = make_config(CAM)
    with build_station(cfg) as svc:
        edited = svc.station.apply_prompts(_edited("with a deep scratch"), "ui:anna")
        assert svc.prompt_state.version == edited.version
    assert load_prompt_set(cfg.state_dir / "prompts" / "active.yaml").version == edited.version
    assert load_prompt_set(prompts_file).version != edited.version  # untouched
    with build_station(cfg) as svc:  # a restart keeps the operator's edit
        assert svc.prompt_state.version == edited.version
    prompts_file.write_text(PROMPTS.replace("with a hole", "with a round hole"))  # then the admin edits the file
    with build_station(cfg) as svc:
        assert svc.prompt_state.version == load_prompt_set(prompts_file).version  # and the file wins


def test_an_edit_that_cannot_be_stored_is_not_activated(make_config: Callable[..., ServiceConfig],
                                                       prompts_file: Path, read_only: Callable[[Path], None]) -> None:
    cfg = make_config(CAM)
    with build_station(cfg) as svc:
        before = svc.prompt_state.version
        read_only(prompts_file)
        read_only_state = cfg.state_dir / "prompts" / "active.yaml"
        real = prompt_manager.write_atomically

        def nowhere(target: Path, text: str) -> None:
            if target.resolve() == read_only_state.resolve():
                raise OSError(errno.ENOSPC, "No space left on device", str(target))
            real(target, text)

        prompt_manager.write_atomically = nowhere  # type: ignore[assignment]  # undone by monkeypatch
        with pytest.raises(PublishError, match="prompt set not activated: neither .* nor .* can be written"):
            svc.station.apply_prompts(_edited("with a deep scratch"), "mqtt:mes")
        assert svc.prompt_state.version == before  # nothing half-done
        assert svc.prompts.history.entries()[0].version == before


def test_a_file_save_racing_a_remote_edit_ends_consistent(make_config: Callable[..., ServiceConfig],
                                                         prompts_file: Path) -> None:
    """The watcher's reload and an MQTT prompts/set run one at a time: whichever comes last is both active
    and in the file, never the reply saying one set while frames are scored with another."""
    with build_station(make_config(CAM)) as svc:
        for i in range(6):
            prompts_file.write_text(PROMPTS.replace("with a hole", f"with a hole number {i}"))
            watcher = threading.Thread(target=svc.station.check_prompt_file)
            watcher.start()
            remote = svc.station.apply_prompts(_edited(f"remote edit {i}"), "mqtt:mes")
            watcher.join()
            active = svc.prompt_state.version
            assert load_prompt_set(prompts_file).version == active
            assert active in (remote.version, load_prompt_set(prompts_file).version)


@pytest.mark.parametrize("bad, field", [
    (PROMPTS.replace('"a photo of a {} part"', '"a photo of {x} {}"'), "templates"),
    (None, "not UTF-8"),
])
def test_the_watcher_reports_a_bad_file_and_keeps_watching(make_config: Callable[..., ServiceConfig],
                                                          prompts_file: Path, bad: str | None, field: str) -> None:
    with build_station(make_config(CAM)) as svc:
        before = svc.prompt_state.version
        if bad is None:
            prompts_file.write_bytes(PROMPTS.encode("utf-16"))
        else:
            prompts_file.write_text(bad)
        svc.station.check_prompt_file()
        assert field in svc.status.snapshot()["prompt_error"] and svc.prompt_state.version == before
        prompts_file.write_text(PROMPTS.replace("with a hole", "with a big hole"))  # a later valid edit
        svc.station.check_prompt_file()
        assert svc.prompt_state.version != before and svc.status.snapshot()["prompt_error"] is None


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli.main", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["template", "utf16", "state-file", "state-unwritable"])
def test_bad_files_at_start_are_one_line_and_exit_2(case: str, tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    prompts, state = tmp_path / "p.yaml", tmp_path / "state"
    prompts.write_text(PROMPTS)
    if case == "template":
        prompts.write_text(PROMPTS.replace('"a photo of a {} part"', '"a {} {x}"'))
    elif case == "utf16":
        prompts.write_bytes(PROMPTS.encode("utf-16"))
    elif case == "state-file":
        (tmp_path / "file").write_text("x")
        state = tmp_path / "file" / "state"
    else:
        state.write_text("not a folder")
    r = _run_cli("run", "--bundle", str(tiny_bundles["clip"]), "--camera", "sim://line?seed=1&size=160x120",
                 "--prompts", str(prompts), "--state-dir", str(state), "--duration", "1")
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    assert {"template": "template", "utf16": "UTF-8", "state-file": "state_dir",
            "state-unwritable": "state_dir"}[case] in errors[0]


def test_limits_and_confinement(tmp_path: Path) -> None:
    base = yaml.safe_load(PROMPTS)
    many = {**base, "categories": base["categories"] + [
        {"name": f"d{i}", "prompts": ["x"]} for i in range(MAX_CATEGORIES)]}
    with pytest.raises(ValueError, match=f"at most {MAX_CATEGORIES} items"):
        PromptSet.model_validate(many)
    from edge.inspect.prompt_state import confined

    (tmp_path / "refs").mkdir()
    assert confined("refs", tmp_path) == (tmp_path / "refs").resolve()
    for outside in ("/etc", "../elsewhere", str(tmp_path.parent)):
        with pytest.raises(ConfigError, match="outside the prompt set's folder") as err:
            confined(outside, tmp_path, (tmp_path / "uploads",))
        assert "passwd" not in str(err.value)  # the error names no file it found there


def test_a_read_only_state_dir_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a non-root service meets on a read-only folder (tests run as root, who may write anywhere: the
    refusal is injected where the probe writes)."""
    from edge.app import check_state_dir
    from edge.errors import ConfigError

    def refuse(self: Path, data: bytes) -> int:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(ConfigError, match=r"state_dir .*: not a writable folder \(Permission denied\); point "
                                          "state_dir at a writable folder"):
        check_state_dir(tmp_path / "state")
