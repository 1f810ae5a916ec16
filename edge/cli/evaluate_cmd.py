"""``edge-inspect evaluate``: the station's decision path on labelled frames, measured (see edge.evaluate)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edge.cli.views import camera_view
from edge.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--prompts", type=Path, required=True, help="the prompt set the station would run")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labelled", type=Path, help="folder with one sub-folder of images per category (good/, "
                     "scratch/, ...) and an optional boxes.jsonl")
    src.add_argument("--images", metavar="sim://...", help="frames of the simulated line, with its truth")
    p.add_argument("--frames", type=int, default=200, help="frames to take from --images (default %(default)s)")
    p.add_argument("--good", help="good parts for the memory: a folder, or sim://... (good frames are rendered); "
                   "overrides the prompt set's 'good'")
    p.add_argument("--good-frames", type=int, default=16, help="good frames to render from a sim:// --good")
    p.add_argument("--tiles", metavar="ROWSxCOLS", help="tile grid of the camera view (e.g. 2x2, plus the whole frame)")
    p.add_argument("--windows", metavar="N[,M]", help="further square grids (e.g. 3: a 3x3 grid as well)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--resample", choices=("area", "halve", "pyramid", "linear"),
                   help="shrink frames this way instead of the bundle's image.resample: to measure a resampling "
                   "before choosing it at export (the station always uses the bundle's)")
    p.add_argument("--out", type=Path, default=Path("evaluate-out"), help="report folder (default %(default)s)")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from edge.bundle import Bundle
    from edge.evaluate import evaluate, good_frames_of, labelled_folder, simulated, write_report
    from edge.inspect.prompt_state import build_state
    from edge.model import ZeroShotModel
    from edge.prompts import load_prompt_set

    prompts = load_prompt_set(args.prompts)
    view = camera_view("evaluate", args.tiles, args.windows)
    bundle = Bundle.open(args.bundle)
    if args.resample:
        image = bundle.manifest.image.model_copy(update={"resample": args.resample})
        bundle.manifest = bundle.manifest.model_copy(update={"image": image})
    with tempfile.TemporaryDirectory() as tmp, ZeroShotModel(bundle, precision=args.precision) as model:
        roots: tuple[Path, ...] = ()
        if args.good:
            good = good_frames_of(args.good, args.good_frames, Path(tmp) / "good") if args.good.startswith("sim://") \
                else Path(args.good).resolve()
            prompts = prompts.model_copy(update={"good": str(good)})
            roots = (good,)
        say = (lambda s: None) if args.quiet else (lambda s: print(f"evaluate: {s}", file=sys.stderr, flush=True))
        say(f"prompt set {prompts.name} {prompts.version}" + (f", good parts {prompts.good}" if prompts.good else ""))
        state = build_state(model, prompts, args.prompts.resolve().parent, None, "evaluate", roots, [view])  # type: ignore[list-item]
        names = [c.name for c in prompts.categories]
        samples = labelled_folder(args.labelled, names) if args.labelled else simulated(args.images, args.frames)
        unknown = sorted({s.truth for s in samples} - set(names))
        if unknown:
            raise ConfigError(f"{args.labelled or args.images}: truth categories {', '.join(unknown)} are not in the "
                              f"prompt set ({', '.join(names)}); add them or evaluate with another set.")
        ev = evaluate(model, state, samples, view, (lambda d, n: say(f"{d}/{n} frames")))  # type: ignore[arg-type]
    title = f"evaluate {args.bundle.name} ({args.precision}) on {args.labelled or args.images}"
    write_report(ev, args.out, title, {"bundle": str(args.bundle), "prompts": str(args.prompts),
                                       "tiles": args.tiles, "windows": args.windows, "precision": args.precision,
                                       "resample": bundle.manifest.image.resample})
    from edge.evaluate import markdown

    print(markdown(ev, title).split("\n\nVerdicts")[0])
    print(f"\nwrote {args.out}/report.json, report.md, roc.png, confusion.png, misses.png")
    return 0
