"""Entry point: parse, dispatch lazily, turn every EdgeInspectError into one line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from edge import __version__
from edge.errors import EdgeInspectError, missing_extra

# subcommand -> module under edge.cli that defines add_arguments(parser) and run(args)
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("export_cmd", "checkpoint -> ONNX model bundle (workstation; needs the export extra)"),
    "calibrate": ("calibrate_cmd", "FP16 / INT8 artifacts in a bundle, behind an accuracy gate (workstation)"),
    "build": ("build_cmd", "TensorRT engines from the calibrated ONNX (on the device); --check for staleness"),
    "selftest": ("selftest_cmd", "prove a device: build engines, self-test, compare with ONNX Runtime, time them"),
    "classify": ("classify_cmd", "score images against text labels with a bundle"),
    "run": ("run_cmd", "the inspection service (cameras -> verdicts -> sinks)"),
    "demo": ("demo_cmd", "the service on the simulated line with a demo model, end to end"),
    "config": ("config_cmd", "check an inspect.yaml, list its keys"),
    "prompts": ("prompts_cmd", "test a prompt set on images, calibrate its thresholds"),
    "evaluate": ("evaluate_cmd", "measure the station's verdicts on labelled frames: AUROC, escapes, localisation"),
    "sim": ("sim_cmd", "write simulated line frames (folder or video) with ground truth"),
    "passwd": ("passwd_cmd", "print a password hash for an operator-page login (ops.users)"),
    "install-systemd": ("install_systemd_cmd", "write the systemd units, environment file and config"),
    "bench": ("bench_cmd", "benchmarks: print a table, write JSON"),
    "finetune": ("finetune_cmd", "train or adapt a CLIP/SigLIP checkpoint on image-caption pairs"),
}

EPILOG = """\
first try:
  edge-inspect demo                       the service on a simulated line, end to end

typical flow:
  edge-inspect export openai/clip-vit-base-patch32 --out bundles/clip-b32
  edge-inspect calibrate bundles/clip-b32 --images line-images/ --precision int8
  edge-inspect build bundles/clip-b32 --precision int8     (on the device)
  edge-inspect classify --bundle bundles/clip-b32 --label "a scratched part" \\
      --label "a flawless part" frame.png
  edge-inspect run --config inspect.yaml

Run 'edge-inspect COMMAND --help' for a command's options. Errors print one line and exit
non-zero; add --debug to see the traceback.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-inspect",
        description="Zero-shot visual inspection with CLIP/SigLIP on edge GPUs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edge-inspect {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        _module(module).add_arguments(sp)
    return parser


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"edge.cli.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = _module(args._module).run(args)
        return code
    except ImportError as err:  # an extra that this install lacks (the device install has no torch), named in one line
        missing = missing_extra(err)
        if missing is None or args.debug:
            raise
        print(f"edge-inspect {args.command}: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except EdgeInspectError as err:
        if args.debug:
            raise
        print(f"edge-inspect {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
