"""Varied captions for simulated frames, and the demo's evaluation prompts.

Training captions mix templates, synonyms, material, part, defect, position and size, so
the text tower learns the words and not one sentence. The evaluation prompt set
(``DEMO_PROMPTS``) is worded with templates and phrasings that never occur in training, so
the held-out zero-shot accuracy measures what an operator typing their own words will get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from edge.sim.scene import SimTruth

TEMPLATES = (
    "a photo of a {}", "{}", "an image of a {}", "a picture of a {} on a conveyor",
    "a {}", "camera view of a {}", "a factory photo of a {}", "there is a {}",
)
SHAPE_WORDS = {
    "plate": ("plate", "panel", "flat part", "part"),
    "bracket": ("bracket", "angle bracket", "l-shaped part", "part"),
    "disc": ("disc", "round part", "flange", "part"),
}
MATERIAL_WORDS = {
    "brushed metal": ("brushed metal", "steel", "metal"),
    "painted plastic": ("plastic", "painted plastic", "coloured plastic"),
    "cast metal": ("cast metal", "cast iron", "rough metal"),
    "textile": ("fabric", "textile", "woven"),
    "circuit board": ("circuit board", "pcb", "electronic board"),
}
GOOD_WORDS = ("flawless", "clean", "intact", "good", "perfect", "defect-free", "undamaged", "normal")
DEFECT_NOUNS = {
    "scratch": ("scratch", "scrape", "scratch mark", "scuff", "long scratch"),
    "hole": ("hole", "dent", "puncture", "pit", "dark hole"),
    "crack": ("crack", "fracture", "fissure", "broken crack line"),
    "stain": ("stain", "rust spot", "spot of corrosion", "dirty mark", "discoloration"),
    "missing": ("missing screw", "missing component", "empty mount", "absent fastener", "missing chip"),
}
DEFECT_ADJECTIVES = {
    "scratch": ("scratched", "scuffed"), "hole": ("dented", "punctured", "holed"),
    "crack": ("cracked", "fractured"), "stain": ("stained", "rusty", "corroded", "dirty"),
    "missing": ("incomplete", "unassembled"),
}

# The demo's prompt set (operator YAML), worded unlike any training caption.
DEMO_PROMPTS_FILE = Path(__file__).resolve().parent / "demo_models" / "prompts.yaml"
DEMO_PROMPTS = yaml.safe_load(DEMO_PROMPTS_FILE.read_text(encoding="utf-8"))


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _position(truth: SimTruth, width: int, height: int) -> str:
    if truth.box is None:
        return ""
    x, y, w, h = truth.box
    cx, cy = (x + w / 2) / width, (y + h / 2) / height
    horiz = "left" if cx < 0.42 else "right" if cx > 0.58 else ""
    vert = "top" if cy < 0.42 else "bottom" if cy > 0.58 else ""
    where = " ".join(w for w in (vert, horiz) if w)
    return f"near the {where}" if where else "in the centre"


def caption_for(truth: SimTruth, rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> str:
    """One random caption that is true of the frame."""
    part = f"{_pick(rng, MATERIAL_WORDS[truth.material])} {_pick(rng, SHAPE_WORDS[truth.shape])}"
    if truth.defect == "good":
        good = _pick(rng, GOOD_WORDS)
        desc = f"{good} {part}" if rng.random() < 0.6 else f"{part} that is {good}"
    elif rng.random() < 0.3:
        desc = f"{_pick(rng, DEFECT_ADJECTIVES[truth.defect])} {part}"
    else:
        size_word = "" if rng.random() < 0.5 else ("small " if truth.severity < 0.4 else "large ")
        noun = _pick(rng, DEFECT_NOUNS[truth.defect])
        where = _position(truth, *size) if rng.random() < 0.5 else ""
        desc = f"{part} with a {size_word}{noun} {where}".strip()
    return _pick(rng, TEMPLATES).format(desc)


def caption_corpus(truths: list[SimTruth], per_frame: int, seed: int) -> list[str]:
    """Many captions (for training the tokenizer)."""
    rng = np.random.default_rng(seed)
    return [caption_for(t, rng) for t in truths for _ in range(per_frame)]
