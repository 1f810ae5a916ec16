"""``edge-inspect prompts test|calibrate``: see a prompt change before it goes live."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from edge.bundle import Bundle
from edge.errors import ConfigError
from edge.inspect.decision import decide
from edge.inspect.frames import score_frames
from edge.inspect.prompt_state import build_state
from edge.inspect.thresholds import propose_thresholds
from edge.model import ZeroShotModel
from edge.preprocess import IMAGE_SUFFIXES, load_image
from edge.prompts import PromptSet, load_prompt_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = sub.add_parser("test", help="score images with a candidate prompt set and print a table")
    test.add_argument("set", type=Path, help="prompt-set YAML")
    test.add_argument("--images", type=Path, required=True, help="folder of images")
    test.add_argument("--bundle", type=Path, required=True)
    cal = sub.add_parser("calibrate", help="propose per-category thresholds from labelled frames")
    cal.add_argument("set", type=Path, help="prompt-set YAML")
    cal.add_argument("--labelled", type=Path, required=True,
                     help="folder with one sub-folder of images per category name")
    cal.add_argument("--bundle", type=Path, required=True)
    cal.add_argument("--write", type=Path, help="write the set with the proposed thresholds here")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; pass a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{folder}: no images (PNG, JPEG, BMP, TIFF, WebP) in it.")
    return files


def _scores(bundle: Path, prompts: PromptSet, base: Path, files: list[Path]) -> np.ndarray:
    with ZeroShotModel(Bundle.open(bundle)) as model:
        state = build_state(model, prompts, base, None, "cli")
        scored = score_frames(model, state, [load_image(f) for f in files], batch=32)
        return np.stack([fs.scores for fs in scored])


def _test(args: argparse.Namespace) -> int:
    prompts = load_prompt_set(args.set)
    files = _images(args.images)
    probs = _scores(args.bundle, prompts, args.set.resolve().parent, files)
    names = [c.name for c in prompts.categories]
    width = max(len(f.name) for f in files)
    print(f"{'image':<{width}}  {'verdict':<9} {'category':<12} " + " ".join(f"{n[:8]:>8}" for n in names))
    for f, row in zip(files, probs):
        d = decide(dict(zip(names, map(float, row))), prompts)
        print(f"{f.name:<{width}}  {d.verdict:<9} {d.category:<12} " + " ".join(f"{v:8.3f}" for v in row))
    print(f"prompt set {prompts.name} version {prompts.version}: {len(files)} image(s)")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    prompts = load_prompt_set(args.set)
    names = [c.name for c in prompts.categories]
    folders = sorted(p for p in args.labelled.iterdir() if p.is_dir()) if args.labelled.is_dir() else []
    unknown = [f.name for f in folders if f.name not in names]
    if not folders or unknown:
        raise ConfigError(f"{args.labelled}: needs one sub-folder per category ({', '.join(names)}); "
                          f"{'unknown: ' + ', '.join(unknown) if unknown else 'none found'}.")
    files, labels = [], []
    for folder in folders:
        for f in _images(folder):
            files.append(f)
            labels.append(folder.name)
    probs = _scores(args.bundle, prompts, args.set.resolve().parent, files)
    proposals = propose_thresholds(probs, labels, prompts)
    print(f"{'category':<12} {'threshold':>9} {'precision':>9} {'recall':>7} {'n_pos':>6}")
    for p in proposals:
        print(f"{p.category:<12} {p.threshold:9.3f} {p.precision:9.3f} {p.recall:7.3f} {p.positives:6d}")
    if args.write:
        data = prompts.model_dump(mode="json", exclude_defaults=True)
        by_name = {p.category: p.threshold for p in proposals}
        for c in data["categories"]:
            if c["name"] in by_name:
                c["threshold"] = round(by_name[c["name"]], 4)
        args.write.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        print(f"wrote {args.write}")
    return 0


def run(args: argparse.Namespace) -> int:
    return _test(args) if args.action == "test" else _calibrate(args)
