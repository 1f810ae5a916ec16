"""Train demo-clip and/or demo-siglip from a fixed seed: ``python -m export.demo_models.train``.

Renders the simulated line once, trains a byte-level BPE tokenizer on generated captions,
builds each model from its config and trains it with export.finetune. About 12 minutes per
model on 2 CPU cores. The result is committed, so that the demo and the tests never train.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge.prompts import PromptSet
from edge.sim import SimTruth
from export.captions import DEMO_PROMPTS, caption_corpus, caption_for
from export.checkpoint_build import model_config, preprocessor_config, save_checkpoint, train_tokenizer
from export.demo_models import recipe
from export.finetune import PairData, TrainConfig, init_logits, train, zero_shot_eval
from export.sim_data import render_groups


def pair_label(truth: SimTruth) -> str:
    """Positives are pairs of the same defect kind (soft targets), as DESIGN.md measured."""
    return truth.defect


def build_model(family: str, tokenizer: object, labels: list[str]) -> torch.nn.Module:
    from transformers import CLIPModel, SiglipModel

    torch.manual_seed(recipe.SEED)
    cfg = model_config(family, recipe.SIZES, tokenizer)  # type: ignore[arg-type]
    model = (CLIPModel if family == "clip" else SiglipModel)(cfg)
    init_logits(model, family, labels, recipe.BATCH)  # type: ignore[arg-type]
    return model


def _pairs(images: np.ndarray, truths: list, masks: np.ndarray | None = None) -> PairData:
    """The recipe's training pairs: each frame with a fresh random caption of its truth, in counterfactual groups."""
    return PairData(images, [pair_label(t) for t in truths], lambda i, rng: caption_for(truths[i], rng),
                    group_size=1 + len(recipe.TRAIN.defects), masks=masks)


def _out(family: str, out_root: Path | None) -> Path:
    return recipe.folder(family) if out_root is None else out_root / f"demo-{family}"


def _save(out: Path, family: str, model: torch.nn.Module, tokenizer: object, log: dict) -> None:
    save_checkpoint(out, model.eval(), tokenizer,  # type: ignore[arg-type]
                    preprocessor_config(family, recipe.SIZES.image_size, crop=False))  # type: ignore[arg-type]
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
            save_checkpoint(progress / f"demo-{family}", model.eval(), tokenizer,  # type: ignore[arg-type]
                            preprocessor_config(family, recipe.SIZES.image_size, crop=False))  # type: ignore[arg-type]
        return report

    start = time.perf_counter()
    history = train(model, family, tokenizer, spec, data, cfg, evaluate,  # type: ignore[arg-type]
                    log=lambda s: print(f"demo-{family}{tag} {s}", flush=True))
    return history, time.perf_counter() - start


def train_family(family: str, images: np.ndarray, truths: list, masks: np.ndarray, holdout: tuple,
                 progress: Path | None, out_root: Path | None = None) -> Path:
    """The first stage: both towers from random weights. Returns the folder written."""
    tokenizer = train_tokenizer(caption_corpus(truths, 4, recipe.SEED), family,  # type: ignore[arg-type]
                                recipe.SIZES.vocab_size, recipe.SIZES.context_length)
    data = _pairs(images, truths, masks)
    model = build_model(family, tokenizer, data.labels)
    cfg = TrainConfig(steps=recipe.STEPS[family], batch=recipe.BATCH, lr=recipe.LR, warmup=recipe.WARMUP,
                      seed=recipe.SEED, eval_every=100, threads=2, dense_weight=recipe.DENSE_WEIGHT)
    history, seconds = _fit(family, model, tokenizer, data, cfg, holdout, progress, "")
    out = _out(family, out_root)
    _save(out, family, model, tokenizer,
          {"train_seconds": round(seconds, 1), "steps": recipe.STEPS[family], "batch": recipe.BATCH,
           "lr": recipe.LR, "warmup": recipe.WARMUP, "dense_weight": recipe.DENSE_WEIGHT,
           "zoom": list(recipe.ZOOM), "train_frames": len(images),
           "torch": torch.__version__, "history": history})
    return out


