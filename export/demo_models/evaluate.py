"""Measure the demo models and write their card: ``python -m export.demo_models.evaluate``.

Held-out frames (another simulator seed) are scored with the demo prompt set, worded
unlike the training captions, twice: in PyTorch, and through the exported ONNX bundle with
the runtime's own code (preprocessing, tokenizer, ONNX Runtime, prompt ensembling). The
two must agree; both go on the card, with the confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import Bundle, Family
from edge.config import CameraConfig, TileConfig
from edge.errors import ConfigError
from edge.inspect.frames import cut, frame_rows
from edge.inspect.prompt_state import text_embeddings
from edge.metrics import format_confusion, zero_shot_report
from edge.model import ZeroShotModel
from edge.preprocess import to_pixel_values
from edge.prompts import PromptSet
from edge.scoring import category_probs, l2_normalize
from export.bundle_export import ExportOptions, bundle_from_checkpoint
from export.captions import DEMO_PROMPTS
from export.checkpoint import load_checkpoint
from export.demo_models import recipe
from export.sim_data import raw_frames

CARD_JSON = recipe.HERE / "card.json"
CARD_MD = recipe.HERE / "README.md"


EmbedFn = Callable[[list[np.ndarray]], np.ndarray]  # BGR frames -> unit embeddings [N, D]

DEMO_TILES = TileConfig(rows=2, cols=2, overlap=0.25, include_full=True)  # the text-only tables and the mixed line
# the single-product lines, as ./run demo
STATION_TILES = TileConfig.model_validate(recipe.STATION_TILES)  # include_full: True by default
STATION_VIEW = CameraConfig(name="card", source="card", tiles=STATION_TILES)  # the card's and tuning's product lines


def frame_probs(embed: EmbedFn, texts: np.ndarray, family: Family, scale: float, bias: float | None,
                frames: list[np.ndarray], tiles: TileConfig | None) -> np.ndarray:
    """Per-frame category scores [N, C], max over the service's tiles when ``tiles`` is set (the service's own
    cutting and crop-to-frame reduction, so only the runtime differs between PyTorch and the bundle)."""
    out = []
    for start in range(0, len(frames), 16):
        chunk = frames[start : start + 16]
        crops, cuts = cut(chunk, [tiles] * len(chunk))
        out.append(frame_rows(category_probs(embed(crops), texts, family, scale, bias), [len(t) for t in cuts]))
    return np.concatenate(out)


def _torch_side(ckpt: Any, prompts: PromptSet) -> tuple[EmbedFn, np.ndarray, float, float | None]:
    import torch

    from export.towers import TextTower, VisionTower

    vision, text = VisionTower(ckpt.model).eval(), TextTower(ckpt.model).eval()

    def embed(frames: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return vision(torch.from_numpy(to_pixel_values(frames, ckpt.image))).numpy()

    def embed_texts(texts: list[str]) -> np.ndarray:
        ids = ckpt.tokenizer(texts, padding="max_length", truncation=True,
                             max_length=ckpt.text.context_length, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return text(ids).numpy()

    cats = np.stack([l2_normalize(embed_texts(prompts.texts(c)).mean(axis=0)) for c in prompts.categories])
    bias = float(ckpt.model.logit_bias.item()) if ckpt.family == "siglip" else None
    return embed, cats, float(ckpt.model.logit_scale.exp().item()), bias


def reports(embed: EmbedFn, texts: np.ndarray, family: Family, scale: float, bias: float | None,
            prompts: PromptSet, frames: list[np.ndarray], truth: list[str]) -> dict[str, Any]:
    names, ok = [c.name for c in prompts.categories], [c.ok for c in prompts.categories]
    out = {}
    for mode, tiles in (("whole", None), ("tiled", DEMO_TILES)):
        probs = frame_probs(embed, texts, family, scale, bias, frames, tiles)
        out[mode] = zero_shot_report(probs, names, ok, truth)
        out[mode]["top"] = [names[i] for i in probs.argmax(axis=1)]
    return out


def evaluate_family(family: str, frames: list[np.ndarray], truth: list[str], prompts: PromptSet
                    ) -> dict[str, Any]:
    folder = recipe.folder(family)
    ckpt = load_checkpoint(str(folder))
    options = ExportOptions(name=f"demo-{family}")
    # PyTorch sees the frames resized as the bundle resizes them: the comparison is of runtimes, not of resampling
    ckpt.image = ckpt.image.model_copy(update={"resample": options.resample})
    embed, texts, scale, bias = _torch_side(ckpt, prompts)
    torch_rep = reports(embed, texts, ckpt.family, scale, bias, prompts, frames, truth)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        bundle_from_checkpoint(str(folder), bundle, options, quiet=True)
        with ZeroShotModel(Bundle.open(bundle)) as model:  # the runtime path, as the service runs it
            m = model.bundle.manifest
            onnx_rep = reports(model.embed_images, text_embeddings(model, prompts), m.family,
                               m.logit_scale, m.logit_bias, prompts, frames, truth)
        lines = evaluate_lines(bundle, lambda s: print(f"demo-{family} {s}", file=sys.stderr, flush=True))
    agreement = {mode: float(np.mean([a == b for a, b in zip(torch_rep[mode].pop("top"),
                                                             onnx_rep[mode].pop("top"))]))
                 for mode in ("whole", "tiled")}
    log = json.loads((folder / "training_log.json").read_text())
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return {"family": family, "pytorch": torch_rep, "onnx": onnx_rep, "top1_agreement": agreement,
            "lines": lines, "train_seconds": log["train_seconds"], "train_steps": log["steps"],
            "train_batch": log["batch"], "train_frames": log["train_frames"], "gpu": log.get("gpu"),
            "train_dense_weight": log["dense_weight"], "train_seed": log.get("seed", recipe.SEED),
            "text_stage_seconds": log.get("text_stage", {}).get("train_seconds"),
            "text_stage_steps": log.get("text_stage", {}).get("steps"),
            "weights_mb": round(weights / 1e6, 2),
            "params_m": round(sum(p.numel() for p in ckpt.model.parameters()) / 1e6, 2)}


LINE_FRAMES = 100  # per single-product line
LINES_SEED, GOOD_SEED, MIXED_SEED = 4100, 4200, 4300  # never used in training or tuning (tune.py: 5100, 5200, 5300)
GOOD_PARTS = 16  # the memory's good parts on every line
DEMO_LINE = ("steel-plate", (101, 102), 40, 900)  # ./run demo: product, camera seeds, frames each, good-part seed
MEASURES = ("auroc", "accuracy", "escapes", "false_rejects", "type_top1", "localisation")


def station_measures(model: ZeroShotModel, samples: list[Any], good: list[np.ndarray] | None,
                     view: CameraConfig, folder: Path) -> dict[str, Any]:
    """``edge-inspect evaluate``'s measures: the station's own path (tiles, memory, two stages, decisions)."""
    import cv2

    from edge.evaluate import evaluate
    from edge.inspect.prompt_state import build_state

    prompts = PromptSet.model_validate(DEMO_PROMPTS)
    roots: tuple[Path, ...] = ()
    if good is not None:  # written to ``folder``, as an operator's good folder
        folder.mkdir()
        for i, image in enumerate(good):
            cv2.imwrite(str(folder / f"good{i:03d}.png"), image)
        prompts, roots = prompts.model_copy(update={"good": str(folder)}), (folder,)
    state = build_state(model, prompts, folder.parent, None, "card", roots, [view])
    m = evaluate(model, state, samples, view).measures
    return {k: m[k] for k in (*MEASURES, "frames", "uncertain", "located_of")}


def product_line(model: ZeroShotModel, product: str, seeds: tuple[int, int], frames: int, folder: Path
                 ) -> dict[str, Any]:
    """One single-product line: ``frames`` frames of seed ``seeds[0]`` (half defective, 10 % hard), a memory of
    GOOD_PARTS good parts of seed ``seeds[1]``, through the station's path with STATION_TILES (card and tuning)."""
    from edge.evaluate import simulated

    samples = simulated(f"sim://line?seed={seeds[0]}&product={product}&defect_rate=0.5&hard=0.1", frames)
    return station_measures(model, samples, good_parts(product, seeds[1]), STATION_VIEW, folder)


