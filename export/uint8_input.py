"""uint8 frames in, normalisation in the graph: the vision tower that takes ``images`` [B, S, S, 3].

Camera frames are BGR uint8. A float ``pixel_values`` input makes every frame pay, on the CPU,
for a float conversion, a per-channel multiply-add and a transpose (about 1.5 ms per 640x480
frame on the development machine; more on a Jetson's ARM cores, where the encoder itself takes
a few milliseconds). Those steps are linear, and the first thing a ViT does with its input is
linear too, the patch-embedding convolution (no padding: stride = kernel = patch). So

    conv(W, b)((x / 255 - mean) / std)  with x in RGB
  = conv(W', b')(x_bgr)
    W'[o, c] = W[o, rgb(c)] / (255 * std[rgb(c)])      (input channels reordered BGR -> RGB)
    b'[o]    = b[o] - sum_{c,i,j} W[o, c, i, j] * mean[c] / std[c]

and the graph starts with a Transpose (on bytes) and a Cast: normalisation costs nothing at run
time, on ONNX Runtime and in a TensorRT engine alike. A tower without such a convolution gets
the same arithmetic as explicit Mul/Add nodes (still on the accelerator, not in Python).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from edge.bundle import ImageSpec


def patch_conv(model: Any) -> tuple[Any, str, nn.Conv2d] | None:
    """(parent, attribute, conv) of the vision tower's patch embedding, when it can take the folding."""
    embeddings = getattr(getattr(model, "vision_model", None), "embeddings", None)
    conv = getattr(embeddings, "patch_embedding", None)
    if not isinstance(conv, nn.Conv2d) or conv.in_channels != 3 or conv.groups != 1:
        return None
    if conv.stride != conv.kernel_size or conv.padding not in ((0, 0), "valid") or conv.dilation != (1, 1):
        return None  # a padded border would see the folded bias where the float graph saw zeros
    return embeddings, "patch_embedding", conv


def folded_conv(conv: nn.Conv2d, spec: ImageSpec) -> nn.Conv2d:
    """The patch convolution that takes BGR values 0..255 and computes what ``conv`` did on normalised RGB."""
    mean = torch.tensor(spec.mean, dtype=torch.float64)
    std = torch.tensor(spec.std, dtype=torch.float64)
    w = conv.weight.detach().to(torch.float64)  # [O, 3 (RGB), k, k]
    bias = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
    folded_w = (w / (255.0 * std)[None, :, None, None]).flip(1)  # input channels now B, G, R
    folded_b = bias - (w * (mean / std)[None, :, None, None]).sum(dim=(1, 2, 3))
    kernel = (int(conv.kernel_size[0]), int(conv.kernel_size[1]))
    stride = (int(conv.stride[0]), int(conv.stride[1]))
    out = nn.Conv2d(3, conv.out_channels, kernel, stride=stride, bias=True)
    with torch.no_grad():
        out.weight.copy_(folded_w.to(conv.weight.dtype))
        assert out.bias is not None
        out.bias.copy_(folded_b.to(conv.weight.dtype))
    return out


class Uint8Images(nn.Module):
    """images uint8 [B, S, S, 3] BGR (already resized) -> the wrapped tower's outputs.

    ``tower`` is a module over ``pixel_values`` whose ``model`` attribute is the checkpoint (export's
    VisionTower); it is copied, never changed in place, so the float tower stays the parity reference.
    """

    def __init__(self, tower: nn.Module, spec: ImageSpec) -> None:
        super().__init__()
        self.tower = copy.deepcopy(tower)
        found = patch_conv(self.tower.model)
        self.folded = found is not None
        if found is not None:
            parent, name, conv = found
            setattr(parent, name, folded_conv(conv, spec))
        else:
            std = torch.tensor(spec.std, dtype=torch.float32)
            mean = torch.tensor(spec.mean, dtype=torch.float32)
            self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1))
            self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> Any:
        x = images.permute(0, 3, 1, 2).to(torch.float32)  # [B, 3, S, S] BGR, values 0..255
        if not self.folded:
            scale, shift = self.get_buffer("scale"), self.get_buffer("shift")
            x = x.flip(1) * scale + shift
        return self.tower(x)
