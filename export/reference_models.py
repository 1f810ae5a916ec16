"""Random-weight checkpoints with the shapes of real ones, for benchmarks without downloads.

``python -m export.reference_models clip-vit-base-patch32 --out DIR`` writes a CLIPModel with
openai/clip-vit-base-patch32's architecture (ViT-B/32 at 224, 12-layer 512-wide text tower,
49,408-token vocabulary, 512-d embeddings) and random weights: the right size and speed,
no meaning. Its tokenizer is the project's byte-level BPE, padded to the same vocabulary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.captions import caption_corpus
from export.checkpoint_build import preprocessor_config, save_checkpoint, train_tokenizer

SHAPES = {
    # name: (family, text cfg, vision cfg, projection)
    "clip-vit-base-patch32": ("clip", dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                                           num_attention_heads=8, max_position_embeddings=77, vocab_size=49408),
                              dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                   num_attention_heads=12, image_size=224, patch_size=32), 512),
}


def build(name: str, out: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel

    from edge.sim import LineSimulator

    family, text, vision, proj = SHAPES[name]
    truths = [LineSimulator(seed=0).frame(i).truth for i in range(50)]
    tok = train_tokenizer(caption_corpus(truths, 4, 0), family, 1024, int(text["max_position_embeddings"]))  # type: ignore[arg-type]
    specials = {"pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id}
    text = {**text, **specials}
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=proj)).eval()
    return save_checkpoint(out, model, tok, preprocessor_config(family, int(vision["image_size"]), crop=True))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(SHAPES))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(build(args.name, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