def good_parts(product: str, seed: int) -> list[np.ndarray]:
    """The GOOD_PARTS good frames a line's memory is taught (seed apart from the line's own)."""
    from edge.sim import LineSimulator

    line = LineSimulator(seed=seed, product=product, defect_rate=0.0)
    return [line.frame(i).image for i in range(GOOD_PARTS)]


def mixed_line(model: ZeroShotModel, seed: int, frames: int, folder: Path, windows: bool = False) -> dict[str, Any]:
    """The mixed line (``product=random``), text only: 2x2 tiles + whole, with ``windows`` a 3x3 grid as well."""
    from edge.evaluate import simulated

    tiles = DEMO_TILES.model_copy(update={"windows": [3]}) if windows else DEMO_TILES
    samples = simulated(f"sim://line?seed={seed}&product=random&defect_rate=0.5&hard=0.1", frames)
    return station_measures(model, samples, None, CameraConfig(name="card", source="card", tiles=tiles), folder)


def line_summary(name: str, m: dict[str, Any]) -> str:
    return f"{name}: " + ", ".join(f"{k} {_fmt(m[k])}" for k in MEASURES)


def mean_of(products: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Each measure's mean over the products that have it (type top-1 and localisation need a detected defect, an
    AUROC both good and defective frames: a few frames of ``tune --frames`` may have neither)."""
    out: dict[str, float | None] = {}
    for k in MEASURES:
        values = [v[k] for v in products.values() if v[k] is not None and not math.isnan(v[k])]
        out[k] = float(np.mean(values)) if values else None
    return out


def evaluate_lines(bundle: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    """Single-product lines with 16 good parts, the mixed line with text only, and the demo's own line."""
    from edge.evaluate import simulated
    from edge.sim.products import CATALOGUE

    out: dict[str, Any] = {"products": {}}
    with tempfile.TemporaryDirectory() as tmp, ZeroShotModel(Bundle.open(bundle)) as model:
        root = Path(tmp)
        for product in CATALOGUE:
            out["products"][product] = product_line(model, product, (LINES_SEED, GOOD_SEED), LINE_FRAMES,
                                                    root / product)
            progress(line_summary(product, out["products"][product]))
        out["mixed"] = mixed_line(model, MIXED_SEED, 2 * LINE_FRAMES, root / "mixed")
        out["mixed_windows"] = mixed_line(model, MIXED_SEED, 2 * LINE_FRAMES, root / "mixed", windows=True)
        progress(line_summary("mixed", out["mixed"]))
        product, seeds, frames, good_seed = DEMO_LINE
        demo = [s for seed in seeds for s in simulated(f"sim://line?seed={seed}&product={product}", frames)]
        out["demo"] = station_measures(model, demo, good_parts(product, good_seed), STATION_VIEW, root / "demo")
        progress(line_summary("demo line", out["demo"]))
    values = list(out["products"].values())
    out["mean"] = mean_of(out["products"])
    out["worst"] = {k: float(min(v[k] for v in values if v[k] is not None)) for k in ("auroc", "accuracy")}
    return out


def _fmt(x: object) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.3f}"
    return str(x)


def _pct(x: object) -> str:
    return f"{100 * x:.1f} %" if isinstance(x, float) and not math.isnan(x) else "-"


