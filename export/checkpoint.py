"""Find, identify and load a Hugging Face CLIP or SigLIP checkpoint, offline.

Everything the bundle records about preprocessing and tokenization comes from the
checkpoint's own files here, so that the runtime reproduces the checkpoint's processor
instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.bundle import Family, ImageSpec, TextSpec
from edge.errors import ExportError
from edge.hashing import sha256_file

SUPPORTED = {"clip": ("CLIPModel", "clip"), "siglip": ("SiglipModel", "siglip")}
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class Checkpoint:
    """A loaded checkpoint with what the bundle needs to know about it."""

    ref: str
    folder: Path
    family: Family
    model: Any  # CLIPModel | SiglipModel, eval mode, eager attention
    tokenizer: Any  # a fast (tokenizers-backed) HF tokenizer
    image: ImageSpec
    text: TextSpec
    weights_sha256: str
    revision: str | None


def resolve_folder(ref: str) -> tuple[Path, str | None]:
    """A local folder, or a hub id already in the local cache (never a download)."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ExportError(
                f"{ref}: is a file, expected a checkpoint folder (config.json, weights, "
                "tokenizer, preprocessor_config.json); pass the folder."
            )
        return path, None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ref, local_files_only=True))
    except Exception as err:  # hub raises several unrelated types for "not cached"
        raise ExportError(
            f"{ref}: no such folder and not in the local Hugging Face cache; download it on a "
            "connected machine ('hf download "
            f"{ref}') or pass a local checkpoint folder."
        ) from err
    return folder, folder.name


def read_json(path: Path, what: str, fix: str) -> dict[str, Any]:
    if not path.is_file():
        raise ExportError(f"{path}: missing {what}; {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: unreadable {what} ({err}); {fix}") from err
    if not isinstance(data, dict):
        raise ExportError(f"{path}: {what} is not a JSON object; {fix}")
    return data


def detect_family(folder: Path) -> Family:
    """Map config.json to a supported family, or name what was found."""
    config = read_json(
        folder / "config.json", "config.json",
        "a Hugging Face checkpoint folder needs it (save with save_pretrained).",
    )
    model_type = str(config.get("model_type", ""))
    arch = ",".join(config.get("architectures") or []) or model_type or "unknown"
    if model_type in SUPPORTED:
        return model_type  # type: ignore[return-value]
    raise ExportError(
        f"{folder}: architecture '{arch}' (model_type '{model_type}') is not supported; "
        "export a CLIPModel (openai/clip-vit-*, laion CLIP) or a SiglipModel (google/siglip-*, "
        "fixed-resolution google/siglip2-*) checkpoint."
    )


def weights_hash(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise ExportError(
            f"{folder}: no weight files (*.safetensors or *.bin); save the model with "
            "save_pretrained or download the complete checkpoint."
        )
    from edge.hashing import sha256_json

    return sha256_json({p.name: sha256_file(p) for p in files})


def image_spec(folder: Path, image_size: int, resize: str) -> ImageSpec:
    """Preprocessing from preprocessor_config.json, checked against the vision config."""
    cfg = read_json(
        folder / "preprocessor_config.json", "preprocessor config",
        "save the checkpoint's image processor next to it (processor.save_pretrained).",
    )
    size = cfg.get("size", {})
    crops = bool(cfg.get("do_center_crop", False)) and "shortest_edge" in (size or {})
    mode = resize if resize != "auto" else ("crop" if crops else "squash")
    return ImageSpec(
        size=image_size,
        mean=tuple(cfg.get("image_mean", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
        std=tuple(cfg.get("image_std", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
        resize=mode,  # type: ignore[arg-type]
    )


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    fix = "save the checkpoint's tokenizer next to it (tokenizer.save_pretrained)."
    if not any((folder / n).is_file() for n in ("tokenizer.json", "vocab.json", "spiece.model")):
        raise ExportError(f"{folder}: no tokenizer files (tokenizer.json); {fix}")
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises many types here
        raise ExportError(f"{folder}: tokenizer cannot be loaded ({err}); {fix}") from err
    if getattr(tok, "backend_tokenizer", None) is None:
        raise ExportError(f"{folder}: tokenizer has no fast (tokenizers) form; {fix}")
    return tok


def text_spec(tokenizer: Any, context_length: int) -> TextSpec:
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id
    if pad_id is None:
        raise ExportError(
            "tokenizer has neither a pad nor an eos token; set pad_token in the "
            "checkpoint's tokenizer_config.json."
        )
    pad_token = tokenizer.convert_ids_to_tokens(int(pad_id))
    upper = tokenizer("ABC DEF", add_special_tokens=False)["input_ids"]
    lower = tokenizer("abc def", add_special_tokens=False)["input_ids"]
    return TextSpec(
        context_length=context_length,
        pad_id=int(pad_id),
        pad_token=str(pad_token),
        lowercase=upper == lower,
        needs_attention_mask=False,
    )


def load_checkpoint(ref: str, resize: str = "auto") -> Checkpoint:
    """Load a supported checkpoint with eager attention (explicit math in the ONNX)."""
    folder, revision = resolve_folder(ref)
    family = detect_family(folder)
    tokenizer = load_tokenizer(folder)
    digest = weights_hash(folder)
    from transformers import CLIPModel, SiglipModel

    cls = CLIPModel if family == "clip" else SiglipModel
    try:
        model: Any = cls.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True)
    except Exception as err:  # transformers raises many types here
        raise ExportError(
            f"{folder}: weights cannot be loaded as {cls.__name__} ({err}); check that "
            "the download is complete."
        ) from err
    model.eval()
    vcfg, tcfg = model.config.vision_config, model.config.text_config
    return Checkpoint(
        ref=ref, folder=folder, family=family, model=model, tokenizer=tokenizer,
        image=image_spec(folder, int(vcfg.image_size), resize),
        text=text_spec(tokenizer, int(tcfg.max_position_embeddings)),
        weights_sha256=digest, revision=revision,
    )
