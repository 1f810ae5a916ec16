"""Train demo-clip and/or demo-siglip from a fixed seed: ``python -m export.demo_models.train``.

Renders the simulated line (once per part count), trains a byte-level BPE tokenizer on generated captions,
builds each model from its config and trains it with export.finetune. demo-siglip took about an
hour on 2 CPU cores; demo-clip was trained on a GPU (recipe.DEVICE; on 2 CPU cores its recipe would
take several hours). The card says how long each took. The result is committed, so that the demo and
the tests never train.

Each model trains where its recipe says (recipe.DEVICE: demo-clip on a GPU, refused in one line where
PyTorch sees none; ``--device`` overrides it). On a bigger machine ``--workers N`` renders with N processes,
``--cache DIR`` keeps the rendered frames for the next run (several runs side by side render once:
``--render-only`` first), and ``--budget-minutes M`` sets each run's length from its measured speed.
``--parts``, ``--batch``, ``--seed`` and ``--dense-weight`` change the recipe's data, batch, random seed and patch
objective for such a run (candidates side by side); its log records them.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.prompts import PromptSet
from edge.sim import SimTruth
from export.captions import DEMO_PROMPTS, caption_corpus, caption_for
from export.checkpoint_build import model_config, preprocessor_config, save_checkpoint, train_tokenizer
from export.demo_models import recipe
from export.finetune import PairData, TrainConfig, device_problem, init_logits, train, zero_shot_eval
from export.sim_data import render_groups


@dataclass(frozen=True)
class RunSettings:
    """What a run may change of the recipe (recipe.py's values by default); the training log records them. The
    part count is chosen where the frames are rendered (main), and the log records the frames."""

    batch: int  # main passes the recipe's (recipe.BATCH) unless --batch is given
    steps: int | None = None  # None: recipe.STEPS[family]
    device: str = "cpu"  # main passes the recipe's (recipe.DEVICE) unless --device is given
    budget_s: float | None = None  # the first stage's time budget (finetune.steps_within); steps is then the most
    seed: int = recipe.SEED  # weights' initialisation, batch order, captions and the tokenizer's corpus
    dense_weight: float = recipe.DENSE_WEIGHT  # the first stage's patch objective


def pair_label(truth: SimTruth) -> str:
    """Positives are pairs of the same defect kind (soft targets), as DESIGN.md measured."""
    return truth.defect


def build_model(family: str, tokenizer: object, labels: list[str], batch: int, seed: int) -> torch.nn.Module:
    from transformers import CLIPModel, SiglipModel

    torch.manual_seed(seed)
    cfg = model_config(family, recipe.SIZES, tokenizer)  # type: ignore[arg-type]
    model = (CLIPModel if family == "clip" else SiglipModel)(cfg)
    init_logits(model, family, labels, batch)  # type: ignore[arg-type]
    return model


def _pairs(images: np.ndarray, truths: list, masks: np.ndarray | None = None) -> PairData:
    """The recipe's training pairs: each frame with a fresh random caption of its truth, in counterfactual groups."""
    return PairData(images, [pair_label(t) for t in truths], lambda i, rng: caption_for(truths[i], rng),
                    group_size=1 + len(recipe.TRAIN.defects), masks=masks)


def _out(family: str, out_root: Path | None) -> Path:
    return recipe.folder(family) if out_root is None else out_root / f"demo-{family}"


def _save(out: Path, family: str, model: torch.nn.Module, tokenizer: object, log: dict | None = None) -> None:
    """The checkpoint folder, written from a CPU copy (the model may be training on a GPU)."""
    save_checkpoint(out, copy.deepcopy(model).cpu().eval(), tokenizer,  # type: ignore[arg-type]
                    preprocessor_config(family, recipe.SIZES.image_size, crop=False))  # type: ignore[arg-type]
    if log is not None:
        (out / "training_log.json").write_text(json.dumps(log, indent=2) + "\n")


def _fit(family: str, model: torch.nn.Module, tokenizer: object, data: PairData, cfg: TrainConfig, holdout: tuple,
         progress: Path | None, tag: str) -> tuple[list[dict[str, float]], float]:
    """One training run with the recipe's hold-out evaluation (and a checkpoint in ``progress`` at each)."""
    spec = recipe.image_spec(family)
    prompts = PromptSet.model_validate(DEMO_PROMPTS)
    hold_images, hold_truths = holdout

    def evaluate() -> dict[str, object]:
        report = zero_shot_eval(model, family, tokenizer, recipe.SIZES.context_length, spec, prompts,  # type: ignore[arg-type]
                                hold_images, [t.defect for t in hold_truths])
        if progress is not None:  # a checkpoint at every evaluation: a long run can be stopped and still used
            _save(progress / f"demo-{family}", family, model, tokenizer)
        return report

    start = time.perf_counter()
    history = train(model, family, tokenizer, spec, data, cfg, evaluate,  # type: ignore[arg-type]
                    log=lambda s: print(f"demo-{family}{tag} {s}", flush=True))
    return history, time.perf_counter() - start


def _where(run: RunSettings) -> dict[str, object]:
    """The machine a run trained on, for its log (speeds and, on a GPU, results are the machine's)."""
    where: dict[str, object] = {"device": run.device, "torch": torch.__version__}
    if run.device.startswith("cuda"):
        where["gpu"] = torch.cuda.get_device_name(torch.device(run.device))
    return where


def train_family(family: str, images: np.ndarray, truths: list, masks: np.ndarray, holdout: tuple,
                 progress: Path | None, out_root: Path | None, run: RunSettings) -> Path:
    """The first stage: both towers from random weights. Returns the folder written."""
    tokenizer = train_tokenizer(caption_corpus(truths, 4, run.seed), family,  # type: ignore[arg-type]
                                recipe.SIZES.vocab_size, recipe.SIZES.context_length)
    data = _pairs(images, truths, masks)
    model = build_model(family, tokenizer, data.labels, run.batch, run.seed)
    steps = run.steps or (recipe.STEPS[family] if run.budget_s is None else 10**9)  # a budget alone: its own length
    cfg = TrainConfig(steps=steps, batch=run.batch, lr=recipe.LR, warmup=recipe.WARMUP,
                      seed=run.seed, eval_every=100, threads=2, dense_weight=run.dense_weight,
                      device=run.device, budget_s=run.budget_s)
    history, seconds = _fit(family, model, tokenizer, data, cfg, holdout, progress, "")
    out = _out(family, out_root)
    _save(out, family, model, tokenizer,
          {"train_seconds": round(seconds, 1), "steps": int(history[-1]["step"]), "batch": run.batch,
           "lr": recipe.LR, "warmup": recipe.WARMUP, "dense_weight": run.dense_weight, "seed": run.seed,
           "zoom": list(recipe.ZOOM), "train_frames": len(images),
           **({"budget_s": run.budget_s} if run.budget_s is not None else {}), **_where(run), "history": history})
    return out


def text_stage(family: str, images: np.ndarray, truths: list, holdout: tuple, source: Path,
               out_root: Path | None, run: RunSettings) -> None:
    """The second stage (recipe.TEXT_STAGE) on the first stage's weights in ``source``: the text tower alone
    (finetune's text_only), with caption noise and without the patch objective (the patch tokens are frozen).
    Its log is added to the first stage's as ``text_stage``; it is short, so it saves no --progress checkpoints."""
    from export.checkpoint import load_checkpoint

    stage = recipe.TEXT_STAGE[family]
    ckpt = load_checkpoint(str(source))
    data = _pairs(images, truths)  # no masks: the patch tokens are frozen
    cfg = TrainConfig(steps=int(stage["steps"]), batch=run.batch, lr=float(stage["lr"]), warmup=recipe.WARMUP,
                      seed=run.seed, eval_every=100, threads=2, text_only=True, text_noise=float(stage["noise"]),
                      device=run.device)
    history, seconds = _fit(family, ckpt.model, ckpt.tokenizer, data, cfg, holdout, None, " text stage")
    log = json.loads((source / "training_log.json").read_text())
    log["text_stage"] = {"train_seconds": round(seconds, 1), **stage, "batch": run.batch,
                         "warmup": recipe.WARMUP, "dense_weight": 0.0, "seed": run.seed, **_where(run),
                         "history": history}
    _save(_out(family, out_root), family, ckpt.model, ckpt.tokenizer, log)


def _check_first_stage(parser: argparse.ArgumentParser, family: str, folder: Path) -> int:
    """--text-stage-from: first-stage weights of a family that has a text stage, and not already through it.
    Returns the first stage's seed (the recipe's for logs written before runs recorded it)."""
    if family not in recipe.TEXT_STAGE:
        parser.error(f"--text-stage-from: demo-{family} has no text stage (recipe.TEXT_STAGE); use --family "
                     f"{' or '.join(recipe.TEXT_STAGE)}.")
    log = folder / "training_log.json"
    if not log.is_file():
        parser.error(f"--text-stage-from {folder}: no training_log.json; give the demo-F folder of a run with "
                     "--first-stage-only.")
    first = json.loads(log.read_text())
    if "text_stage" in first:
        parser.error(f"--text-stage-from {folder}: these weights already had the text stage; give first-stage "
                     "weights (a run with --first-stage-only), or retrain both stages without the option.")
    return int(first.get("seed", recipe.SEED))


def _render_key(parts: int) -> str:
    """What the rendered frames depend on: the recipe's lines, the part count, the view and the zoom, and the code
    that draws, cuts and resizes them (a change to the simulator renders anew)."""
    import edge.preprocess
    import edge.sim
    import export.sim_data

    spec = recipe.image_spec("clip")
    code = sorted(Path(edge.sim.__file__).parent.glob("*.py")) + [Path(export.sim_data.__file__),
                                                                  Path(edge.preprocess.__file__)]
    what = [recipe.TRAIN.model_dump(mode="json"), parts, recipe.HOLDOUT.model_dump(mode="json"),
            recipe.HOLDOUT_FRAMES, spec.model_dump(mode="json"), list(recipe.ZOOM),
            [hashlib.sha256(f.read_bytes()).hexdigest() for f in code]]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _save_frames(folder: Path, name: str, images: np.ndarray, truths: list, masks: np.ndarray) -> None:
    np.save(folder / f"{name}-images.npy", images)
    np.save(folder / f"{name}-masks.npy", masks)
    (folder / f"{name}-truths.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in truths))


def _load_frames(folder: Path, name: str) -> tuple[np.ndarray, list, np.ndarray]:
    """Memory-mapped: runs side by side share one copy of the frames in the page cache."""
    truths = [SimTruth.model_validate_json(line) for line in (folder / f"{name}-truths.jsonl").read_text().splitlines()]
    return (np.load(folder / f"{name}-images.npy", mmap_mode="r"), truths,
            np.load(folder / f"{name}-masks.npy", mmap_mode="r"))


def render(parts: int, workers: int, cache: Path | None) -> tuple[tuple[np.ndarray, list, np.ndarray], tuple]:
    """The training groups and the hold-out views, from ``cache`` when it holds them (same key), else rendered
    (and kept there). Both families train on the same squashed frames."""
    folder = None if cache is None else cache / f"frames-{_render_key(parts)}"
    if folder is not None and (folder / "done").is_file():
        return _load_frames(folder, "train"), _load_frames(folder, "holdout")[:2]
    spec = recipe.image_spec("clip")
    t = time.perf_counter()
    train_set = render_groups(recipe.TRAIN, parts, spec, workers=workers, zoom=recipe.ZOOM)
    holdout = render_groups(recipe.HOLDOUT, recipe.HOLDOUT_FRAMES // 6, spec, workers=workers, zoom=recipe.ZOOM)
    print(f"rendered {len(train_set[0])} + {len(holdout[1])} frames in {time.perf_counter() - t:.0f} s", flush=True)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        _save_frames(folder, "train", *train_set)
        _save_frames(folder, "holdout", *holdout)
        (folder / "done").write_text(json.dumps({"parts": parts}) + "\n")
    return train_set, holdout[:2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=(*recipe.FAMILIES, "both"), default="both")
    parser.add_argument("--progress", type=Path, help="also save a checkpoint here at every evaluation")
    parser.add_argument("--out", type=Path, help="write the models here (default: export/demo_models/demo-*)")
    stages = parser.add_mutually_exclusive_group()
    stages.add_argument("--first-stage-only", action="store_true", help="skip the text stage (recipe.TEXT_STAGE)")
    stages.add_argument("--text-stage-from", type=Path, metavar="DIR",
                        help="run only the text stage of --family, on first-stage weights in DIR (written by a run "
                        "with --first-stage-only)")
    stages.add_argument("--render-only", action="store_true", help="render the frames into --cache and stop")
    machine = parser.add_argument_group("a bigger machine")
    machine.add_argument("--device", help="where to train: cpu, cuda, cuda:N (default: the recipe's, " +
                         ", ".join(f"demo-{f} on {d}" for f, d in recipe.DEVICE.items()) + ")")
    machine.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    machine.add_argument("--cache", type=Path, help="keep the rendered frames here, and reuse them")
    machine.add_argument("--budget-minutes", type=float, help="the first stage's time budget (its length comes from "
                         "the speed measured in warm-up); with --steps, at most that many")
    machine.add_argument("--parts", type=int, help="training parts, x6 frames (recipe: " +
                         ", ".join(f"{f} {n}" for f, n in recipe.TRAIN_PARTS.items()) + ")")
    machine.add_argument("--batch", type=int, help="batch (recipe: " + ", ".join(f"{f} {n}" for f, n in
                         recipe.BATCH.items()) + "; a multiple of 6 keeps the counterfactual groups whole)")
    machine.add_argument("--steps", type=int, help="first-stage steps (recipe: " +
                         ", ".join(f"{f} {n}" for f, n in recipe.STEPS.items()) + ")")
    machine.add_argument("--seed", type=int, help=f"random seed of the weights, batches, captions and tokenizer "
                         f"(recipe: {recipe.SEED}; with --text-stage-from, the first stage's; the frames are the "
                         "recipe's whatever the seed)")
    machine.add_argument("--dense-weight", type=float, help=f"the first stage's patch objective (recipe: "
                         f"{recipe.DENSE_WEIGHT}; 0: none)")
    args = parser.parse_args(argv)
    families = recipe.FAMILIES if args.family == "both" else (args.family,)
    if args.render_only and args.cache is None:
        parser.error("--render-only needs --cache DIR (where the frames are kept).")
    for name in ("workers", "parts", "batch", "steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: give a whole number of at least 1.")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        parser.error(f"--seed {args.seed}: give a whole number from 0 to {2**32 - 1}.")
    if args.dense_weight is not None and not (math.isfinite(args.dense_weight) and args.dense_weight >= 0):
        parser.error(f"--dense-weight {args.dense_weight}: give a finite number of at least 0 (0: no patch "
                     "objective).")
    if args.dense_weight is not None and args.text_stage_from is not None:
        parser.error("--dense-weight: the text stage has no patch objective (its image tower is frozen); give it "
                     "to the first stage's run, not with --text-stage-from.")
    if args.budget_minutes is not None and args.budget_minutes <= 0:
        parser.error(f"--budget-minutes {args.budget_minutes}: give a positive number of minutes.")
    if args.text_stage_from is not None:
        if len(families) != 1:
            parser.error("--text-stage-from needs one --family.")
        first_seed = _check_first_stage(parser, families[0], args.text_stage_from)
        if args.seed is None:
            args.seed = first_seed
    devices = {f: args.device or recipe.DEVICE[f] for f in families}
    if not args.render_only:
        for family, device in devices.items():
            problem = device_problem(device)
            if problem:
                whose = "" if args.device else f"demo-{family}'s recipe trains on {device} (recipe.DEVICE), but "
                parser.error(f"--device {device}: {whose}{problem}")
    if args.render_only:
        for parts in dict.fromkeys(args.parts or recipe.TRAIN_PARTS[f] for f in families):
            render(parts, args.workers, args.cache)
        return 0
    budget = None if args.budget_minutes is None else 60 * args.budget_minutes
    for family in families:  # rendered family by family: only one family's frames are held at a time
        (images, truths, masks), holdout = render(args.parts or recipe.TRAIN_PARTS[family], args.workers, args.cache)
        run = RunSettings(batch=args.batch or recipe.BATCH[family], steps=args.steps, device=devices[family],
                          budget_s=budget, seed=recipe.SEED if args.seed is None else args.seed,
                          dense_weight=recipe.DENSE_WEIGHT if args.dense_weight is None else args.dense_weight)
        first = args.text_stage_from or train_family(family, images, truths, masks, holdout, args.progress, args.out,
                                                     run)
        if family in recipe.TEXT_STAGE and not args.first_stage_only:
            text_stage(family, images, truths, holdout, first, args.out, run)
    return 0

if __name__ == "__main__":
    sys.exit(main())
