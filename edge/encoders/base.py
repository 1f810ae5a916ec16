"""The encoder interface that the service depends on, whatever the backend.

Backends are context managers (they own sessions, engines, device buffers) and accept
any batch size: they split into chunks of at most ``max_batch`` themselves, so callers
never learn a backend's profile limits.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class ImageEncoder(Protocol):
    """The vision graph's input -> image embeddings [B, D] float32 (and, for bundles exported with them,
    patch embeddings [B, P, Dp] from the same pass). The input is what the bundle's ``image.input`` says:
    uint8 ``images`` [B, S, S, 3] (BGR, resized; the graph normalises) or float32 ``pixel_values``
    [B, 3, S, S]; ``input_dtype`` names it, and a batch of the other kind is refused in one line."""

    name: str
    precision: str
    max_batch: int
    has_patches: bool
    input_dtype: str

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray: ...

    def encode_views(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def close(self) -> None: ...


class TextEncoder(Protocol):
    """input_ids [B, L] int64 (and mask) -> text embeddings [B, D] float32."""

    name: str
    max_batch: int

    def encode_texts(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
