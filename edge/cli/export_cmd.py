"""``edge-inspect export``: checkpoint -> model bundle (imports torch only when run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.contract import DEFAULT_OPSET
from edge.errors import require_extra


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="local Hugging Face checkpoint folder, or a hub id in the local cache")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")
    p.add_argument("--resize", choices=("auto", "crop", "squash"), default="auto",
                   help="preprocessing: auto = the checkpoint's own recipe (default)")
    p.add_argument("--name", help="bundle name (default: the checkpoint folder's name)")
    p.add_argument("--patch-layers", default="auto", metavar="auto|none|joint|N,M",
                   help="patch tokens for the good-part memory (vision.onnx's patch_embeds): auto = mid-level "
                   "layers (depth/4, depth/2); joint = the last layer in the text space; none = no second output")
    p.add_argument("--float-input", action="store_true",
                   help="vision.onnx takes float pixel_values [B, 3, S, S] as earlier bundles; default: uint8 "
                   "BGR images [B, S, S, 3], normalised inside the graph (folded into its first layer: free)")
    p.add_argument("--resample", choices=("area", "halve", "pyramid", "linear"), default="halve",
                   help="how frames are shrunk to the model's input (default %(default)s: as accurate as area "
                   "with evaluate, 7x cheaper; README, 'Preprocessing')")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args: argparse.Namespace) -> int:
    require_extra("export", ("torch", "transformers", "onnx"), "export")  # one line before any progress
    from export.bundle_export import ExportOptions, bundle_from_checkpoint  # another missing module: main's one line
    opt = ExportOptions(opset=args.opset, resize=args.resize, name=args.name, force=args.force,
                        patch_layers=args.patch_layers, uint8_input=not args.float_input, resample=args.resample)
    manifest = bundle_from_checkpoint(args.model, args.out, opt, quiet=args.quiet)
    summary = {"bundle": str(args.out), "family": manifest.family, "embed_dim": manifest.embed_dim,
               "input": manifest.image.input, "resample": manifest.image.resample,
               "patches": manifest.patches.model_dump(mode="json") if manifest.patches else None,
               "files": {k: v.sha256[:12] for k, v in manifest.files.items()}}
    print(json.dumps(summary))
    return 0
