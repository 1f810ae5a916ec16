"""Checkpoint -> model bundle (vision.onnx, text.onnx, tokenizer.json, bundle.json).

The bundle is assembled in a temporary folder beside the target and renamed into place
only after every parity gate passed, so a failed export never leaves a bundle that looks
valid.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edge
from edge.bundle import (
    BundleManifest,
    FileEntry,
    PatchInfo,
    SourceInfo,
    TextSpec,
    write_manifest,
)
from edge.contract import DEFAULT_OPSET, GraphSpec, text_graph, vision_graph
from edge.errors import ExportError
from edge.hashing import sha256_file
from edge.preprocess import normalize
from edge.progress import Steps
from edge.tokenizer import PromptTokenizer
from export.checkpoint import Checkpoint, load_checkpoint
from export.parity import PARITY_PROMPTS, ParityCase, compare, image_cases, text_cases, vision_cases

PARITY_MIN_COSINE = 0.9999


@dataclass
class ExportOptions:
    opset: int = DEFAULT_OPSET
    parity_batch: int = 4
    seed: int = 0
    resize: str = "auto"
    name: str | None = None
    force: bool = False
    patch_layers: str = "auto"  # "auto" | "none" | "joint" | "1,2" (hidden-state indices): patch_embeds output
    uint8_input: bool = True  # vision.onnx takes uint8 BGR images and normalises in the graph (False: pixel_values)
    resample: str = "halve"  # how preprocessing shrinks frames for this bundle (README, "Preprocessing")


def patch_spec(ckpt: Checkpoint, choice: str) -> Any:
    """The patch tokens to export: ``auto`` takes mid-level layers (depth/4 and depth/2, at least the
    first block), PatchCore's choice; ``joint`` the text-comparable last layer; ``none`` no second output."""
    from export.towers import PatchSpec

    depth = int(ckpt.model.config.vision_config.num_hidden_layers)
    if choice == "none":
        return None
    if choice == "joint":
        return PatchSpec("joint", (-1,))
    if choice == "auto":
        return PatchSpec("layers", tuple(sorted({max(1, depth // 4), max(1, depth // 2)})))
    try:
        layers = tuple(int(x) for x in choice.split(",") if x.strip())
    except ValueError as err:
        raise ExportError(f"--patch-layers {choice}: expected auto, none, joint or layer numbers like 1,2.") from err
    if not layers or any(not 0 <= n <= depth for n in layers):
        raise ExportError(f"--patch-layers {choice}: layers must be within 0..{depth} (the tower has {depth} "
                          "blocks; 0 is the patch embedding).")
    return PatchSpec("layers", layers)


def patch_info(ckpt: Checkpoint, spec: Any) -> PatchInfo | None:
    if spec is None:
        return None
    import torch

    from export.towers import VisionTower

    s = ckpt.image.size
    with torch.no_grad():
        _, tokens = VisionTower(ckpt.model, spec).eval()(torch.zeros(1, 3, s, s))
    side = s // int(ckpt.model.config.vision_config.patch_size)
    return PatchInfo(source=spec.source, layers=list(spec.layers), grid=(side, side), dim=int(tokens.shape[-1]))


def _onnx_export(module: Any, example: Any, path: Path, graph: GraphSpec, opset: int) -> None:
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, opset_version=opset,
            input_names=graph.input_names, output_names=graph.output_names,
            dynamic_axes=graph.dynamic_axes, do_constant_folding=True,
        )
    import onnx

    onnx.checker.check_model(str(path))


def _torch_fn(module: object, output: int = 0):  # type: ignore[no-untyped-def]
    """PyTorch's output ``output`` as rows (patch tokens flattened to one row per patch)."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.from_numpy(x))  # type: ignore[operator]
        out = out[output] if isinstance(out, tuple) else out
        return out.reshape(-1, out.shape[-1]).numpy()  # type: ignore[no-any-return]

    return run


def _ort_fn(path: Path, input_name: str, output: int = 0):  # type: ignore[no-untyped-def]
    from edge.encoders.onnxruntime import OrtSession

    session = OrtSession(path)
    name = session.session.get_outputs()[output].name  # type: ignore[union-attr]

    def run(x: np.ndarray) -> np.ndarray:
        out = session.run(name, {input_name: x})
        return out.reshape(-1, out.shape[-1])

    return run


def _gate(file: str, cases: list[ParityCase], steps: Steps) -> float:
    for c in cases:
        steps.info(f"{file} {c.name}: min cosine {c.min_cosine:.6f}")
    worst = min(cases, key=lambda c: c.min_cosine)
    if worst.min_cosine < PARITY_MIN_COSINE:
        raise ExportError(
            f"{file} does not match PyTorch on '{worst.name}': min cosine "
            f"{worst.min_cosine:.6f} < {PARITY_MIN_COSINE} (missed by "
            f"{PARITY_MIN_COSINE - worst.min_cosine:.6f}); try another --opset or report the "
            "checkpoint, the bundle was not written."
        )
    return worst.min_cosine


def _check_tokenizer(ckpt: Checkpoint, tokenizer_json: Path, spec: TextSpec) -> None:
    ours, _ = PromptTokenizer(tokenizer_json, spec)(list(PARITY_PROMPTS))
    theirs = ckpt.tokenizer(
        list(PARITY_PROMPTS), padding="max_length", truncation=True,
        max_length=spec.context_length, return_tensors="np",
    )["input_ids"]
    if not np.array_equal(ours, theirs):
        raise ExportError(
            f"{ckpt.folder}: tokenizer.json does not reproduce the checkpoint tokenizer's ids "
            "(padding/truncation to the context length); report the checkpoint."
        )


def _save_tokenizer(ckpt: Checkpoint, path: Path) -> None:
    backend = ckpt.tokenizer.backend_tokenizer
    from tokenizers import Tokenizer

    clean = Tokenizer.from_str(backend.to_str())
    clean.no_padding()
    clean.no_truncation()
    clean.save(str(path))


def _export_vision(ckpt: Checkpoint, tmp: Path, opt: ExportOptions, steps: Steps, patches: Any) -> FileEntry:
    """The vision graph; with uint8 input, checked against the float PyTorch tower fed by the runtime's own
    float normalisation, so the folding is proven, not assumed."""
    import torch

    from export.towers import VisionTower
    from export.uint8_input import Uint8Images

    spec = ckpt.image
    tower = VisionTower(ckpt.model, patches).eval()
    graph = vision_graph(patches is not None, spec.input)
    path = tmp / "vision.onnx"
    s = spec.size
    what = " (image and patch embeddings)" if patches else ""
    if spec.input == "uint8":
        module = Uint8Images(tower, spec).eval()
        with steps.step(f"exporting vision.onnx{what}, uint8 input"):
            steps.info("normalisation " + ("folded into the patch embedding" if module.folded else "as graph ops"))
            _onnx_export(module, torch.zeros(2, s, s, 3, dtype=torch.uint8), path, graph, opt.opset)
        cases = image_cases(spec, opt.parity_batch, opt.seed)
        reference = lambda i: lambda x: _torch_fn(tower, i)(normalize(x, spec))  # noqa: E731
    else:
        with steps.step(f"exporting vision.onnx{what}"):
            _onnx_export(tower, torch.zeros(2, 3, s, s), path, graph, opt.opset)
        cases = vision_cases(spec, opt.parity_batch, opt.seed)
        reference = lambda i: _torch_fn(tower, i)  # noqa: E731
    with steps.step("checking vision.onnx against PyTorch"):
        worst = min(_gate(f"vision.onnx {graph.output_names[i]}",
                          compare(cases, reference(i), _ort_fn(path, graph.input_names[0], i)), steps)
                    for i in range(len(graph.outputs)))
    return FileEntry(path=path.name, sha256=sha256_file(path), precision="fp32",
                     parity_min_cosine=round(worst, 7))


def _export_text(ckpt: Checkpoint, tmp: Path, opt: ExportOptions, steps: Steps) -> FileEntry:
    import torch

    from export.towers import TextTower

    tower = TextTower(ckpt.model).eval()
    graph = text_graph(ckpt.text.needs_attention_mask)
    path = tmp / "text.onnx"
    length = ckpt.text.context_length
    with steps.step("exporting text.onnx"):
        example = torch.full((2, length), ckpt.text.pad_id, dtype=torch.long)
        _onnx_export(tower, example, path, graph, opt.opset)
    with steps.step("checking text.onnx and tokenizer.json against PyTorch"):
        tokenizer_path = tmp / "tokenizer.json"
        _check_tokenizer(ckpt, tokenizer_path, ckpt.text)
        ids_of = lambda p: PromptTokenizer(tokenizer_path, ckpt.text)(p)[0]  # noqa: E731
        vocab = int(ckpt.model.config.text_config.vocab_size)
        cases = text_cases(ids_of, vocab, length, opt.parity_batch, opt.seed)
        worst = _gate("text.onnx", compare(cases, _torch_fn(tower),
                                           _ort_fn(path, graph.input_names[0])), steps)
    return FileEntry(path=path.name, sha256=sha256_file(path), precision="fp32",
                     parity_min_cosine=round(worst, 7))


def embed_dim(ckpt: Checkpoint) -> int:
    """Width of the shared embedding space (SigLIP's is the vision width)."""
    cfg = ckpt.model.config
    return int(cfg.projection_dim if ckpt.family == "clip" else cfg.vision_config.hidden_size)


def _manifest(ckpt: Checkpoint, files: dict[str, FileEntry], name: str, patches: PatchInfo | None) -> BundleManifest:
    model = ckpt.model
    bias = getattr(model, "logit_bias", None)
    return BundleManifest(
        name=name, family=ckpt.family,
        source=SourceInfo(model=ckpt.ref, revision=ckpt.revision, weights_sha256=ckpt.weights_sha256),
        embed_dim=embed_dim(ckpt),
        normalized=True, image=ckpt.image, text=ckpt.text,
        logit_scale=float(model.logit_scale.exp().item()),
        logit_bias=float(bias.item()) if ckpt.family == "siglip" and bias is not None else None,
        patches=patches, files=files, exporter=f"edge-inspect {edge.__version__}",
    )


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()) and not force:
        raise ExportError(
            f"{out}: folder exists and is not empty; choose another --out or pass --force "
            "to replace it."
        )


def bundle_from_checkpoint(model_ref: str, out: Path, opt: ExportOptions | None = None,
                           quiet: bool = False) -> BundleManifest:
    """Export a checkpoint to a bundle folder; raise ExportError if any gate fails."""
    opt = opt or ExportOptions()
    out = Path(out)
    _prepare_out(out, opt.force)
    steps = Steps(total=6, quiet=quiet)
    with steps.step(f"loading checkpoint {model_ref}"):
        ckpt = load_checkpoint(model_ref, resize=opt.resize)
        ckpt.image = ckpt.image.model_copy(update={"input": "uint8" if opt.uint8_input else "float32",
                                                   "resample": opt.resample})
        steps.info(f"family {ckpt.family}, image {ckpt.image.size}px ({ckpt.image.resize}), "
                   f"context {ckpt.text.context_length}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp_name:
        tmp = Path(tmp_name)
        _save_tokenizer(ckpt, tmp / "tokenizer.json")
        spec = patch_spec(ckpt, opt.patch_layers)
        files = {"vision": _export_vision(ckpt, tmp, opt, steps, spec),
                 "text": _export_text(ckpt, tmp, opt, steps)}
        files["tokenizer"] = FileEntry(path="tokenizer.json", sha256=sha256_file(tmp / "tokenizer.json"))
        name = opt.name or ckpt.folder.name
        with steps.step("writing bundle.json"):
            manifest = _manifest(ckpt, files, name, patch_info(ckpt, spec))
            write_manifest(tmp, manifest)
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
            tmp.mkdir()  # TemporaryDirectory cleans up the (now empty) name
            out.chmod(0o755)  # mkdtemp made it 0700; a service user must be able to read the bundle
    return manifest
