"""Image/text similarity -> category probabilities, as each family was trained.

CLIP was trained with a softmax over the batch, so its scores compete: they sum to one
over the categories. SigLIP was trained with a per-pair sigmoid, so each category gets an
independent probability, which suits "several defects at once" and "none of these".
"""

from __future__ import annotations

import numpy as np

from edge.bundle import Family


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def category_probs(
    image_embeds: np.ndarray,  # [B, D] L2-normalised
    text_embeds: np.ndarray,  # [C, D] L2-normalised
    family: Family,
    logit_scale: float,
    logit_bias: float | None,
) -> np.ndarray:
    """Per-image probabilities over categories [B, C]."""
    logits = logit_scale * (image_embeds @ text_embeds.T)  # [B, C]
    if family == "siglip":
        return 1.0 / (1.0 + np.exp(-(logits + (logit_bias or 0.0))))
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
