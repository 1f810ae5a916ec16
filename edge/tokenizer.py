"""Prompts -> ``input_ids`` with the ``tokenizers`` library (no transformers on the device).

The bundle ships the checkpoint's fast-tokenizer JSON with padding and truncation turned
off; this wrapper re-applies them from ``TextSpec`` so that the ids equal what the Hugging
Face tokenizer gives with ``padding="max_length", truncation=True,
max_length=context_length`` (the export checks exactly that before writing a bundle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from edge.bundle import TextSpec
from edge.errors import BundleError


class PromptTokenizer:
    """Tokenizes prompt lists to fixed-length int64 arrays."""

    def __init__(self, tokenizer_json: Path, spec: TextSpec) -> None:
        try:
            tok = Tokenizer.from_file(str(tokenizer_json))
        except Exception as err:  # the tokenizers library raises a bare Exception
            raise BundleError(
                f"{tokenizer_json}: not a valid tokenizers JSON ({err}); re-export the bundle."
            ) from err
        tok.enable_truncation(max_length=spec.context_length)
        tok.enable_padding(
            length=spec.context_length, pad_id=spec.pad_id, pad_token=spec.pad_token
        )
        self._tok = tok
        self.spec = spec

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(input_ids, attention_mask)``, both int64 [B, context_length]."""
        encodings = self._tok.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        shape = (len(texts), self.spec.context_length)
        return ids.reshape(shape), mask.reshape(shape)
