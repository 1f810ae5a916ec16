"""The model bundle: the folder that everything downstream of export reads.

``bundle.json`` (format_version 1) is the only description of the model the runtime ever
sees; nothing downstream opens the original checkpoint. Opening a bundle validates the
manifest and, by default, every file's sha256, so a half-copied or edited bundle is
refused before it can produce wrong verdicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import BundleError, read_utf8
from edge.hashing import sha256_file, sha256_json

MANIFEST_NAME = "bundle.json"
FORMAT_VERSION = 1

Family = Literal["clip", "siglip"]
Precision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceInfo(_Strict):
    """Where the weights came from, so a bundle can be traced back to its checkpoint."""

    model: str = Field(description="Hub id or local path the checkpoint was loaded from.")
    revision: str | None = Field(default=None, description="Hub commit, when known.")
    weights_sha256: str = Field(description="sha256 over the checkpoint's weight files.")


class ImageSpec(_Strict):
    """How a camera frame becomes ``pixel_values``; read by preprocessing only."""

    size: int = Field(gt=0, le=4096, description="Square input side in pixels.")
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: Literal["crop", "squash"] = Field(
        description="crop: shortest edge to size then centre crop (CLIP's training recipe); "
        "squash: the whole ROI resized to size x size, nothing cut away."
    )
    colour: Literal["rgb"] = "rgb"
    input: Literal["float32", "uint8"] = Field(
        default="float32", description="float32: vision.onnx takes pixel_values [B, 3, S, S], normalised RGB "
        "(bundles exported before uint8 input); uint8: it takes images [B, S, S, 3], BGR 0..255 as cameras give "
        "them, resized, and does the channel flip, scaling and mean/std itself (folded into its first layer).")
    resample: Literal["area", "halve", "pyramid", "linear"] = Field(
        default="area", description="How a larger frame is shrunk to size: area (OpenCV INTER_AREA, close to PIL's "
        "antialiased resize; bundles exported before the option), halve (2x2 box averages while the frame is at least "
        "twice the size, then bilinear: 7x cheaper, the same accuracy; the default for new exports), pyramid (the "
        "same with pyrDown: blurs thin scratches) or linear (bilinear only: cheapest, aliases fine periodic detail).")


LEGACY_IMAGE = {"input": "float32", "resample": "area"}  # added after format 1 shipped: absent = these


class TextSpec(_Strict):
    """How a prompt becomes ``input_ids``; read by the tokenizer wrapper only."""

    context_length: int = Field(gt=0, le=4096)
    pad_id: int = Field(ge=0)
    pad_token: str
    lowercase: bool = Field(description="Whether the tokenizer folds case (informative).")
    needs_attention_mask: bool = Field(
        description="True when text.onnx takes attention_mask (CLIP pools at EOS under a "
        "causal mask and SigLIP was trained on padded ids, so neither needs one)."
    )


class PatchInfo(_Strict):
    """The vision graph's second output, ``patch_embeds`` [B, P, Dp]: where a defect is."""

    source: Literal["joint", "layers"] = Field(description="joint: last-layer tokens through the image head "
                                               "(comparable with text); layers: hidden states of chosen layers.")
    layers: list[int] = Field(description="Hidden-state indices concatenated (1 = after the first block).")
    grid: tuple[int, int] = Field(description="Patch rows x cols: P = rows * cols, row-major.")
    dim: int = Field(gt=0, description="Dp, the width of one patch token.")
    normalized: bool = Field(default=True, description="Each patch token is L2-normalised in the graph.")


class GateRecord(_Strict):
    """What the accuracy gate measured against FP32 on the calibration hold-out."""

    passed: bool
    forced: bool = Field(default=False, description="Written with --force although the gate failed.")
    images: int = Field(ge=0, description="Hold-out crops the cosines were measured on.")
    frames: int | None = Field(default=None, ge=0, description="Hold-out frames the verdicts were compared on "
                               "(null in bundles calibrated before verdicts were per frame).")
    cosine_mean: float
    cosine_p1: float
    cosine_min: float
    verdict_agreement: float = Field(ge=0, le=1, description="Share of frames without a harmful flip.")
    agreement_lower_bound: float | None = Field(default=None, ge=0, le=1, description="Its Wilson lower bound "
                                                "(one-sided 95 %): what the gate compares with min_agreement.")
    harmful_flips: int | None = Field(default=None, ge=0, description="Frames whose verdict flipped ok <-> ng or "
                                      "changed NG category.")
    band_moves: int | None = Field(default=None, ge=0, description="Frames that moved into or out of uncertain.")
    max_score_diff: float = Field(ge=0)
    patch_cosine_p1: float | None = Field(default=None, description="1st percentile of the patch tokens' "
                                          "cosine (bundles with patch_embeds): what the good-part memory sees.")
    min_patch_cosine: float | None = Field(default=None, description="Threshold the patch tokens' p1 cosine had "
                                           "to meet (null without patch_embeds).")
    latency_ratio: float | None = Field(
        default=None, description="ONNX Runtime CPU time per image, this artifact / FP32 (batch 8)."
    )
    min_cosine: float = Field(description="Threshold the p1 cosine had to meet.")
    min_agreement: float = Field(description="Threshold the agreement's lower bound had to meet.")


