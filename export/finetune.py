"""Contrastive training of CLIPModel (softmax loss) and SiglipModel (sigmoid loss).

Users adapt a real checkpoint to their parts with it; the project trains its demo models
with it. Two things measured on the simulated line shape the defaults (DESIGN.md): with
few defect kinds a batch holds many true pairs, so pairs of the same label are positives
(soft targets) rather than negatives; and a 50-step warm-up at 1e-4 avoids the collapse to
uniform logits that 5e-4 without warm-up produced.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edge.bundle import Family, ImageSpec
from edge.errors import ConfigError
from edge.metrics import zero_shot_report
from edge.preprocess import IMAGE_SUFFIXES, load_image, normalize, resize_for_model
from edge.prompts import PromptSet
from export.towers import TextTower, VisionTower


@dataclass
class TrainConfig:
    steps: int = 600
    batch: int = 32
    lr: float = 1e-4
    warmup: int = 50
    weight_decay: float = 0.05
    seed: int = 0
    eval_every: int = 100
    threads: int | None = None


@dataclass
class PairData:
    """Resized frames (BGR uint8 [N, S, S, 3]) with a caption sampler and labels."""

    images: np.ndarray
    labels: list[str]  # same label = positive pair; unique labels give plain CLIP targets
    caption: Callable[[int, np.random.Generator], str]
    group_size: int = 1  # >1: consecutive runs of this many frames are drawn together


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Symmetric softmax contrastive loss with soft targets over same-label pairs."""
    logits = scale.exp().clamp(max=100) * img @ txt.T  # [B, B]
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                same: torch.Tensor) -> torch.Tensor:
    """Pairwise sigmoid loss (Zhai et al. 2023) with learnable temperature and bias."""
    logits = scale.exp() * img @ txt.T + bias  # [B, B]
    signs = 2 * same - 1
    return -F.logsigmoid(signs * logits).sum() / img.shape[0]


def pair_loss(model: Any, family: Family, pixels: torch.Tensor, ids: torch.Tensor,
              same: torch.Tensor) -> torch.Tensor:
    img, txt = VisionTower(model)(pixels), TextTower(model)(ids)
    if family == "clip":
        return clip_loss(img, txt, model.logit_scale, same)
    return siglip_loss(img, txt, model.logit_scale, model.logit_bias, same)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _batch(data: PairData, spec: ImageSpec, tokenizer: Any, context: int, size: int,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = data.group_size
    groups = rng.choice(len(data.images) // g, size=min(max(1, size // g), len(data.images) // g),
                        replace=False)
    idx = (groups[:, None] * g + np.arange(g)[None, :]).reshape(-1)
    pixels = torch.from_numpy(normalize(data.images[idx], spec))
    captions = [data.caption(int(i), rng) for i in idx]
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=context,
                    return_tensors="pt")["input_ids"]
    labels = [data.labels[int(i)] for i in idx]
    same = torch.tensor([[a == b for b in labels] for a in labels], dtype=torch.float32)
    return pixels, ids, same


def zero_shot_eval(model: Any, family: Family, tokenizer: Any, context: int, spec: ImageSpec,
                   prompts: PromptSet, images: np.ndarray, truth: list[str]) -> dict[str, object]:
    """Held-out zero-shot accuracy with a prompt set, computed in PyTorch."""
    from edge.scoring import category_probs, l2_normalize

    model.eval()
    with torch.no_grad():
        cats = []
        for c in prompts.categories:
            ids = tokenizer(prompts.texts(c), padding="max_length", truncation=True,
                            max_length=context, return_tensors="pt")["input_ids"]
            cats.append(l2_normalize(TextTower(model)(ids).mean(0).numpy()))
        embeds = np.concatenate([VisionTower(model)(torch.from_numpy(normalize(images[i:i + 64], spec)))
                                 .numpy() for i in range(0, len(images), 64)])
    scale = float(model.logit_scale.exp().item())
    bias = float(model.logit_bias.item()) if family == "siglip" else None
    probs = category_probs(embeds, np.stack(cats), family, scale, bias)
    names = [c.name for c in prompts.categories]
    return zero_shot_report(probs, names, [c.ok for c in prompts.categories], truth)


def train(model: Any, family: Family, tokenizer: Any, spec: ImageSpec, data: PairData,
          cfg: TrainConfig, evaluate: Callable[[], dict[str, object]] | None = None,
          log: Callable[[str], None] = print) -> list[dict[str, float]]:
    """Train in place; log loss and held-out accuracy every ``eval_every`` steps."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    context = int(model.config.text_config.max_position_embeddings)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)
    history, losses, start = [], [], time.perf_counter()
    for step in range(cfg.steps):
        model.train()
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        pixels, ids, same = _batch(data, spec, tokenizer, context, cfg.batch, rng)
        loss = pair_loss(model, family, pixels, ids, same)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.item()))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "loss": float(np.mean(losses[-cfg.eval_every:])),
                   "seconds": round(time.perf_counter() - start, 1)}
            if evaluate is not None:
                rep = evaluate()
                row.update({k: float(rep[k]) for k in ("top1", "defect_type_top1", "auroc_good_vs_defect")})  # type: ignore[arg-type]
            history.append(row)
            log(json.dumps(row))
    return history


def folder_pairs(folder: Path, spec: ImageSpec) -> PairData:
    """Images + ``captions.jsonl`` ({"image", "caption", optional "label"}) from a folder."""
    index = folder / "captions.jsonl"
    if not folder.is_dir() or not index.is_file():
        raise ConfigError(
            f"{folder}: no captions.jsonl; a training folder holds images and a captions.jsonl "
            'with one {"image": "file.png", "caption": "..."} per line.'
        )
    rows = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise ConfigError(f"{index}: empty; add one line per image.")
    missing = [r["image"] for r in rows if not (folder / r["image"]).is_file()]
    if missing:
        raise ConfigError(
            f"{index}: {len(missing)} caption(s) name missing images, first '{missing[0]}'; "
            "fix the paths or remove those lines.")
    bad = [r["image"] for r in rows if Path(r["image"]).suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise ConfigError(f"{index}: '{bad[0]}' is not an image file name; use PNG or JPEG files.")
    images = np.stack([resize_for_model(load_image(folder / r["image"]), spec) for r in rows])
    captions = [str(r["caption"]) for r in rows]
    labels = [str(r.get("label", r["caption"])) for r in rows]
    return PairData(images=images, labels=labels, caption=lambda i, _rng: captions[i])
