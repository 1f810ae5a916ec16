"""``edge-inspect install-systemd``: the unit files, environment file and config, rendered for this install."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from edge.errors import ConfigError

UNITS = ("edge-inspect.service", "edge-inspect-build.service")


def systemd_folder() -> Path:
    """The unit templates: the checkout's ``systemd/`` (an editable install), else the copy that
    ``pip install .`` puts under the environment's ``share/edge-inspect/systemd`` (pyproject's data-files)."""
    data = {Path(sysconfig.get_path("data")), Path(sysconfig.get_path("data", f"{os.name}_user")), Path(sys.prefix)}
    places = (Path(__file__).resolve().parents[2] / "systemd",  # a venv, --user, and Debian's /usr/local installs
              *(root / "share" / "edge-inspect" / "systemd" for root in sorted(data)))
    for folder in places:
        if (folder / UNITS[0]).is_file():
            return folder
    raise ConfigError(f"{places[1]}: unit templates not found; reinstall the package (pip install -c "
                      "constraints.txt .) or run install-systemd from a checkout of the repository.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bin", type=Path, default=Path(sys.executable).parent,
                   help="folder holding the edge-inspect executable (default: this environment's, %(default)s)")
    p.add_argument("--units", type=Path, default=Path("/etc/systemd/system"), help="where unit files go")
    p.add_argument("--etc", type=Path, default=Path("/etc/edge-inspect"),
                   help="config folder: edge-inspect.env and inspect.yaml are written unless present")
    p.add_argument("--dry-run", action="store_true", help="print the rendered units, write nothing")


def render(name: str, bin_dir: Path) -> str:
    return (systemd_folder() / name).read_text(encoding="utf-8").replace("@BIN@", str(bin_dir))


def run(args: argparse.Namespace) -> int:
    if not (args.bin / "edge-inspect").exists():
        raise ConfigError(f"--bin {args.bin}: no edge-inspect executable there; pass the venv's bin folder.")
    rendered = {name: render(name, args.bin.resolve()) for name in UNITS}
    if args.dry_run:
        for name, text in rendered.items():
            print(f"# ---- {name}\n{text}")
        return 0
    try:
        args.units.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (args.units / name).write_text(text, encoding="utf-8")
        args.etc.mkdir(parents=True, exist_ok=True)
        folder = systemd_folder()
        for src, dest in ((folder / "edge-inspect.env", args.etc / "edge-inspect.env"),
                          (folder / "inspect.example.yaml", args.etc / "inspect.yaml")):
            if not dest.exists():
                shutil.copyfile(src, dest)
    except PermissionError as err:
        raise ConfigError(f"{err.filename}: permission denied; run with sudo, or pass --units/--etc.") from err
    print(f"wrote {', '.join(str(args.units / n) for n in UNITS)}; config in {args.etc}. Next:\n"
          "  sudo useradd --system --home-dir /var/lib/edge-inspect --groups video edge-inspect\n"
          f"  sudo edit {args.etc}/inspect.yaml and {args.etc}/edge-inspect.env (bundle, precision)\n"
          f"  echo -n 'PASSWORD' | sudo tee {args.etc}/mqtt-password >/dev/null && sudo chmod 600 "
          f"{args.etc}/mqtt-password\n"
          "  sudo systemctl daemon-reload && sudo systemctl enable --now edge-inspect\n"
          "  curl -s 127.0.0.1:9108/healthz   (with ops.http.port: 9108)")
    return 0
