"""The tuning seeds: ``python -m export.demo_models.tune --bundle B [--product NAME ...] [--frames N] [--out F.json]``.

The seeds on which the demo's recent choices were measured (a retrained model, the memory's copies, the naming
window), apart from the card's (``evaluate.LINES_SEED``...), which are run once a choice is made; the card says
which choices were made after seeing its own tables, and which rule decided each. By default five products, 100 frames
each of ``sim://line?seed=5100&product=NAME&defect_rate=0.5&hard=0.1`` with a memory of 16 good parts of seed 5200,
through the station's own path (3x3 tiles + whole, the memory, two-stage naming), and the mixed line (100 frames
of seed 5300, 2x2 tiles + whole, text only). Prints a table (progress on stderr) and writes JSON; about 4 minutes a
model on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge.bundle import Bundle
from edge.errors import EdgeInspectError
from edge.inspect.frames import NAME_WINDOW
from edge.model import ZeroShotModel

PRODUCTS = ("cast-bracket", "cast-flange", "plastic-cover", "steel-bracket", "steel-plate")
TUNE_LINES_SEED, TUNE_GOOD_SEED, TUNE_MIXED_SEED = 5100, 5200, 5300  # the card's hold-out: 4100, 4200, 4300
FRAMES = 100


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def tuning_measures(bundle: Path, products: Sequence[str] = PRODUCTS, frames: int = FRAMES,
                    progress: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """The tuning seeds' measures of one bundle: per product, their mean, and the mixed line (text only)."""
    from export.demo_models.evaluate import line_summary, mean_of, mixed_line, product_line

    out: dict[str, Any] = {"bundle": str(bundle), "frames": frames, "name_window": NAME_WINDOW,
                           "seeds": {"lines": TUNE_LINES_SEED, "good": TUNE_GOOD_SEED, "mixed": TUNE_MIXED_SEED},
                           "products": {}}
    with tempfile.TemporaryDirectory() as tmp, ZeroShotModel(Bundle.open(bundle)) as model:
        for product in products:
            m = product_line(model, product, (TUNE_LINES_SEED, TUNE_GOOD_SEED), frames, Path(tmp) / product)
            out["products"][product] = m
            progress(line_summary(product, m))
        out["mixed"] = mixed_line(model, TUNE_MIXED_SEED, frames, Path(tmp) / "mixed")
        progress(line_summary("mixed", out["mixed"]))
    out["mean"] = mean_of(out["products"])
    return out


def table(r: dict[str, Any]) -> str:
    """The measures as a markdown table: a row per product, their mean, the mixed line."""
    from export.demo_models.evaluate import measures_row

    rows = [*r["products"].items(), (f"mean of {len(r['products'])} products", r["mean"]),
            ("mixed line (text only)", r["mixed"])]
    return "\n".join(["| line | AUROC | accuracy | escapes | false rejects | type top-1 | localisation |",
                      "|---|---|---|---|---|---|---|", *(measures_row(name, m) for name, m in rows)])


def _no_nan(x: Any) -> Any:
    """NaN (an AUROC of a line without good parts or without defects) as null: JSON has no NaN."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    return x


def main(argv: list[str] | None = None) -> int:
    from edge.sim.products import CATALOGUE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="an exported bundle folder")
    parser.add_argument("--product", action="append", choices=list(CATALOGUE),
                        help="a product line to measure (repeat it); default: " + ", ".join(PRODUCTS))
    parser.add_argument("--frames", type=int, default=FRAMES, help="frames per line (default %(default)s)")
    parser.add_argument("--out", type=Path, help="write the measures here (JSON)")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames {args.frames}: give a whole number of at least 1.")
    if args.out is not None and not args.out.parent.is_dir():
        parser.error(f"--out {args.out}: its folder {args.out.parent} does not exist; create it or pick another.")
    if args.out is not None and args.out.is_dir():
        parser.error(f"--out {args.out}: is a folder; give a file name, e.g. {args.out / 'tune.json'}.")
    t = time.perf_counter()
    try:
        r = tuning_measures(args.bundle, args.product or PRODUCTS, args.frames)
    except EdgeInspectError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(table(r))
    print(f"measured in {time.perf_counter() - t:.0f} s (naming window {NAME_WINDOW} x the box)")
    if args.out:
        args.out.write_text(json.dumps(_no_nan(r), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