class CalibrationRecord(_Strict):
    """How a reduced-precision artifact was made, so that engine build and runtime can tell."""

    derived_from: str = Field(min_length=64, max_length=64, description="sha256 of the FP32 file it came from.")
    method: str = Field(description="fp16: 'autocast'; int8: minmax | percentile | entropy (+ format).")
    format: str = Field(description="float16-mixed | qdq-s8s8 (TensorRT) | an ONNX Runtime CPU format.")
    tool: str = Field(description="Library and version that did the mechanics.")
    data_sha256: str = Field(min_length=64, max_length=64, description="Identity of the calibration images.")
    calibration_images: int = Field(ge=0)
    kept_float: list[str] = Field(default_factory=list, description="Node groups left in higher precision.")
    gate: GateRecord | None = None


class FileEntry(_Strict):
    """One file of the bundle with the hash that proves it is the one exported."""

    path: str
    sha256: str = Field(min_length=64, max_length=64)
    precision: Precision | None = None
    parity_min_cosine: float | None = Field(
        default=None, description="Worst cosine against the reference it was checked with."
    )
    calibration: CalibrationRecord | None = Field(
        default=None, description="Set on artifacts written by 'edge-inspect calibrate'."
    )


class BundleManifest(_Strict):
    """Everything the runtime needs to know about an exported model."""

    format_version: Literal[1] = 1
    name: str
    family: Family
    source: SourceInfo
    embed_dim: int = Field(gt=0)
    normalized: bool = Field(description="Encoders output L2-normalised embeddings.")
    image: ImageSpec
    text: TextSpec
    logit_scale: float = Field(gt=0, description="exp(learned log-scale), ready to multiply.")
    logit_bias: float | None = Field(description="SigLIP's learned bias; null for CLIP.")
    patches: PatchInfo | None = Field(default=None, description="patch_embeds of the vision graph; null in "
                                      "bundles exported without it (no good-part memory for those).")
    files: dict[str, FileEntry] = Field(
        description="Keyed by role: vision, text, tokenizer; calibration adds vision.fp16, text.fp16, "
        "vision.int8."
    )
    exporter: str = Field(description="edge-inspect version that wrote the bundle.")


REQUIRED_FILES = ("vision", "text", "tokenizer")


class Bundle:
    """An opened, validated bundle folder."""

    def __init__(self, root: Path, manifest: BundleManifest) -> None:
        self.root = root
        self.manifest = manifest

    @classmethod
    def open(cls, root: str | Path, verify_hashes: bool = True) -> Bundle:
        """Read and check a bundle; raise :class:`BundleError` naming what is wrong."""
        root = Path(root)
        manifest = read_manifest(root)
        for role in REQUIRED_FILES:
            if role not in manifest.files:
                raise BundleError(
                    f"{root / MANIFEST_NAME}: no '{role}' file listed; "
                    "re-export the bundle with 'edge-inspect export'."
                )
        bundle = cls(root, manifest)
        for role in manifest.files:
            bundle.path(role, verify=verify_hashes)
        return bundle

    def path(self, role: str, verify: bool = False) -> Path:
        """The file for a role, optionally checked against its recorded sha256."""
        entry = self.manifest.files.get(role)
        if entry is None:
            known = ", ".join(sorted(self.manifest.files))
            raise BundleError(
                f"{self.root}: bundle has no '{role}' file (it has: {known}); "
                "produce it with the step that makes it (export, calibrate)."
            )
        file = self.root / entry.path
        if not file.is_file():
            raise BundleError(
                f"{file}: listed in {MANIFEST_NAME} as '{role}' but missing; "
                "copy the whole bundle folder again or re-export it."
            )
        if verify:
            actual = sha256_file(file)
            if actual != entry.sha256:
                raise BundleError(
                    f"{file}: sha256 {actual[:12]}... does not match the manifest's "
                    f"{entry.sha256[:12]}...; the file was changed or damaged, copy the "
                    "bundle again or re-export it."
                )
        return file

    @property
    def hash(self) -> str:
        """Identity of the bundle's content (manifest includes every file hash). Image fields added later are
        left out while they hold what a bundle without them means, so an older bundle keeps its identity (the
        results' model.bundle, the memory and embedding caches) across an upgrade."""
        data = self.manifest.model_dump(mode="json")
        for key, legacy in LEGACY_IMAGE.items():
            if data["image"].get(key) == legacy:
                del data["image"][key]
        return sha256_json(data)

    @property
    def family(self) -> Family:
        return self.manifest.family


def read_manifest(root: Path) -> BundleManifest:
    """Parse ``bundle.json`` with a one-line error for every way it can be wrong."""
    if not root.is_dir():
        raise BundleError(
            f"{root}: not a bundle folder (does not exist); pass the folder that "
            "'edge-inspect export' wrote."
        )
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(
            f"{path}: missing; this folder is not a model bundle, create one with "
            "'edge-inspect export MODEL --out DIR'."
        )
    text = read_utf8(path, "the manifest was damaged or replaced, re-export the bundle ('edge-inspect export')",
                     BundleError)
    try:
        return BundleManifest.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BundleError(
            f"{path}: invalid manifest at '{where}': {first['msg']}; re-export the bundle "
            "with this version of edge-inspect."
        ) from err


def write_manifest(root: Path, manifest: BundleManifest) -> Path:
    """Write ``bundle.json`` atomically (temp name, then rename)."""
    path = root / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