def measures_row(name: str, m: dict[str, Any], good: str | None = None) -> str:
    """One line's measures as a markdown row (the card's and ``tune``'s tables); ``good``: its good-parts cell."""
    cells = [name, *([good] if good is not None else []), _fmt(m["auroc"]),
             *(_pct(m[k]) for k in ("accuracy", "escapes", "false_rejects", "type_top1", "localisation"))]
    return "| " + " | ".join(cells) + " |"


def _lines_markdown(r: dict[str, Any]) -> str:
    rows = [f"**demo-{r['family']}** (`edge-inspect evaluate`'s measures; AUROC of the anomaly score with a memory, "
            "of the text's defect score without):", "",
            "| line | good parts | AUROC | verdict accuracy | escapes | false rejects | type top-1 | localisation |",
            "|---|---|---|---|---|---|---|---|"]
    lines = r["lines"]
    rows += [measures_row(p, m, "16") for p, m in lines["products"].items()]
    rows.append(measures_row(f"**mean of {len(lines['products'])} products**", lines["mean"], "16"))
    rows.append(measures_row("mixed line (`product=random`), tiles 2x2", lines["mixed"], "none"))
    rows.append(measures_row("mixed line, tiles 2x2 + 3x3 windows", lines["mixed_windows"], "none"))
    rows.append(measures_row("`./run demo`'s line (steel-plate, 2 cameras)", lines["demo"], "16"))
    return "\n".join(rows)


def card_markdown(results: list[dict[str, Any]], frames: int, prompts: PromptSet) -> str:
    rows = []
    for r in results:
        for mode, label in (("whole", "whole frame"), ("tiled", "tiles 2x2 + whole")):
            for runtime in ("pytorch", "onnx"):
                m = r[runtime][mode]
                rows.append(f"| demo-{r['family']} | {label} | {runtime} | {_fmt(m['auroc_good_vs_defect'])} | "
                            f"{_fmt(m['defect_type_top1'])} | {_fmt(m['top1'])} |")
    agree = "; ".join(f"demo-{r['family']}: {r['top1_agreement']['whole']:.3f} whole, "
                      f"{r['top1_agreement']['tiled']:.3f} tiled" for r in results)
    conf = "\n\n".join(f"**demo-{r['family']}**, tiles, ONNX bundle (rows: truth, columns: prediction):\n\n"
                       + format_confusion(np.array(r["onnx"]["tiled"]["confusion"]), r["onnx"]["tiled"]["labels"])
                       for r in results)
    sizes = "\n".join(f"| demo-{r['family']} | {r['params_m']} M | {r['weights_mb']} MB | "
                      f"{r['train_seconds'] / 60:.1f} min"
                      + (f" on an {r['gpu']}" if r.get("gpu") else " on 2 CPU cores")
                      + (f" + {r['text_stage_seconds'] / 60:.1f} min text stage"
                                                              if r.get("text_stage_seconds") else "") + " |"
                      for r in results)
    station = "\n\n".join(_lines_markdown(r) for r in results)
    prompt_lines = "\n".join(f"- {c.name}{' (ok)' if c.ok else ''}: " + "; ".join(f'"{p}"' for p in c.prompts)
                             for c in prompts.categories)
    return TEMPLATE.format(frames=frames, table="\n".join(rows), confusion=conf, sizes=sizes, agree=agree,
                           station=station, line_frames=LINE_FRAMES, lines_seed=LINES_SEED, good_seed=GOOD_SEED,
                           mixed_seed=MIXED_SEED, dense=_per_model(results, "train_dense_weight", recipe.DENSE_WEIGHT),
                           seed=_per_model(results, "train_seed", recipe.SEED),
                           templates="; ".join(f'"{t}"' for t in prompts.templates), prompts=prompt_lines,
                           steps=" and ".join(_training_run(r) for r in results),
                           groups=" or ".join(dict.fromkeys(f"{r.get('train_batch', 30) // 6} (demo-{r['family']})"
                                                            for r in results)),
                           text_stage=_text_stage_bullet(results),
                           lr=recipe.LR, warmup=recipe.WARMUP, zoom=recipe.ZOOM, sizes_cfg=recipe.SIZES,
                           parts=" and ".join(f"{r.get('train_frames', 6000) // 6} (demo-{r['family']})"
                                              for r in results),
                           text_minutes=next((f"{r['text_stage_seconds'] / 60:.1f} min" for r in results
                                              if r["family"] == "siglip" and r.get("text_stage_seconds")), "-"))


def _per_model(results: list[dict[str, Any]], key: str, default: object) -> str:
    """One value if every model's run had it ('0.5'), else each model's ('0.5 for demo-clip, 1.0 for demo-siglip');
    ``default`` for a card written before its runs' logs were read for ``key``."""
    values = {r["family"]: r.get(key, default) for r in results}
    if len(set(map(str, values.values()))) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"{v} for demo-{f}" for f, v in values.items())


def _training_run(r: dict[str, Any]) -> str:
    """'2507 steps of batch 120 on an NVIDIA H200 (demo-clip)': from the model's own training log."""
    where = f"an {r['gpu']}" if r.get("gpu") else "2 CPU cores"
    return f"{r['train_steps']} steps of batch {r.get('train_batch', 30)} on {where} (demo-{r['family']})"


def _text_stage_bullet(results: list[dict[str, Any]]) -> str:
    staged = "; ".join(f"demo-{r['family']}: {r['text_stage_steps']} steps, {r['text_stage_seconds'] / 60:.1f} min"
                       for r in results if r.get("text_stage_steps"))
    if not staged:
        return ""
    return (f"- Text stage ({staged}): from those weights, the text tower alone (image tower,\n"
            "  temperature and bias frozen, so image embeddings and patch tokens stay bit for bit as they were; no\n"
            "  patch objective), with one to three made-up words (random letters) in half of the captions, so that\n"
            "  the tower learns to look past words it never saw: an operator's own wording\n"
            "  (`export.finetune.noisy_caption`; `edge-inspect finetune --text-only --text-noise P`).\n")


