"""Glue between the ``finetune`` CLI and export.finetune: data, model, eval, save."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.bundle import Family, ImageSpec
from edge.errors import ConfigError
from edge.prompts import PromptSet
from edge.sim import parse_sim_url
from export.captions import DEMO_PROMPTS, caption_corpus, caption_for
from export.checkpoint import load_checkpoint
from export.checkpoint_build import model_config, preprocessor_config, save_checkpoint, train_tokenizer
from export.finetune import PairData, TrainConfig, folder_pairs, init_logits, train, zero_shot_eval
from export.sim_data import render_frames, render_views


def _sim_pairs(url: str, count: int, spec: ImageSpec, zoom: tuple[float, float]) -> tuple[PairData, list[Any]]:
    images, truths, masks = render_views(parse_sim_url(url), count, spec, zoom)
    from export.demo_models.train import pair_label

    return PairData(images, [pair_label(t) for t in truths], lambda i, rng: caption_for(truths[i], rng),
                    masks=masks), truths


def _fresh(family: Family, labels: list[str], batch: int, captions: list[str]) -> tuple[Any, Any, ImageSpec]:
    from transformers import CLIPModel, SiglipModel

    from export.demo_models import recipe

    tok = train_tokenizer(captions, family, recipe.SIZES.vocab_size, recipe.SIZES.context_length)
    model = (CLIPModel if family == "clip" else SiglipModel)(model_config(family, recipe.SIZES, tok))
    init_logits(model, family, labels, batch)
    return model, tok, recipe.image_spec(family)


def finetune_from_args(args: argparse.Namespace) -> Path:
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        model, tok, spec, family = ckpt.model, ckpt.tokenizer, ckpt.image, ckpt.family
    else:
        family = args.init
        from export.demo_models import recipe

        spec = recipe.image_spec(family)
    if args.data.startswith("sim://"):
        data, truths = _sim_pairs(args.data, args.frames, spec, args.zoom)
        corpus = caption_corpus(truths, 4, args.seed)
    else:
        data = folder_pairs(Path(args.data), spec)
        corpus = [data.caption(i, None) for i in range(len(data.images))]  # type: ignore[arg-type]
    if args.dense_weight > 0 and (data.masks is None or not data.masks.any()):
        raise ConfigError(f"--dense-weight: {args.data} has no defect masks; add a 'mask' (an image, white where the "
                          "defect is) to the lines of captions.jsonl, or train with --dense-weight 0.")
    if len(data.images) < 2:
        raise ConfigError(f"{args.data}: {len(data.images)} image(s); contrastive training needs at least 2.")
    if not args.checkpoint:
        model, tok, spec = _fresh(family, data.labels, args.batch, corpus)
    evaluate = None
    if args.eval_url:
        hold_images, hold_truths = render_frames(parse_sim_url(args.eval_url), 300, spec)
        prompts = PromptSet.model_validate(DEMO_PROMPTS)
        context = int(model.config.text_config.max_position_embeddings)
        evaluate = lambda: zero_shot_eval(model, family, tok, context, spec, prompts,  # noqa: E731
                                          hold_images, [t.defect for t in hold_truths])
    cfg = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup,
                      seed=args.seed, eval_every=args.eval_every, dense_weight=args.dense_weight,
                      good_label=args.good_label, text_only=args.text_only, text_noise=args.text_noise)
    train(model, family, tok, spec, data, cfg, evaluate, log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.checkpoint:  # keep the checkpoint's own image processor
        processor = json.loads((ckpt.folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    else:
        processor = preprocessor_config(family, spec.size, crop=False)
    save_checkpoint(args.out, model.eval(), tok, processor)
    print(f"wrote {args.out}")
    return Path(args.out)
