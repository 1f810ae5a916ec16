"""The two encoder graphs as small torch modules: projected, L2-normalised embeddings.

Normalising inside the graph keeps the per-frame work on the device to one matrix
product, and lets calibration keep that final reduction in float32 on its own.

The vision tower can also give patch tokens (``patch_embeds`` [B, P, Dp]) from the same
forward pass, for the good-part memory and the text heat maps (DESIGN.md, "Where"):

* ``joint``: the last layer's tokens through the head that makes the image embedding
  (CLIP: post-LayerNorm + visual projection; SigLIP: the pooling head's value path and MLP,
  i.e. what the head returns when its attention falls on one token, as in MaskCLIP). They
  live in the text space, so a prompt can be scored against every patch.
* ``layers``: the hidden states of chosen layers, concatenated (PatchCore's mid-level
  features), for checkpoints whose last-layer tokens are not localised. Memory only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True)
class PatchSpec:
    """Which patch tokens the vision graph gives (recorded in bundle.json)."""

    source: Literal["joint", "layers"] = "joint"
    layers: tuple[int, ...] = (-1,)  # for "layers": hidden-state indices (1 = after the first block)


def _clip_parts(model: Any, pixel_values: torch.Tensor, hidden: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
    vm = model.vision_model
    out = vm(pixel_values=pixel_values, output_hidden_states=hidden, return_dict=True)
    image = model.visual_projection(out.pooler_output)  # [B, D]
    tokens = vm.post_layernorm(out.last_hidden_state[:, 1:])  # [B, P, W] without the class token
    return image, model.visual_projection(tokens), out  # [B, D], [B, P, D]


def _siglip_parts(model: Any, pixel_values: torch.Tensor, hidden: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
    vm = model.vision_model
    out = vm(pixel_values=pixel_values, output_hidden_states=hidden, return_dict=True)
    head = vm.head
    tokens = out.last_hidden_state  # [B, P, W], already post-LayerNorm
    width = tokens.shape[-1]
    attn = head.attention  # nn.MultiheadAttention: value rows of the packed projection, then out_proj
    value = F.linear(tokens, attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
    per_token = attn.out_proj(value)
    return out.pooler_output, per_token + head.mlp(head.layernorm(per_token)), out


def vision_parts(model: Any, pixel_values: torch.Tensor, patches: PatchSpec | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(image_embeds [B, D] unnormalised, patch tokens [B, P, Dp] or None) from one forward pass."""
    hidden = patches is not None and patches.source == "layers"
    family = "clip" if hasattr(model, "visual_projection") else "siglip"
    image, joint, out = (_clip_parts if family == "clip" else _siglip_parts)(model, pixel_values, hidden)
    if patches is None:
        return image, None
    if patches.source == "joint":
        return image, joint
    skip = 1 if family == "clip" else 0  # CLIP's class token
    return image, torch.cat([out.hidden_states[i][:, skip:] for i in patches.layers], dim=-1)


class VisionTower(nn.Module):
    """pixel_values [B, 3, S, S] -> image_embeds [B, D] (and patch_embeds [B, P, Dp] with ``patches``)."""

    def __init__(self, model: Any, patches: PatchSpec | None = None) -> None:
        super().__init__()
        self.model: Any = model
        self.patches = patches

    def forward(self, pixel_values: torch.Tensor) -> Any:
        image, tokens = vision_parts(self.model, pixel_values, self.patches)
        if tokens is None:
            return _normalize(image)
        return _normalize(image), _normalize(tokens)


class TextTower(nn.Module):
    """input_ids [B, L] -> text_embeds [B, D] (CLIP pools at EOS, SigLIP at the last slot)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model.get_text_features(input_ids=input_ids)
        return _normalize(out.pooler_output)
