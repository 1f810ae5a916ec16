"""``config check``/``keys``, ``run`` from the command line, and shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.edge.conftest import PROMPTS
from tests.helpers import one_line_error, run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "inspect.example.yaml"


def test_shipped_example_config_is_valid() -> None:
    result = run_cli("config", "check", str(EXAMPLE))
    assert "valid" in result.out and "camera" in result.out


@pytest.mark.parametrize("users", ["[]\n", ""])
def test_check_refuses_an_exposed_page_whose_user_file_is_empty(tmp_path: Path, users: str) -> None:
    """config check says what the service would refuse at start: logins never fail open."""
    data = yaml.safe_load(EXAMPLE.read_text())
    (tmp_path / "users.yaml").write_text(users)
    data["ops"] = {**(data.get("ops") or {}), "http": {"host": "0.0.0.0", "port": 9108}, "users_file": "users.yaml"}
    data["ops"].pop("users", None)
    cfg = tmp_path / "inspect.yaml"
    cfg.write_text(yaml.safe_dump(data))
    line = one_line_error(run_cli("config", "check", str(cfg), expect=2))
    assert "exposes the operator page but no login is configured" in line


def test_check_does_not_print_a_camera_password(tmp_path: Path) -> None:
    """config check explains the config on screen (and in support tickets): a camera URL's credentials stay out."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cameras"][0]["source"] = "rtsp://admin:s3cret@10.0.0.7:554/stream1"
    cfg = tmp_path / "inspect.yaml"
    cfg.write_text(yaml.safe_dump(data))
    result = run_cli("config", "check", str(cfg))
    assert "rtsp://***@10.0.0.7:554/stream1" in result.out and "s3cret" not in result.out + result.err


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cameras"][0]["fsp"] = 5
    bad = tmp_path / "inspect.yaml"
    bad.write_text(yaml.safe_dump(data))
    line = one_line_error(run_cli("config", "check", str(bad), expect=2))
    assert "cameras.0.fsp" in line and "unknown key" in line


def test_keys_lists_documented_keys() -> None:
    out = run_cli("config", "keys").out
    assert "cameras.stale_after_s" in out or "stale_after_s" in out
    assert "model.backend" in out and "evidence.max_mb" in out


def test_run_needs_a_config_or_the_essentials() -> None:
    line = one_line_error(run_cli("run", "--camera", "sim://line", expect=2))
    assert "--config" in line and "--bundle" in line


def test_run_stops_cleanly_on_sigterm(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    """A real process: SIGTERM drains the queues and flushes the JSON-lines file."""
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)
    results = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "edge.cli.main", "run", "--bundle", str(tiny_bundles["clip"]),
           "--camera", "sim://line?seed=1&size=320x240&fps=20", "--prompts", str(prompts),
           "--results", str(results), "--state-dir", str(tmp_path / "state")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 5):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) >= 5 and [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert "station started" in err


def test_mqtt_password_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """password_file, then systemd's LoadCredential (\\$CREDENTIALS_DIRECTORY/mqtt-password), then the env."""
    from edge.config import MqttConfig

    monkeypatch.setenv("EDGE_INSPECT_MQTT_PASSWORD", "from-env")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert MqttConfig(host="h").password() == "from-env"
    (tmp_path / "mqtt-password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert MqttConfig(host="h").password() == "from-credential"
    (tmp_path / "pw").write_text("from-file")
    assert MqttConfig(host="h", password_file=tmp_path / "pw").password() == "from-file"


@pytest.mark.parametrize("tiles, windows, want", [
    ("two", None, "--tiles two: expected ROWSxCOLS"),
    ("9x9", None, "--tiles 9x9 --windows -: rows, columns and window grids must be 1 to 8"),
    ("2x2", "3,x", "--windows 3,x: expected grid sizes"),
    (None, "3", "--windows needs --tiles"),
])
def test_the_offline_commands_read_their_view_in_one_line(tiles: str | None, windows: str | None, want: str) -> None:
    """evaluate, classify and calibrate cut frames as a camera would: a bad grid is a ConfigError (exit 2), never
    pydantic's traceback."""
    from edge.cli.views import camera_view
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match=want.replace("-", r"\-").replace("(", r"\(")):
        camera_view("eval", tiles, windows)
    assert camera_view("eval", "2x3", "3").tiles.model_dump()["cols"] == 3  # type: ignore[union-attr]
