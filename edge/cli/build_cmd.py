"""``edge-inspect build``: TensorRT engines on the device; ``--check`` says whether they are stale."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.errors import EngineError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder (calibrated on the workstation, copied here)")
    p.add_argument("--precision", choices=("fp16", "int8"), action="append",
                   help="engines to build or check (repeatable; --check default: both)")
    p.add_argument("--max-batch", type=int, default=16, help="largest vision batch the engine accepts "
                   "(default %(default)s; match model.max_batch)")
    p.add_argument("--opt-batch", type=int, help="batch TensorRT tunes for (default min(8, max batch))")
    p.add_argument("--workspace", type=int, default=1024, metavar="MIB", help="builder workspace (default %(default)s)")
    p.add_argument("--timing-cache", type=Path, help="timing cache reused across builds (default BUNDLE/engines/"
                   "timing.cache)")
    p.add_argument("--check", action="store_true", help="report whether the engines are fresh; build nothing; "
                   "exit 6 if any is stale or missing")
    p.add_argument("--if-stale", action="store_true", help="build only the engines that are stale or missing "
                   "(for a systemd pre-start step)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    from edge.engines.build import BuildOptions, build, check

    precisions = args.precision or (["fp16", "int8"] if args.check else None)
    if not precisions:
        raise EngineError("choose the engines with --precision fp16 and/or --precision int8.")
    if args.check or args.if_stale:
        states, note = check(args.bundle, precisions, args.max_batch)
        stale = sorted({s.precision for s in states if not s.fresh})
        if args.check:
            for s in states:
                print(json.dumps({"engine": str(s.engine), "fresh": s.fresh, "problems": s.problems}))
            if note:
                print(json.dumps({"note": note}))
            return 6 if stale else 0
        precisions = stale
    for precision in precisions:
        opts = BuildOptions(precision=precision, max_batch=args.max_batch, opt_batch=args.opt_batch,
                            workspace_mib=args.workspace, timing_cache=args.timing_cache)
        for m in build(args.bundle, opts, quiet=args.quiet):
            print(json.dumps({"engine": m.engine_path, "precision": m.precision, "tower": m.tower,
                              "max_batch": m.profile.max_batch, "build_seconds": m.build_seconds,
                              "tensorrt": m.device.tensorrt_version, "gpu": m.device.gpu_name}))
    return 0
