"""``edge-inspect finetune``: contrastive training (CLIP softmax or SigLIP sigmoid loss).

Workstation only (needs the export extra). Starts from a checkpoint folder (--from) or
from the demo architecture (--init clip|siglip, tokenizer trained on the captions), and
trains on an image+captions folder or on the simulated line (sim://...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.errors import ConfigError, require_extra


def add_arguments(p: argparse.ArgumentParser) -> None:
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--from", dest="checkpoint", help="checkpoint folder to adapt")
    start.add_argument("--init", choices=("clip", "siglip"), help="start from random weights (demo architecture)")
    p.add_argument("--data", required=True, help="folder with images + captions.jsonl, or sim://line?seed=N")
    p.add_argument("--frames", type=int, default=2000, help="frames to render for sim:// data")
    p.add_argument("--eval", dest="eval_url", help="sim:// hold-out for per-epoch zero-shot accuracy")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense-weight", type=float, default=0.0, metavar="W",
                   help="also align each patch token with its region's label (the defect's where its mask covers "
                   "it, --good-label elsewhere), weighted W against the image loss; needs masks: sim:// data has "
                   "them, a folder gives them as a 'mask' file per line of captions.jsonl (0.5 trained the demo "
                   "models)")
    p.add_argument("--text-only", action="store_true",
                   help="train the text tower alone: the image tower, temperature and bias stay as they are, so "
                   "image embeddings, patch tokens and a good-part memory taught on them are unchanged")
    p.add_argument("--text-noise", type=float, default=0.0, metavar="P",
                   help="give a share P of the captions one to three made-up words at random places, so that the "
                   "text tower learns to look past words it never saw (operators' own wording); 0.5 in the "
                   "demo-siglip recipe's text stage (default %(default)s)")
    p.add_argument("--good-label", default="good", help="the label of patches outside every mask (default %(default)s)")
    p.add_argument("--zoom", default="1,1", metavar="MIN,MAX",
                   help="sim:// data: views zoomed 1x (the whole frame) to MAX x around the defect, as tiles and "
                   "zoomed crops show it (the demo models: 1,6; default %(default)s)")


def zoom_range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    try:
        zoom = (float(lo), float(hi or lo))
    except ValueError:
        zoom = (0.0, 0.0)
    if not 1.0 <= zoom[0] <= zoom[1] <= 16.0:
        raise ConfigError(f"--zoom {text}: expected MIN,MAX with 1 <= MIN <= MAX <= 16, e.g. 1,6.")
    return zoom


def run(args: argparse.Namespace) -> int:
    require_extra("finetune", ("torch", "transformers", "safetensors"), "export")
    from export.finetune_run import finetune_from_args  # another missing module: main's one line
    if args.steps < 1 or args.batch < 2:
        raise ConfigError("--steps must be >= 1 and --batch >= 2 (a contrastive batch needs pairs).")
    if args.dense_weight < 0:
        raise ConfigError(f"--dense-weight {args.dense_weight}: must be >= 0 (0 turns the patch objective off).")
    if args.text_only and not args.checkpoint:
        raise ConfigError("--text-only needs --from CHECKPOINT: with --init the image tower is random and would stay "
                          "so.")
    if not 0.0 <= args.text_noise <= 1.0:
        raise ConfigError(f"--text-noise {args.text_noise}: a share of the captions, from 0 (off) to 1.")
    args.zoom = zoom_range(args.zoom)
    finetune_from_args(args)
    return 0
