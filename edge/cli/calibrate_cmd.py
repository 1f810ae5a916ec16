"""``edge-inspect calibrate``: FP16 / INT8 artifacts in a bundle, behind an accuracy gate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.views import camera_view
from edge.config import TileConfig
from edge.errors import ConfigError, require_extra


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, help="bundle folder written by 'edge-inspect export'")
    p.add_argument("--images", required=True,
                   help="folder of line images, or sim://line?seed=N for the simulated line")
    p.add_argument("--precision", choices=("fp16", "int8"), required=True)
    p.add_argument("--target", choices=("tensorrt", "cpu"), default="tensorrt",
                   help="int8 for a TensorRT engine (Q/DQ, s8s8) or for ONNX Runtime on a CPU-only station "
                   "(the fastest ORT format that passes the gate); default %(default)s")
    p.add_argument("--method", default="minmax", help="int8 ranges: minmax | percentile | entropy (default minmax)")
    p.add_argument("--percentile", type=float, default=99.999, help="for --method percentile (default %(default)s)")
    p.add_argument("--calib-images", type=int, default=64, help="images to calibrate on (default %(default)s)")
    p.add_argument("--holdout-images", type=int, default=128, help="images the gate is measured on "
                   "(default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration / hold-out split")
    p.add_argument("--tiles", metavar="RxC", help="cut each image into the service's RxC tile grid (plus the "
                   "whole image), as a camera with 'tiles' is scored")
    p.add_argument("--prompts", type=Path, help="prompt set for verdict agreement (default: the demo's)")
    p.add_argument("--exclude", action="append", default=[], metavar="GROUP|NODE",
                   help="keep a node group (embeddings, layers.N, head) or node in float; repeatable")
    p.add_argument("--auto", action="store_true",
                   help="int8 for TensorRT: keep the most sensitive groups in float until the gate passes (never "
                        "all: at least one stays INT8)")
    p.add_argument("--sensitivity", action="store_true", help="int8: always run the per-group sensitivity analysis")
    p.add_argument("--quantize-attention", action="store_true",
                   help="int8: also quantize attention's activation x activation MatMuls")
    p.add_argument("--headroom", type=float, default=16.0,
                   help="fp16: keep nodes in fp32 whose activations exceed 65504/headroom (default %(default)s)")
    p.add_argument("--min-cosine", type=float, help="gate: p1 image cosine (default fp16 0.999, int8 0.99)")
    p.add_argument("--min-agreement", type=float, help="gate: lower bound (Wilson, one-sided 95 %%) of the share of "
                   "hold-out frames whose verdict did not flip harmfully (default 0.97; 0.97 needs >= 88 frames)")
    p.add_argument("--min-patch-cosine", type=float, help="gate: p1 cosine of the patch tokens, which the good-part "
                   "memory compares (bundles with patch_embeds; default fp16 0.999, int8 0.98)")
    p.add_argument("--force", action="store_true", help="write the artifact even if the gate fails (recorded)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _tiles(text: str | None) -> TileConfig | None:
    """--tiles as the other offline commands read it (edge.cli.views): the service's grid, plus the whole image."""
    return camera_view("calibrate", text).tiles


def run(args: argparse.Namespace) -> int:
    require_extra("calibrate", ("onnx",), "calibration")
    from pydantic import ValidationError

    from calibration.calibrate import CalibrateOptions, calibrate  # another missing module: main's one line
    from edge.validation import describe

    if args.method not in ("minmax", "percentile", "entropy"):
        raise ConfigError(f"--method {args.method}: unknown calibration method; use minmax, percentile or entropy.")
    try:
        opts = CalibrateOptions(
            precision=args.precision, target=args.target, images=args.images, method=args.method,
            percentile=args.percentile,
            calib_images=args.calib_images, holdout_images=args.holdout_images, seed=args.seed,
            tiles=_tiles(args.tiles), prompts=args.prompts, exclude=tuple(args.exclude), auto=args.auto,
            sensitivity=args.sensitivity, quantize_attention=args.quantize_attention, headroom=args.headroom,
            min_cosine=args.min_cosine, min_agreement=args.min_agreement, min_patch_cosine=args.min_patch_cosine,
            force=args.force,
        )
    except ValidationError as err:
        raise ConfigError(f"calibrate option {describe(err)}; see 'edge-inspect calibrate --help'.") from err
    outcome = calibrate(args.bundle, opts, quiet=args.quiet)
    g = outcome.gate
    print(json.dumps({"bundle": str(args.bundle), "written": [a.role for a in outcome.artifacts],
                      "gate": "passed" if g.passed else "FAILED (forced)", "cosine_p1": round(g.cosine_p1, 6),
                      "frames": g.frames, "harmful_flips": g.harmful_flips, "band_moves": g.band_moves,
                      "agreement_lower_bound": g.agreement_lower_bound, "latency_ratio": g.latency_ratio,
                      "report": str(outcome.report)}))
    return 0
