"""``edge-inspect selftest``: prove a device: build, self-test, compare with ONNX Runtime, time."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("tensorrt",), default="tensorrt", help="what to prove (default %(default)s)")
    p.add_argument("--bundle", type=Path, required=True,
                   help="a calibrated bundle (FP16 and/or INT8 artifacts: edge-inspect calibrate)")
    p.add_argument("--batches", default="1,4,8,16", help="batch sizes to time (default %(default)s)")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--json", type=Path, default=Path("device-check.json"), help="report file")
    p.add_argument("--quiet", action="store_true", help="no build progress on stderr")


def run(args: argparse.Namespace) -> int:
    from edge.engines.device_check import run as check
    from edge.engines.device_check import table

    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    report = check(args.bundle, batches, args.iterations, args.json, quiet=args.quiet)
    print(table(report))
    print(f"wrote {args.json}")
    return 0 if all(c["selftest_passed"] for c in report["checks"]) else 6