TEMPLATE = """\
# Demo models: demo-clip and demo-siglip

Two small CLIP-architecture and SigLIP-architecture models trained by this project on its
simulated production line (`sim://`), so that the demo, the calibration tests and the
service tests run on a model that actually sees defects. They are **not** general-purpose
CLIP models: they know the simulator's parts, materials and defects, and the words of its
captions. This card is written by `python -m export.demo_models.evaluate`.

## How they were made
- Architecture: `{sizes_cfg}`; a ViT image tower at 224x224 with 16-pixel patches and a
  small text tower, `CLIPModel` / `SiglipModel` from transformers, saved with `save_pretrained`.
- Data: {parts} parts of `sim://line?seed=1000` (five materials, three shapes, lighting and
  pose varied; 10 % small, faint defects), each rendered six times: good, and once with each
  defect (scratch, hole/dent, crack, stain/rust, missing component). A batch holds {groups} such
  counterfactual groups, so material, shape and lighting cannot tell its pairs apart: only the
  defect can. Each view is a random window zoomed {zoom} around the defect (the scales the
  service's tiles show), squashed to 224x224 with the runtime's own preprocessing. Every time
  a frame is drawn it gets a new random caption (templates x synonyms x material x shape x
  position x size); a byte-level BPE tokenizer is trained on those captions.
- Training: `python -m export.demo_models.train` (fixed seeds; `--seed {seed}`), {steps},
  AdamW, lr {lr} with {warmup} warm-up steps and cosine decay. CLIP: symmetric
  softmax contrastive loss; SigLIP: pairwise sigmoid loss with learnable temperature and bias
  (temperature initialised at 10; the bias at the log-odds of a same-label pair in these batches,
  log(1/5), not the SigLIP paper's -10: `export.finetune.init_logits`). Pairs of the same defect kind
  are positives (soft targets).
  Dense objective (weight {dense}): the patch tokens of the vision tower are also aligned with
  their region's label, the defect's where the simulator's mask covers them and "good" elsewhere,
  which is what makes the patch tokens useful for the good-part memory and the text heat map.
  The same options are `edge-inspect finetune --dense-weight W --zoom MIN,MAX` for your images.
{text_stage}- What did not work (measured while making them): whole-frame views with random batches
  stayed at chance on defects for 300 steps (the loss learnt material and shape first);
  counterfactual groups alone did not change that; zoomed views did.

| model | parameters | weights | training time |
|---|---|---|---|
{sizes}

## Held-out accuracy
{frames} whole frames of `sim://line?seed=2000&defect_rate=0.5&hard=0.1` (a seed never used in
training), scored zero-shot with the demo prompt set (`prompts.yaml` here), whose templates
({templates}) and phrasings never occur in the training captions:

{prompts}

"whole frame" scores the 640x480 frame squashed to 224x224; "tiles 2x2 + whole" is what the
service does with `tiles: {{rows: 2, cols: 2, overlap: 0.25}}`: each category's score is its
max over the five crops. AUROC ranks frames by (best defect score - good score); defect-type
top-1 is measured on the defective frames, among the defect categories; top-1 is over all
six categories. "pytorch" runs the checkpoint in transformers; "onnx" runs the exported
bundle through the runtime (OpenCV preprocessing, `tokenizers`, ONNX Runtime, the service's
prompt ensembling).

| model | view | runtime | good-vs-defect AUROC | defect-type top-1 | top-1 (6 classes) |
|---|---|---|---|---|---|
{table}

PyTorch and ONNX top-1 agreement per frame: {agree}.

{confusion}

## As a station: `edge-inspect evaluate` on single-product lines
What a line engineer sees: the station's own decision path (3x3 tiles + whole frame, as `./run demo`; a
good-part memory of 16 good parts of the product, anomaly -> verdict, the category named from a
zoomed crop around the anomaly's box). Each product line: {line_frames} frames of
`sim://line?seed={lines_seed}&product=NAME&defect_rate=0.5&hard=0.1`, good parts from seed {good_seed};
the mixed line: 200 frames of seed {mixed_seed}, text only. Seeds never used in training or
tuning. Verdict accuracy counts `uncertain` as wrong; escapes are defects passed as ok, false
rejects good parts called ng; localisation: the box's centre lies in the true box grown by 16 px,
among detected defects.

{station}

On a second hold-out draw, to see how far these numbers move with the frames (2026-12-05, measured once with this
script's own `product_line` and `mixed_line`, not regenerated): the same 9 products and settings on seeds never used
before, lines `sim://line?seed=6100&product=NAME&defect_rate=0.5&hard=0.1` (100 frames each), good parts from seed
6200, the mixed line 200 frames of seed 6300:

| model | AUROC, 9 products: mean (worst) | accuracy | escapes | false rej. | type top-1 | loc. | mixed (+ windows) |
|---|---|---|---|---|---|---|---|
| demo-clip | 0.995 (0.988 steel-plate) | 93.8 % | 2.7 % | 1.4 % | 92.5 % | 99.0 % | 0.667 (0.747) |
| demo-siglip | 0.953 (0.913 steel-bracket) | 89.7 % | 13.8 % | 1.0 % | 84.9 % | 91.3 % | 0.668 (0.692) |

Why 3x3 tiles: the same measures with 2x2 and 3x3 tiles (+ the whole frame), on the tuning seeds (100 frames of
`sim://line?seed=5100&product=NAME&defect_rate=0.5&hard=0.1`, 16 good parts of seed 5200, mean of the 9
products; measured once on 2026-12-03, not regenerated by this script). Thin scratches (1-2 px) fade in a 2x2
tile squashed to 224 px and stay visible in a 3x3 one; the price is ten crops per frame instead of five. With
demo-siglip, localisation and type top-1 first dropped with 3x3: a defect raises its whole tile's map (the
tower's attention mixes the crop), and the box grew to the whole tile. The box now comes from each crop's map
centred on its median (`edge.inspect.memory._fuse`), which gave the last row (measured before the rule that
only crops reaching half the frame's score take part; the tables above include it). The demo-clip rows are of
its earlier 2000-step weights, the demo-siglip rows of its earlier 4000-step ones (bias from -10).

| model | view | AUROC (mean) | AUROC (worst) | verdict accuracy | escapes | false rejects | type top-1 | localisation |
|---|---|---|---|---|---|---|---|---|
| demo-clip | 2x2 + whole | 0.966 | 0.941 | 88.9 % | 9.2 % | 3.6 % | 88.1 % | 98.5 % |
| demo-clip | 3x3 + whole | 0.985 | 0.970 | 91.4 % | 4.3 % | 3.9 % | 89.3 % | 100.0 % |
| demo-siglip | 2x2 + whole | 0.927 | 0.875 | 73.7 % | 27.5 % | 0.3 % | 58.3 % | 79.7 % |
| demo-siglip | 3x3 + whole | 0.963 | 0.941 | 83.7 % | 16.6 % | 0.5 % | 52.6 % | 67.2 % |
| demo-siglip | 3x3 + whole, box from centred maps | 0.963 | 0.941 | 83.7 % | 16.6 % | 0.5 % | 60.9 % | 79.9 % |

Why 4000 steps for demo-clip (2026-12-03): its hold-out defect-type top-1 was still rising at 2000 steps. The same
tuning seeds, 3x3 tiles + whole, the current box rule, mean of the 9 products (measured once, not regenerated):

| demo-clip | AUROC (mean) | AUROC (worst) | verdict accuracy | escapes | false rejects | type top-1 | localisation |
|---|---|---|---|---|---|---|---|
| 2000 steps | 0.985 | 0.970 | 91.4 % | 4.3 % | 3.9 % | 87.6 % | 99.4 % |
| 4000 steps | 0.989 | 0.977 | 92.2 % | 4.5 % | 2.1 % | 88.2 % | 99.6 % |

On the hold-out seeds (the tables above) the 2000-step weights had: 9 products AUROC 0.990 (worst 0.977),
accuracy 94.7 %, escapes 4.5 %, false rejects 0.7 %, type top-1 85.3 %, localisation 98.9 %; `./run demo`'s line
0.974 / 92.5 % / escapes 10.5 % / type 91.2 %; the mixed line 0.625 (0.676 with windows). The longer run gains
margin on escapes and type top-1 on the product lines and loses on text alone (the mixed line, and the
whole-frame and tile rows above: 0.642 / 0.610 before), a trade, not a clear win; it was kept for the margin on
the goals that the product lines are measured by. It also lowered the mean verdict accuracy (94.7 -> 93.6 %)
and the worst product's (93.0 -> 87.0 %, cast-bracket, whose escapes went 1.9 -> 7.7 %). The choice to train
longer came from the training's own hold-out (seed 2000, the zero-shot tables' frames) and the tuning seeds;
keeping the weights was decided after seeing the tables above, so they are no longer a blind hold-out for
demo-clip: the unseen images the issue measures on are the check.

Why demo-siglip's bias starts at log(1/5) (2026-12-03): from the SigLIP paper's -10 (set for one positive in 32k
pairs; here a sixth of a batch's pairs share a label) AdamW, which moves a scalar by about the learning rate a
step, had only brought it to -9.8 after 4000 steps, so a same-label pair needed a cosine near 1 to score
positive. Started at the batch's log-odds (`export.finetune.init_logits`), the training's own hold-out (seed
2000) reached AUROC 0.77 at step 500 instead of 0.48, and after 3000 steps top-1 0.55 / defect-type 0.59 /
AUROC 0.83, against 0.46 / 0.53 / 0.64 after the earlier 4000. On the tuning seeds (100 frames of
`sim://line?seed=5100&product=NAME&defect_rate=0.5&hard=0.1`, 16 good parts of seed 5200, 3x3 tiles + whole,
the five products below; measured once, not regenerated):

| demo-siglip | AUROC (mean) | verdict accuracy | escapes | false rejects | type top-1 | localisation |
|---|---|---|---|---|---|---|
| bias from -10, 4000 steps | 0.967 | 80.0 % | 22.1 % | 0.5 % | 60.3 % | 80.8 % |
| bias from log(1/5), 3000 steps | 0.955 | 85.6 % | 17.2 % | 1.4 % | 73.8 % | 89.8 % |
| bias from log(1/5), 4500 steps (not kept) | 0.955 | 77.0 % | 27.0 % | 0.9 % | 72.3 % | 87.0 % |

(cast-bracket, cast-flange, plastic-cover, steel-bracket, steel-plate.) The AUROC fell there and rose on the
hold-out product lines (0.953 -> 0.962); escapes, type top-1 and localisation improved on both. On the hold-out
seeds the earlier weights had: 9 products AUROC 0.953 (worst 0.923), accuracy 85.4 %, escapes 17.7 %, false
rejects 0.9 %, type top-1 60.6 %, localisation 76.7 %; `./run demo`'s line 0.925 / 78.8 % / escapes 39.5 % /
false rejects 0.0 %; the mixed line 0.544, accuracy 50.0 %, escapes 5.8 % (43.5 % and 12.6 % before the text
stage). Kept for the verdict measures of the product lines; as for demo-clip, this was decided after seeing the
hold-out tables.

Longer is not better here (2026-12-03): a 4500-step run with the same init (95 min) lifted the training's own
hold-out (top-1 0.55 -> 0.57, defect-type 0.59 -> 0.61, AUROC 0.834 -> 0.833) but, at the same mean AUROC on the
tuning seeds, let far more defects through at the memory's threshold (the last row of the table above;
cast-bracket 45.6 %, cast-flange 40.4 %, steel-plate 31.6 %). By the rule written before it ran (keep only if
escapes and type top-1 both improve on the tuning seeds) it was not kept, and the hold-out was not run on it.

Why demo-siglip has a text stage (2026-12-03): it named cracks as scratches. On the tuning seeds 36 of its 42
detected cracks were called "scratch" and none "crack"; on zoomed crops around the true box (60 frames each of
three products, seed 5100) the demo's crack prompt ("an item with a crack running across it") named 0 % of the
cracks, "an item with a crack" 0 %, "a cracked item" and "a crack" 72 %: the small SigLIP text tower, which pools
one slot of a padded sequence, was thrown by words its captions never had ("item", "running across it"), while
demo-clip's read all six wordings alike (82 %). 1000 text-only steps with caption noise (lr 1e-4, {text_minutes}
on the 2 cores, the first 200 steps beside another job) made all six wordings give 72 % on cracks (85 % over the
five defects, from 71 %), and the training's own hold-out rose from top-1 0.55 / defect-type 0.59 / AUROC 0.834
to 0.64 / 0.70 / 0.885. The tuning seeds, before the hold-out was run (same products and seeds as above; the
rule, written before it ran: keep if type top-1 rises by at least 3 points, the memory's numbers do not move and
the mixed line's text-only AUROC, tuning seed 5300, falls by no more than 0.02):

| demo-siglip | AUROC | accuracy | escapes | false rejects | type top-1 | localisation | mixed 5300: AUROC / type |
|---|---|---|---|---|---|---|---|
| 3000 steps | 0.955 | 85.6 % | 17.2 % | 1.4 % | 73.8 % | 89.8 % | 0.686 / 52.5 % |
| 3000 steps + text stage (kept) | 0.955 | 85.6 % | 17.2 % | 1.4 % | 87.4 % | 89.8 % | 0.689 / 59.1 % |

`vision.onnx` is byte-identical before and after, so the memory's verdicts, escapes and boxes are too; only the
naming moved. On the hold-out (the tables above, run after the decision): type top-1 on the 9 products 68.7 ->
81.1 % (every product rose), on `./run demo`'s line 54.8 -> 77.4 %; every verdict measure of the product lines
unchanged; the mixed line (text only, where the verdict is the text's) AUROC 0.545 -> 0.532 with 2x2 tiles and
0.568 -> 0.603 with windows, false rejects 46.4 -> 76.3 %: near chance before and after.

Why the good-part memory makes 12 moved copies of each good image (2026-12-04; was 6): on the tuning seeds (the
five products above, 3x3 tiles + whole) escapes fell from 5.6 to 2.8 % for demo-clip (accuracy 90.0 -> 94.8 %,
type top-1 88.5 -> 90.3 %) and from 17.2 to 14.7 % for demo-siglip; teaching the memory takes about twice as long.

Why demo-clip was retrained on a GPU (2026-12-04): a lent NVIDIA H200 (15 minutes in all) trained four candidates
side by side, 5 minutes each (`train.py --device cuda --budget-minutes 5 --parts 3000`, frames rendered once with
`--cache`): batch 120 and batch 30 for each family, on 3000 parts instead of 1000. The training's own hold-out
(seed 2000) for demo-clip at batch 120: AUROC 0.915 -> 0.963, defect-type top-1 0.80 -> 0.83. The rule, written
before any candidate was measured: on the tuning seeds (the five products, memory defaults, and the mixed line's
seed 5300, 100 frames, 2x2, text only) a candidate qualifies if, against the shipped model, mean AUROC falls by
at most 0.005, type top-1 by at most 2 points, localisation by at most 2 points, false rejects and escapes rise by
at most 1 point, and escapes fall by 2 points, or type top-1 rises by 3 points, or the mixed line's AUROC by 0.05;
the qualifying one with the fewest escapes is kept. Measured once, not regenerated:

| candidate | AUROC | accuracy | escapes | false rejects | type top-1 | localisation | mixed 5300: AUROC |
|---|---|---|---|---|---|---|---|
| demo-clip as before: 4000 steps x 30, 2 CPU cores | 0.988 | 94.8 % | 2.8 % | 2.8 % | 90.3 % | 100.0 % | 0.674 |
| demo-clip, H200: 2507 steps x 120, 4.2 min (kept) | 0.994 | 95.6 % | 2.1 % | 1.4 % | 95.0 % | 99.3 % | 0.732 |
| demo-clip, H200: 3344 steps x 30 | 0.992 | 95.6 % | 3.2 % | 0.9 % | 94.9 % | 98.9 % | 0.702 |
| demo-siglip as before (the text stage included) | 0.960 | 88.8 % | 14.7 % | 1.4 % | 86.6 % | 87.9 % | 0.690 |
| demo-siglip, H200: 2491 steps x 120 + text stage | 0.975 | 84.0 % | 12.6 % | 0.5 % | 80.9 % | 82.3 % | 0.708 |
| demo-siglip, H200: 3155 steps x 30 + text stage | 0.961 | 85.0 % | 18.6 % | 0.9 % | 78.4 % | 78.7 % | 0.738 |

Both demo-clip candidates qualified; demo-siglip's lost type top-1 and localisation (batch 120) or let more
defects through (batch 30), so demo-siglip stays as it was. A second, 3-minute run (batch 240 and 120) reached
lower training hold-out numbers on both families and was not measured further. The hold-out tables above were
run after the decision.

Why a defect is named from a window 1.5 times its box (2026-12-04; was twice). Measured on the tuning seeds (the
five products above; `python -m export.demo_models.tune --bundle B` runs them, with the mixed line 5300, and writes
JSON; it has no option for the window: the rows below had `edge.inspect.frames.NAME_WINDOW` set by hand). A first
look with throwaway code, on the detected defects of the five products (the memory's boxes, each named from one
crop; pooled over the products): windows 1.5, 2, 3, 4 times the box named 89.7, 86.0, 81.5, 81.9 % of
demo-siglip's 243 right; averaging a mirrored crop or several windows did no better than one window. Only then was
the rule written, so it was known that 1.5 passed demo-siglip's half of it: adopt a window of 1, 1.25 or 1.5 times
the box if demo-siglip's type top-1 rises by at least 2 points and demo-clip's falls by at most 1, then measure it
again through the station's path. The next run (the same pooled code, windows 1 and 1.25 added, and demo-clip):
windows 1, 1.25, 1.5, 2 named 88.1, 87.7, 89.7, 86.0 % of demo-siglip's defects and 97.1, 97.1, 95.0, 95.0 % of
demo-clip's 279 (3 and 4 not run for demo-clip). 1 and 1.5 qualified; 1.5 was taken because demo-siglip, whose
hold-out type top-1 was short of the 85 % goal, gained most with it (chosen after seeing both; 1 did more for
demo-clip). Then the chosen window through the station's path (means of the five products); on lines with a memory
every verdict measure stays as it was (the crop only names), while without one (the mixed line, text only) the
crop also judges the frame again, so verdicts move there too:

| naming window | type top-1: demo-clip | demo-siglip | mixed 5300 (acc. / false rej. / type): demo-clip | demo-siglip |
|---|---|---|---|---|
| twice the box (before) | 95.0 % | 86.6 % | 52.0 / 78.4 / 69.4 % | 44.0 / 62.7 / 56.8 % (escapes 10.2 %) |
| 1.5 times the box (kept) | 95.0 % | 90.1 % | 54.0 / 74.5 / 69.4 % | 44.0 / 66.7 / 54.2 % (escapes 2.0 %) |

What did not bring demo-siglip's escapes near the 5 % goal (2026-12-04, the same tuning seeds, means of the five
products, measured once). The rule, written before these ran: keep a variant if escapes fall by at least 3 points,
false rejects stay at most 3 % and rise by at most 1.5 points, AUROC falls by at most 0.005, and type top-1 and
localisation by at most 2 points each. None qualified (the best, layer 3: escapes -1.7 points, AUROC -0.007; layers
2, 3: escapes -2.1, false rejects +1.9), so the memory stays as it was. Its escapes sit at 0.4-0.9 of the memory's
threshold, inside the good parts' own range: a lower threshold trades them for false rejects about one for one, and
the tower's features appear to be the limit (only the memory and its threshold were varied here, not the training):

| demo-siglip memory | AUROC | escapes | false rejects | type top-1 | localisation |
|---|---|---|---|---|---|
| patch tokens of layers 1, 2 (shipped) | 0.960 | 14.7 % | 1.4 % | 86.6 % | 87.9 % |
| layers 2, 3 | 0.955 | 12.6 % | 3.3 % | 85.9 % | 91.0 % |
| layers 1, 2, 3 | 0.956 | 13.0 % | 3.3 % | 83.9 % | 88.4 % |
| layer 3 | 0.953 | 13.0 % | 2.8 % | 88.1 % | 90.1 % |
| the last layer in the text space (`--patch-layers joint`) | 0.939 | 26.3 % | 1.9 % | 85.6 % | 92.2 % |
| each position's distance over the good parts' own there (PaDiM-like) | 0.958 | 18.2 % | 0.9 % | 83.6 % | 84.1 % |
| the same, square root of the scale | 0.958 | 15.4 % | 1.4 % | 87.0 % | 88.2 % |
| the higher of the memory's ratio and the tiles' text margin (scaled) (*) | 0.952 | 12.3 % | 3.7 % | - | - |

(The naming window of the time: twice the box. (*): the text margin in units of the good parts' own, a threshold
from both; computed from the station's scores, not run through its path.) The tiles' text margin alone ranks
demo-siglip's frames at AUROC 0.728 (demo-clip 0.877), too weak to add.

None of these qualified either, measured later (2026-12-04, the same seeds and rule, each rule written before its
run; the naming window now 1.5 times the box, so type top-1 compares with 90.1 %): a finer grid of tiles, other patch
layers, other memory settings, and two retrains on 2 CPU cores. With about 285 defective frames on the five lines,
an escape rate near 15 % has a standard error of about 2 points: the rule's 3 points ask for more than noise, but
not much more:

| demo-siglip | AUROC | escapes | false rejects | type top-1 | localisation |
|---|---|---|---|---|---|
| as shipped (layers 1, 2; 3x3 tiles + whole; memory defaults) | 0.960 | 14.7 % | 1.4 % | 90.1 % | 87.9 % |
| 4x4 tiles + whole (17 crops a frame, not 10) | 0.956 | 19.3 % | 0.5 % | 89.5 % | 94.8 % |
| layers 0, 1 (0: the patch embedding, before any block) | 0.965 | 15.8 % | 0.5 % | 90.0 % | 94.0 % |
| layers 0, 1, 2 | 0.963 | 14.0 % | 1.4 % | 90.7 % | 92.8 % |
| memory `dim: 128` (PCA; default 64) | 0.960 | 14.4 % | 1.4 % | 89.4 % | 88.9 % |
| memory `dim: null` (all 384 dimensions) | 0.957 | 14.4 % | 1.4 % | 89.1 % | 90.4 % |
| memory `neighbourhood: 3` (4 of the 5 products, then stopped) | 0.925 | 32.0 % | 0.6 % | - | - |
| retrained, patch objective's weight 1.0 (not 0.5), both stages, 47 min | 0.964 | 22.5 % | 0.5 % | 80.6 % | 88.0 % |
| retrained as shipped but `--seed 1` (not 0), both stages, 48 min | 0.960 | 17.2 % | 0.0 % | 88.6 % | 93.9 % |

A finer grid let 4.6 points more defects through while placing boxes better; more dimensions moved escapes by 0.3.
The retrain with a stronger patch objective let more defects through (its mixed-line AUROC 0.628, shipped 0.690).
The same recipe from another seed had 2.5 points more escapes and 6 points better localisation (mixed-line AUROC
0.642): candidates of one recipe differ by about that much, so a next run on a GPU should train several seeds side by
side and keep one by this rule. Every row keeps demo-siglip's false rejects at or below 1.4 % while 14-23 % of defects
pass (32 % in the stopped run): its good parts' scores spread as far as the faint scratches and stains.

Nor did the way a crop's map becomes its score (2026-12-05, the same seeds and rule, written before any number; for
a generic change demo-clip must also hold: escapes and false rejects rise by at most 1 point, AUROC falls by at most
0.005). Computed offline from the station's own patch distances of every crop, with the leave-one-out threshold set
again for each variant exactly as the memory sets it (the shipped row reproduces the station's ratios to 2e-6), so
type top-1 and localisation were not measured. Of demo-siglip's 42 escapes, 20 are scratches (of 65) and 14 stains
(of 50), at 0.4-0.9 of the threshold, many of them large:

| a crop's score from its patch distances | siglip: AUROC | escapes | false rej. | clip: AUROC | escapes | false rej. |
|---|---|---|---|---|---|---|
| the largest patch (shipped) | 0.960 | 14.7 % | 1.4 % | 0.994 | 2.1 % | 1.4 % |
| the largest after a Gaussian blur of the map, sigma 0.5 patch | 0.964 | 13.3 % | 1.9 % | 0.994 | 1.8 % | 1.9 % |
| the same, sigma 1 patch | 0.955 | 18.2 % | 0.5 % | 0.994 | 1.1 % | 3.3 % |
| the mean of the 3 largest patches | 0.960 | 13.0 % | 0.9 % | 0.995 | 1.8 % | 2.3 % |
| the mean of the 5 largest patches | 0.959 | 13.7 % | 0.9 % | 0.996 | 1.8 % | 1.4 % |
| the largest plus the crop's mean | 0.959 | 13.7 % | 1.9 % | 0.993 | 1.8 % | 1.4 % |

The best (the 3 largest) let 1.7 points fewer defects through, within the 2 points of noise; leaving any one of the
ten crops out of the frame score did no better (14.7-19.3 %). The ranking is good (AUROC 0.96) and the threshold sits
at the good parts' own tail: the features, not the way they are summed, hold demo-siglip back. Nor did measuring
distances in a whitened space (the memory's PCA components divided by their standard deviation on the good parts,
to the power p, so that directions in which good parts hardly vary weigh as much as the texture's; through the
station's path, same rule): p 0.5 let 19.6 % of defects through (false rejects 1.4 %, AUROC 0.953, type top-1
88.6 %, localisation 86.2 %), p 1 25.6 % (2.3 %, 0.946, 83.3 %, 78.5 %), against 14.7 % (1.4 %) as shipped.

The targets were AUROC >= 0.95 (no product below 0.90), escapes <= 5 %, false rejects <= 3 %, localisation
>= 0.90 and defect-type top-1 >= 0.85. The numbers above are what was reached, measured on the hold-out set;
nothing was tuned on it, but keeping demo-siglip's log(1/5) weights was decided after seeing these tables (see
above); demo-siglip's text stage, the memory's 12 copies, demo-clip's GPU weights and the naming window were kept on
the tuning seeds before the hold-out tables were run.
"""


