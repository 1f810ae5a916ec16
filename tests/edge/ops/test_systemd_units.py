"""The unit files as installed: systemd-analyze verify finds nothing to say about them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
                                reason="systemd-analyze not installed (CI has it)")


def verify(folder: Path, *units: str) -> str:
    proc = subprocess.run(["systemd-analyze", "verify", *(f"./{u}" for u in units)], cwd=folder,
                          capture_output=True, text=True, timeout=60)
    return f"rc={proc.returncode} {proc.stdout}{proc.stderr}".strip()


def test_installed_units_verify_clean(tmp_path: Path) -> None:
    run_cli("install-systemd", "--units", str(tmp_path / "units"), "--etc", str(tmp_path / "etc"))
    units = tmp_path / "units"
    assert verify(units, "edge-inspect.service", "edge-inspect-build.service") == "rc=0"
    main = (units / "edge-inspect.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=", "ProtectSystem=strict",
                 "NoNewPrivileges=true", "PrivateTmp=true", "StateDirectory=edge-inspect", "CacheDirectory=",
                 "LoadCredential=mqtt-password:", "SupplementaryGroups=video", "Requires=edge-inspect-build.service"):
        assert line in main, line
    assert "@BIN@" not in main and "--if-stale" in (units / "edge-inspect-build.service").read_text()
    assert (tmp_path / "etc" / "edge-inspect.env").is_file() and (tmp_path / "etc" / "inspect.yaml").is_file()
    # the check can fail: a unit with a typo is reported
    bad = main.replace("Type=notify", "Type=notfy")
    (units / "bad.service").write_text(bad)
    assert "Failed to parse service type" in verify(units, "bad.service")


def test_install_keeps_an_existing_config(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "inspect.yaml").write_text("# mine\n")
    run_cli("install-systemd", "--units", str(tmp_path / "u"), "--etc", str(etc))
    assert (etc / "inspect.yaml").read_text() == "# mine\n"
