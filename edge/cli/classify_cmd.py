"""``edge-inspect classify``: the quickest proof that a bundle works on your images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.bundle import Bundle
from edge.cli.views import camera_view
from edge.config import CameraConfig
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
    p.add_argument("--good", type=Path, help="a folder of good parts' images (the camera's own frames): each line "
                   "gains 'anomaly' {score, threshold, box [x, y, w, h] in the image's pixels} from the good-part "
                   "memory")
    p.add_argument("--tiles", metavar="ROWSxCOLS", help="with --good: the tile grid the memory and the images are "
                   "cut into, as a camera's 'tiles' (e.g. 2x2, plus the whole image)")
    p.add_argument("images", nargs="+", type=Path, help="image files")


def run(args: argparse.Namespace) -> int:
    if not args.label:
        raise ConfigError("no --label given; pass each category as --label TEXT.")
    if args.tiles and not args.good:
        raise ConfigError("--tiles cuts the images for the good-part memory; give --good DIR too.")
    bundle = Bundle.open(args.bundle)
    frames = [load_image(p) for p in args.images]  # fail before any work on a bad file
    with ZeroShotModel(bundle, threads=args.threads, precision=args.precision) as model:
        texts = model.embed_texts(args.label)
        probs = model.probs(model.embed_images(frames), texts)
        found = anomalies(model, args.good, camera_view("classify", args.tiles), frames, args.images) \
            if args.good else [None] * len(frames)
    for path, row, anomaly in zip(args.images, probs, found, strict=False):
        scores = {label: round(float(p), 6) for label, p in zip(args.label, row, strict=False)}
        line: dict[str, object] = {"image": str(path), "scores": scores, "top": args.label[int(row.argmax())]}
        if args.good:
            line["anomaly"] = anomaly
        print(json.dumps(line))
    return 0


def anomalies(model: ZeroShotModel, good: Path, view: CameraConfig, frames: list[np.ndarray], paths: list[Path]
              ) -> list[dict[str, object]]:
    """Each image's anomaly from a memory of the good images, cut as ``view`` (the service's own functions)."""
    from edge.inspect.frames import cut, per_frame
    from edge.inspect.goodparts import build_view_memory, good_images
    from edge.inspect.memory import MemoryParams, frame_anomalies

    images, names = good_images(good)
    size = images[0].shape[:2]
    odd = [str(p) for p, f in zip(paths, frames) if f.shape[:2] != size]
    if odd:
        raise ConfigError(f"{', '.join(odd[:3])}: not the size of the good images ({size[1]}x{size[0]}); the memory "
                          "compares the same view, so give frames of the same camera.")
    memory = build_view_memory(model, images, names, view, MemoryParams(), "classify")
    crops, tiles = cut(frames, [view] * len(frames))
    _, tokens = model.embed_views(model.inputs(crops))
    assert tokens is not None  # build_view_memory refused a bundle without patch tokens
    parts = per_frame(tokens, [len(t) for t in tiles])
    found = frame_anomalies(memory, np.stack(parts), [[t.box for t in ts] for ts in tiles],
                            [(f.shape[1], f.shape[0]) for f in frames])
    return [{"score": round(a.score, 6), "threshold": round(a.threshold, 6),
             "box": list(a.box) if a.box is not None else None} for a in found]
