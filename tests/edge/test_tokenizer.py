"""The device tokenizer (tokenizers only) gives exactly the Hugging Face tokenizer's ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from edge.bundle import Bundle
from edge.tokenizer import PromptTokenizer

PROMPTS = [
    "a",
    "",
    "flawless",
    "A Scratched METAL Bracket",
    "rust, stain; hole (2 mm)! dent? crack... 'missing' \"screw\"",
    "Ünïcödé pärt — naïve café",
    "a photo of a " + "very " * 60 + "long scratch",  # longer than every context length
    "  leading and   repeated   spaces  ",
    "prompt with numbers 0123456789 and symbols #$%&*+/<=>@[]^_`{|}~",
]


def test_ids_equal_hf_tokenizer(tiny_checkpoints: dict[str, Path], tiny_bundles: dict[str, Path],
                                family: str) -> None:
    hf = AutoTokenizer.from_pretrained(str(tiny_checkpoints[family]))
    bundle = Bundle.open(tiny_bundles[family])
    length = bundle.manifest.text.context_length
    ours, mask = PromptTokenizer(bundle.path("tokenizer"), bundle.manifest.text)(PROMPTS)
    theirs = hf(PROMPTS, padding="max_length", truncation=True, max_length=length, return_tensors="np")
    np.testing.assert_array_equal(ours, theirs["input_ids"])
    np.testing.assert_array_equal(mask, theirs["attention_mask"])
    assert ours.shape == (len(PROMPTS), length) and ours.dtype == np.int64


def test_truncation_keeps_the_end_token(tiny_checkpoints: dict[str, Path], tiny_bundles: dict[str, Path],
                                        family: str) -> None:
    bundle = Bundle.open(tiny_bundles[family])
    tok = PromptTokenizer(bundle.path("tokenizer"), bundle.manifest.text)
    long_ids, mask = tok(["scratch " * 200])
    eos = AutoTokenizer.from_pretrained(str(tiny_checkpoints[family])).eos_token_id
    assert mask.all()  # truncated to exactly the context length
    assert long_ids[0][-1] == eos  # the pooled token survives truncation


def test_empty_prompt_list(tiny_bundles: dict[str, Path]) -> None:
    bundle = Bundle.open(tiny_bundles["clip"])
    ids, mask = PromptTokenizer(bundle.path("tokenizer"), bundle.manifest.text)([])
    assert ids.shape == (0, bundle.manifest.text.context_length) and mask.shape == ids.shape