def text_stage(family: str, images: np.ndarray, truths: list, holdout: tuple, source: Path,
               out_root: Path | None = None) -> None:
    """The second stage (recipe.TEXT_STAGE) on the first stage's weights in ``source``: the text tower alone
    (finetune's text_only), with caption noise and without the patch objective (the patch tokens are frozen).
    Its log is added to the first stage's as ``text_stage``; it is short, so it saves no --progress checkpoints."""
    from export.checkpoint import load_checkpoint

    stage = recipe.TEXT_STAGE[family]
    ckpt = load_checkpoint(str(source))
    data = _pairs(images, truths)  # no masks: the patch tokens are frozen
    cfg = TrainConfig(steps=int(stage["steps"]), batch=recipe.BATCH, lr=float(stage["lr"]), warmup=recipe.WARMUP,
                      seed=recipe.SEED, eval_every=100, threads=2, text_only=True, text_noise=float(stage["noise"]))
    history, seconds = _fit(family, ckpt.model, ckpt.tokenizer, data, cfg, holdout, None, " text stage")
    log = json.loads((source / "training_log.json").read_text())
    log["text_stage"] = {"train_seconds": round(seconds, 1), **stage, "batch": recipe.BATCH,
                         "warmup": recipe.WARMUP, "dense_weight": 0.0, "history": history}
    _save(_out(family, out_root), family, ckpt.model, ckpt.tokenizer, log)


def _check_first_stage(parser: argparse.ArgumentParser, family: str, folder: Path) -> None:
    """--text-stage-from: first-stage weights of a family that has a text stage, and not already through it."""
    if family not in recipe.TEXT_STAGE:
        parser.error(f"--text-stage-from: demo-{family} has no text stage (recipe.TEXT_STAGE); use --family "
                     f"{' or '.join(recipe.TEXT_STAGE)}.")
    log = folder / "training_log.json"
    if not log.is_file():
        parser.error(f"--text-stage-from {folder}: no training_log.json; give the demo-F folder of a run with "
                     "--first-stage-only.")
    if "text_stage" in json.loads(log.read_text()):
        parser.error(f"--text-stage-from {folder}: these weights already had the text stage; give first-stage "
                     "weights (a run with --first-stage-only), or retrain both stages without the option.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--family", choices=(*recipe.FAMILIES, "both"), default="both")
    parser.add_argument("--progress", type=Path, help="also save a checkpoint here at every evaluation")
    parser.add_argument("--out", type=Path, help="write the models here (default: export/demo_models/demo-*)")
    stages = parser.add_mutually_exclusive_group()
    stages.add_argument("--first-stage-only", action="store_true", help="skip the text stage (recipe.TEXT_STAGE)")
    stages.add_argument("--text-stage-from", type=Path, metavar="DIR",
                        help="run only the text stage of --family, on first-stage weights in DIR (written by a run "
                        "with --first-stage-only)")
    args = parser.parse_args(argv)
    families = recipe.FAMILIES if args.family == "both" else (args.family,)
    if args.text_stage_from is not None:
        if len(families) != 1:
            parser.error("--text-stage-from needs one --family.")
        _check_first_stage(parser, families[0], args.text_stage_from)
    spec = recipe.image_spec("clip")  # both families train on the same squashed frames
    t = time.perf_counter()
    images, truths, masks = render_groups(recipe.TRAIN, recipe.TRAIN_PARTS, spec, zoom=recipe.ZOOM)
    holdout = render_groups(recipe.HOLDOUT, recipe.HOLDOUT_FRAMES // 6, spec, zoom=recipe.ZOOM)[:2]
    print(f"rendered {len(images)} + {len(holdout[1])} frames in {time.perf_counter() - t:.0f} s", flush=True)
    for family in families:
        first = args.text_stage_from or train_family(family, images, truths, masks, holdout, args.progress, args.out)
        if family in recipe.TEXT_STAGE and not args.first_stage_only:
            text_stage(family, images, truths, holdout, first, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
