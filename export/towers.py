"""The two encoder graphs as small torch modules: projected, L2-normalised embeddings.

Normalising inside the graph keeps the per-frame work on the device to one matrix
product, and lets calibration keep that final reduction in float32 on its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class VisionTower(nn.Module):
    """pixel_values [B, 3, S, S] -> image_embeds [B, D]."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixel_values)
        return _normalize(out.pooler_output)


class TextTower(nn.Module):
    """input_ids [B, L] -> text_embeds [B, D] (CLIP pools at EOS, SigLIP at the last slot)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model.get_text_features(input_ids=input_ids)
        return _normalize(out.pooler_output)
