"""``edge-inspect classify``: the quickest proof that a bundle works on your images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.bundle import Bundle
from edge.errors import ConfigError
from edge.model import ZeroShotModel
from edge.preprocess import load_image


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True, help="model bundle folder")
    p.add_argument("--label", action="append", default=[], metavar="TEXT",
                   help="a category in plain words; repeat for each (at least two for CLIP)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="which of the bundle's artifacts to run (fp16/int8 come from 'edge-inspect calibrate')")
    p.add_argument("images", nargs="+", type=Path, help="image files")


def run(args: argparse.Namespace) -> int:
    if not args.label:
        raise ConfigError("no --label given; pass each category as --label TEXT.")
    bundle = Bundle.open(args.bundle)
    frames = [load_image(p) for p in args.images]  # fail before any work on a bad file
    with ZeroShotModel(bundle, threads=args.threads, precision=args.precision) as model:
        texts = model.embed_texts(args.label)
        probs = model.probs(model.embed_images(frames), texts)
    for path, row in zip(args.images, probs, strict=False):
        scores = {label: round(float(p), 6) for label, p in zip(args.label, row, strict=False)}
        print(json.dumps({"image": str(path), "scores": scores, "top": args.label[int(row.argmax())]}))
    return 0
