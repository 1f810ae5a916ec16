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
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from edge.bundle import Family, ImageSpec
from edge.errors import ConfigError
from edge.metrics import zero_shot_report
from edge.preprocess import IMAGE_SUFFIXES, load_image, normalize_constants, resize_for_model
from edge.prompts import PromptSet
from export.sim_data import mask_for_model
from export.towers import PatchSpec, TextTower, VisionTower


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
    dense_weight: float = 0.0  # > 0: also align every patch with its region's label (needs PairData.masks)
    good_label: str = "good"  # the label of patches outside a defect's mask
    dense_cover: float = 0.04  # a patch this much covered by the mask takes the image's label; less (but > 0): ignored
    text_only: bool = False  # train the text tower alone (see trainable)
    text_noise: float = 0.0  # share of captions given made-up words (see noisy_caption)
    device: str = "cpu"  # where the model trains: "cpu", "cuda", "cuda:1" (the model is moved there)
    budget_s: float | None = None  # a time budget: the step count is fixed at the end of warm-up (see train)


@dataclass
class PairData:
    """Resized frames (BGR uint8 [N, S, S, 3]) with a caption sampler and labels."""

    images: np.ndarray
    labels: list[str]  # same label = positive pair; unique labels give plain CLIP targets
    caption: Callable[[int, np.random.Generator], str]
    group_size: int = 1  # >1: consecutive runs of this many frames are drawn together
    masks: np.ndarray | None = None  # uint8 [N, S, S]: where each image's defect is (255 = covered), for dense loss