def kept_results(families: list[str], frames: int) -> dict[str, dict[str, Any]]:
    """The card's rows of the models not re-evaluated: the same hold-out, so the card stays one table."""
    if set(families) == set(recipe.FAMILIES):
        return {}
    if not CARD_JSON.is_file():
        raise ConfigError(f"{CARD_JSON}: missing; evaluate every model once (no --family) to write the card.")
    try:
        card = json.loads(CARD_JSON.read_text(encoding="utf-8"))
        kept = {r["family"]: r for r in card["results"] if r["family"] not in families}
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{CARD_JSON}: unreadable ({e}); evaluate every model (no --family) to rewrite it.") from e
    missing = [f for f in recipe.FAMILIES if f not in families and f not in kept]
    if missing:
        raise ConfigError(f"{CARD_JSON}: has no rows of demo-{missing[0]}; evaluate it too (--family {missing[0]}).")
    if card.get("holdout_frames") != frames:
        raise ConfigError(f"{CARD_JSON}: measured on {card.get('holdout_frames')} hold-out frames, not {frames}; "
                          "evaluate every model (no --family) or pass the same --frames.")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=recipe.HOLDOUT_FRAMES)
    parser.add_argument("--family", action="append", choices=recipe.FAMILIES,
                        help="re-evaluate only this model (after retraining it) and keep the other's rows from "
                             "card.json; default: both")
    args = parser.parse_args(argv)
    t = time.perf_counter()
    try:
        kept = kept_results(args.family or list(recipe.FAMILIES), args.frames)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    frames, truths = raw_frames(recipe.HOLDOUT, args.frames)
    truth: list[str] = [t.defect for t in truths]
    prompts = PromptSet.model_validate(DEMO_PROMPTS)
    fresh = {f: evaluate_family(f, frames, truth, prompts) for f in args.family or recipe.FAMILIES}
    results = [{**kept, **fresh}[f] for f in recipe.FAMILIES]  # kept_results: every family is one or the other
    CARD_JSON.write_text(json.dumps({"holdout_frames": args.frames, "results": results}, indent=1) + "\n")
    CARD_MD.write_text(card_markdown(results, args.frames, prompts))
    for r in results:
        for mode in ("whole", "tiled"):
            m = r["onnx"][mode]
            print(f"demo-{r['family']} {mode}: " + ", ".join(f"{k} {_fmt(m[k])}" for k in
                                                              ("auroc_good_vs_defect", "defect_type_top1", "top1")))
    print(f"evaluated in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
