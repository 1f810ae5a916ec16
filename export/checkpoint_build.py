"""Build Hugging Face CLIP/SigLIP checkpoints from configs: tokenizer, processor, weights.

Used for the project's own demo models (which are then trained) and for the tiny models
in the tests. What it writes is a normal ``save_pretrained`` folder, so everything
downstream treats it exactly like a downloaded checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.bundle import Family

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TowerSizes:
    """Widths and depths of both towers; the only knobs the demo and the tests turn."""

    image_size: int = 224
    patch_size: int = 16
    vision_width: int = 192
    vision_layers: int = 4
    vision_heads: int = 3
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 2
    context_length: int = 32
    embed_dim: int = 128
    vocab_size: int = 2048


SPECIALS: dict[str, dict[str, str | None]] = {
    "clip": {"pad": "<pad>", "bos": "<|startoftext|>", "unk": "<unk>", "eos": "<|endoftext|>"},
    "siglip": {"pad": "</s>", "bos": None, "unk": "<unk>", "eos": "</s>"},
}


def train_tokenizer(texts: Iterable[str], family: Family, vocab_size: int, max_length: int) -> Any:
    """A byte-level BPE trained on ``texts`` and wrapped as a HF fast tokenizer.

    Byte-level, so that any prompt an operator types still tokenizes; CLIP-style (lower
    case, BOS + EOS, EOS pooled) or SigLIP-style (EOS only, padded with EOS, last slot pooled).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    sp = SPECIALS[family]
    specials = list(dict.fromkeys(t for t in ("<pad>", sp["bos"], sp["unk"], sp["eos"]) if t))
    tok = Tokenizer(models.BPE(unk_token=sp["unk"]))
    norms = [normalizers.NFC(), normalizers.Lowercase()] if family == "clip" else [normalizers.NFC()]
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    eos, bos = str(sp["eos"]), str(sp["bos"])
    if family == "clip":
        template = f"{bos} $A {eos}"
        pairs = [(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))]
    else:
        template, pairs = f"$A {eos}", [(eos, tok.token_to_id(eos))]
    tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=pairs)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=sp["bos"], eos_token=eos, unk_token=sp["unk"],
        pad_token=sp["pad"], model_max_length=max_length,
    )


def model_config(family: Family, sizes: TowerSizes, tokenizer: Any) -> Any:
    from transformers import CLIPConfig, SiglipConfig

    text: dict[str, Any] = dict(
        vocab_size=len(tokenizer), hidden_size=sizes.text_width,
        intermediate_size=sizes.text_width * 4, num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads, max_position_embeddings=sizes.context_length,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    vision: dict[str, Any] = dict(
        hidden_size=sizes.vision_width, intermediate_size=sizes.vision_width * 4,
        num_hidden_layers=sizes.vision_layers, num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size, patch_size=sizes.patch_size,
    )
    if family == "clip":
        text["bos_token_id"] = tokenizer.bos_token_id
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=sizes.embed_dim)
    text["projection_size"] = sizes.vision_width  # SigLIP's text head maps into the image width
    text["bos_token_id"] = None  # SigLIP's tokenizer has no BOS (the config's default id is CLIP's)
    return SiglipConfig(text_config=text, vision_config=vision)


def preprocessor_config(family: Family, size: int, crop: bool) -> dict[str, Any]:
    """An image-processor config as the HF processors read it."""
    mean, std = (CLIP_MEAN, CLIP_STD) if family == "clip" else ((0.5,) * 3, (0.5,) * 3)
    cfg: dict[str, Any] = {
        "image_processor_type": "CLIPImageProcessor" if family == "clip" else "SiglipImageProcessor",
        "do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": list(mean), "image_std": list(std),
        "do_convert_rgb": True,
    }
    if crop:
        cfg.update(size={"shortest_edge": size}, do_center_crop=True,
                   crop_size={"height": size, "width": size})
    else:
        cfg.update(size={"height": size, "width": size}, do_center_crop=False)
    return cfg


def save_checkpoint(folder: Path, model: Any, tokenizer: Any, processor: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return folder


def build_checkpoint(
    folder: Path, family: Family, sizes: TowerSizes, texts: Iterable[str],
    crop: bool = False, seed: int = 0,
) -> Path:
    """A randomly initialised checkpoint folder (the start of training, or a test model)."""
    import torch
    from transformers import CLIPModel, SiglipModel

    tokenizer = train_tokenizer(texts, family, sizes.vocab_size, sizes.context_length)
    torch.manual_seed(seed)
    cls = CLIPModel if family == "clip" else SiglipModel
    model = cls(model_config(family, sizes, tokenizer)).eval()
    return save_checkpoint(folder, model, tokenizer,
                           preprocessor_config(family, sizes.image_size, crop))