def trainable(model: Any, text_only: bool) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters a run trains. ``text_only`` freezes the image tower, the temperature and the bias: the
    image embeddings and patch tokens stay bit for bit what they were, so a good-part memory taught on them and
    every image-side measurement still hold, while the text side learns (e.g. to read operators' wording)."""
    out = []
    for name, p in model.named_parameters():
        keep = not text_only or name.startswith(("text_model.", "text_projection."))
        p.requires_grad_(keep)
        if keep:
            out.append((name, p))
    if not out:
        raise ConfigError("--text-only: this model has no text tower parameters (text_model.*, text_projection.*) "
                          "to train; train it without --text-only.")
    return out


def noisy_caption(caption: str, rng: np.random.Generator, share: float) -> str:
    """With probability ``share``, one to three made-up words (2-9 random letters) inserted at random places.

    An operator writes words the training captions never had ("an item with a crack running across it"); the
    tokenizer cuts each into pieces the tower must learn to look past. A small tower trained on short, regular
    captions does not: demo-siglip named 0 % of cracks with that prompt and 72 % with "a cracked item" (tuning
    seeds, zoomed crops around the true box). Random letters carry no label, so the caption stays true, except
    that a caption pushed past the tower's context is cut at its end (the tokenizer spells made-up words a letter
    a token): with the demo recipe's captions and share 0.5, 1.7 % of the noisy captions lost their defect word."""
    if share <= 0 or rng.random() >= share:
        return caption
    words = caption.split()
    for _ in range(int(rng.integers(1, 4))):
        size = int(rng.integers(2, 10))
        made_up = "".join(string.ascii_lowercase[int(i)] for i in rng.integers(0, len(string.ascii_lowercase), size))
        words.insert(int(rng.integers(0, len(words) + 1)), made_up)
    return " ".join(words)


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


@dataclass
class DenseBatch:
    """What the patch-level loss needs of one batch."""

    cover: torch.Tensor  # [B, P] share of each patch covered by its image's defect mask
    labels: list[str]  # [B] each image's label
    good: str  # the label of untouched patches
    threshold: float  # coverage from which a patch takes its image's label
    weight: float


def patch_targets(d: DenseBatch, classes: list[str]) -> torch.Tensor:
    """Per-patch class index [B, P]: the image's label where covered, ``good`` where untouched,
    -1 (ignored) where a mask only grazes the patch or where no good image is in the batch."""
    own = torch.tensor([classes.index(label) for label in d.labels], device=d.cover.device)[:, None].expand_as(d.cover)
    untouched = classes.index(d.good) if d.good in classes else -1
    target = torch.where(d.cover >= d.threshold, own, torch.full_like(own, untouched))
    return torch.where((d.cover > 0) & (d.cover < d.threshold), torch.full_like(target, -1), target)


def dense_loss(model: Any, family: Family, patches: torch.Tensor, txt: torch.Tensor, d: DenseBatch) -> torch.Tensor:
    """Every patch against one text embedding per class (the batch's captions of that class, averaged),
    with the family's own scoring; defect and good patches weigh half each, since defects are small."""
    classes = sorted(set(d.labels), key=lambda c: (c != d.good, c))  # good first
    per_class = torch.stack([F.normalize(txt[[i for i, lb in enumerate(d.labels) if lb == c]].mean(0), dim=0)
                             for c in classes])  # [K, D]
    target = patch_targets(d, classes)
    logits = model.logit_scale.exp().clamp(max=100) * patches @ per_class.T  # [B, P, K]
    valid = target >= 0
    if not valid.any():
        return logits.sum() * 0
    if family == "clip":
        per = F.cross_entropy(logits[valid], target[valid], reduction="none")
    else:
        signs = 2 * F.one_hot(target[valid], len(classes)).float() - 1
        per = -F.logsigmoid(signs * (logits[valid] + model.logit_bias)).sum(dim=1)
    is_good = target[valid] == (classes.index(d.good) if d.good in classes else -1)
    parts = [per[m].mean() for m in (is_good, ~is_good) if m.any()]
    return torch.stack(parts).mean()


def patch_cover(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """uint8 masks [B, S, S] (255 = covered) -> coverage per patch [B, P], row-major like the tokens."""
    cover = F.avg_pool2d(masks[:, None].float() / 255.0, patch)  # [B, 1, G, G]
    return cover.flatten(1)


def pair_loss(model: Any, family: Family, pixels: torch.Tensor, ids: torch.Tensor, same: torch.Tensor,
              dense: DenseBatch | None = None) -> torch.Tensor:
    """The contrastive loss; with ``dense``, plus the patch-level alignment that teaches the patch
    tokens where a defect is and what it is called."""
    if dense is None:
        img, txt = VisionTower(model)(pixels), TextTower(model)(ids)
    else:
        (img, patches), txt = VisionTower(model, PatchSpec())(pixels), TextTower(model)(ids)
    if family == "clip":
        loss = clip_loss(img, txt, model.logit_scale, same)
    else:
        loss = siglip_loss(img, txt, model.logit_scale, model.logit_bias, same)
    if dense is None:
        return loss
    return loss + dense.weight * dense_loss(model, family, patches, txt, dense)


def positive_share(labels: list[str], batch: int) -> float:
    """The share of positive (same-label) pairs in a batch of ``batch`` drawn from ``labels``: the sum of squared
    label frequencies, but at least 1/B, since each image's own pair is positive. Six equally common labels (good +
    five defects, as the recipe's counterfactual groups) give 1/6; unique captions (plain CLIP pairs) give 1/B."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    return max(float(((counts / counts.sum()) ** 2).sum()), 1 / max(1, min(batch, len(labels))))


def init_logits(model: Any, family: Family, labels: list[str], batch: int) -> None:
    """Temperature and bias of a model trained from scratch.

    CLIP: 1/0.07, as its paper. SigLIP: t = 10 as its paper, but the bias at the log-odds of a positive pair in
    these batches, log(p / (1 - p)), instead of the paper's -10, which was set for one positive in 32k pairs.
    AdamW moves a scalar by about the learning rate per step, so from -10 the bias could not travel far (-9.8
    after 4000 steps at 2e-4): every same-label pair then needs a cosine near 1 to score positive, and the demo
    tower learnt about three times slower (hold-out AUROC 0.48 vs 0.77 after 500 steps, recipe seeds)."""
    with torch.no_grad():
        if family == "siglip":
            p = min(positive_share(labels, batch), 1 - 1e-6)
            model.logit_scale.fill_(math.log(10.0))
            model.logit_bias.fill_(math.log(p / (1 - p)))
        else:
            model.logit_scale.fill_(math.log(1 / 0.07))


def device_problem(device: str) -> str | None:
    """Why training cannot run on ``device`` here (with the fix), or None. :func:`train` refuses on it, and callers
    that render or load data first check it before that work."""
    try:
        where = torch.device(device)
    except (RuntimeError, ValueError):
        return "not a device; give cpu, cuda or cuda:N."
    if where.type not in ("cpu", "cuda"):
        return f"{where.type} is not supported for training here; give cpu, cuda or cuda:N."
    if where.type == "cuda":
        if not torch.cuda.is_available():
            return "this PyTorch sees no CUDA GPU; train with --device cpu (slower)."
        if where.index is not None and where.index >= torch.cuda.device_count():
            return f"this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0; give cuda:0."
    return None


def _lr_at(step: int, cfg: TrainConfig, steps: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def steps_within(cfg: TrainConfig, seconds_so_far: float, steps_so_far: int, eval_seconds: float = 0.0) -> int:
    """The run's step count under ``cfg.budget_s``, from the time per step measured so far (warm-up).

    The cosine schedule needs its length before it starts to decay, so a time budget is turned into steps once,
    at the end of warm-up; the speed leaves out the evaluations run so far (``eval_seconds``, counted in the time
    spent), and 5 % of the rest is kept for those to come. Never more than ``cfg.steps``, never fewer than the
    steps already taken plus one."""
    if cfg.budget_s is None:
        return cfg.steps
    per_step = max(0.0, seconds_so_far - eval_seconds) / max(1, steps_so_far)
    more = int(0.95 * max(0.0, cfg.budget_s - seconds_so_far) / max(per_step, 1e-9))
    return max(steps_so_far + 1, min(cfg.steps, steps_so_far + more))


def to_pixels(images: torch.Tensor, spec: ImageSpec) -> torch.Tensor:
    """BGR uint8 [B, S, S, 3] -> ``pixel_values`` [B, 3, S, S] float32 where the images are (on a GPU: there),
    with edge.preprocess's own constants, so that it equals :func:`edge.preprocess.normalize`. A batch of 120
    frames costs ~130 ms to normalise on two CPU cores, far more than a small model's step on a GPU."""
    scale, bias = (torch.from_numpy(c).to(images.device) for c in normalize_constants(spec))
    x = images.float() * scale + bias
    return x.permute(0, 3, 1, 2).flip(1).contiguous()


def _batch(data: PairData, spec: ImageSpec, tokenizer: Any, context: int, size: int,
           rng: np.random.Generator, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """One batch of whole groups: (images uint8 [B, S, S, 3], token ids, same-label matrix, indices)."""
    g = data.group_size
    groups = rng.choice(len(data.images) // g, size=min(max(1, size // g), len(data.images) // g),
                        replace=False)
    idx = (groups[:, None] * g + np.arange(g)[None, :]).reshape(-1)
    images = torch.from_numpy(np.ascontiguousarray(data.images[idx]))
    captions = [noisy_caption(data.caption(int(i), rng), rng, noise) for i in idx]
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=context,
                    return_tensors="pt")["input_ids"]
    labels = [data.labels[int(i)] for i in idx]
    same = torch.tensor([[a == b for b in labels] for a in labels], dtype=torch.float32)
    return images, ids, same, idx


def zero_shot_eval(model: Any, family: Family, tokenizer: Any, context: int, spec: ImageSpec,
                   prompts: PromptSet, images: np.ndarray, truth: list[str]) -> dict[str, object]:
    """Held-out zero-shot accuracy with a prompt set, computed in PyTorch."""
    from edge.scoring import category_probs, l2_normalize

    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        cats = []
        for c in prompts.categories:
            ids = tokenizer(prompts.texts(c), padding="max_length", truncation=True,
                            max_length=context, return_tensors="pt")["input_ids"]
            cats.append(l2_normalize(TextTower(model)(ids.to(device)).mean(0).cpu().numpy()))
        embeds = np.concatenate([VisionTower(model)(to_pixels(torch.from_numpy(np.array(
            images[i:i + 64])).to(device), spec)).cpu().numpy() for i in range(0, len(images), 64)])
    scale = float(model.logit_scale.exp().item())
    bias = float(model.logit_bias.item()) if family == "siglip" else None
    probs = category_probs(embeds, np.stack(cats), family, scale, bias)
    names = [c.name for c in prompts.categories]
    return zero_shot_report(probs, names, [c.ok for c in prompts.categories], truth)


def train(model: Any, family: Family, tokenizer: Any, spec: ImageSpec, data: PairData,
          cfg: TrainConfig, evaluate: Callable[[], dict[str, object]] | None = None,
          log: Callable[[str], None] = print) -> list[dict[str, float]]:
    """Train in place on ``cfg.device`` (the model stays there); log loss and held-out accuracy every
    ``eval_every`` steps. With ``cfg.budget_s`` the run stops within about that many seconds: its length is
    set at the end of warm-up (:func:`steps_within`) and logged."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.budget_s is not None and cfg.warmup < 1:
        raise ConfigError("a time budget needs a warm-up of at least 1 step (its speed sets the run's length).")
    problem = device_problem(cfg.device)
    if problem:
        raise ConfigError(f"--device {cfg.device}: {problem}")
    device = torch.device(cfg.device)
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    context = int(model.config.text_config.max_position_embeddings)
    params = trainable(model, cfg.text_only)
    decay = [p for n, p in params if p.ndim >= 2]
    rest = [p for n, p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)
    history, losses, start = [], [], time.perf_counter()
    steps, step, eval_seconds = cfg.steps, 0, 0.0
    while step < steps:
        if step == cfg.warmup and cfg.budget_s is not None:
            steps = steps_within(cfg, time.perf_counter() - start, step, eval_seconds)
            log(json.dumps({"budget_s": cfg.budget_s, "steps": steps}))
        model.train()
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg, steps)
        images, ids, same, idx = _batch(data, spec, tokenizer, context, cfg.batch, rng, cfg.text_noise)
        pixels, ids, same = to_pixels(images.to(device), spec), ids.to(device), same.to(device)
        dense = None
        if cfg.dense_weight > 0 and data.masks is not None:
            cover = patch_cover(torch.from_numpy(np.asarray(data.masks[idx])).to(device),
                                int(model.config.vision_config.patch_size))
            dense = DenseBatch(cover, [data.labels[int(i)] for i in idx], cfg.good_label, cfg.dense_cover,
                               cfg.dense_weight)
        loss = pair_loss(model, family, pixels, ids, same, dense)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        opt.step()
        losses.append(float(loss.item()))
        step += 1
        if step % cfg.eval_every == 0 or step == steps:
            row = {"step": step, "loss": float(np.mean(losses[-cfg.eval_every:])),
                   "seconds": round(time.perf_counter() - start, 1)}
            if evaluate is not None:
                t = time.perf_counter()
                rep = evaluate()
                eval_seconds += time.perf_counter() - t
                row.update({k: float(v) for k, v in rep.items()  # the evaluator's numbers, whatever it measures
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
            history.append(row)
            log(json.dumps(row))
    return history


def folder_pairs(folder: Path, spec: ImageSpec) -> PairData:
    """Images + ``captions.jsonl`` ({"image", "caption", optional "label" and "mask"}) from a folder; a mask is a
    greyscale image, white where the defect is, for the dense objective."""
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
    frames = [load_image(folder / r["image"]) for r in rows]
    images = np.stack([resize_for_model(f, spec) for f in frames])
    captions = [str(r["caption"]) for r in rows]
    labels = [str(r.get("label", r["caption"])) for r in rows]
    masks = None
    if any(r.get("mask") for r in rows):  # the dense objective's regions (edge-inspect sim --out writes them)
        masks = np.stack([_mask(folder, r, f.shape[:2], spec) for r, f in zip(rows, frames)])
    return PairData(images=images, labels=labels, caption=lambda i, _rng: captions[i], masks=masks)


def _mask(folder: Path, row: dict[str, Any], shape: tuple[int, ...], spec: ImageSpec) -> np.ndarray:
    if not row.get("mask"):
        return mask_for_model(None, (0, 0, shape[1], shape[0]), spec)
    path = folder / str(row["mask"])
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.shape != shape:
        raise ConfigError(f"{path}: the mask of {row['image']} is {'unreadable' if mask is None else 'another size'}; "
                          "a mask is a greyscale image of the same size, white where the defect is.")
    return mask_for_model(mask > 127, (0, 0, shape[1], shape[0]), spec)
