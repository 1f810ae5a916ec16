"""Engine manifests: what a TensorRT engine was built from and for, so a stale one is never run.

A serialized engine is only valid for the TensorRT version, the GPU (compute capability)
and the exact ONNX it was built from; TensorRT itself says no more than "Version tag does
not match" - or, worse, loads an engine built from an older calibration. Each engine
therefore has a ``*.engine.json`` beside it, and :func:`mismatches` compares it with the
bundle and the device before anything is deserialized. Every mismatch is one line that
names what differs and the command that rebuilds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.bundle import Bundle
from edge.errors import EngineError
from edge.hashing import sha256_file

ENGINE_DIR = "engines"
EnginePrecision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceFacts(_Strict):
    """The parts of a device an engine depends on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str = Field(description="major.minor, e.g. 8.7 for Jetson Orin")
    l4t_release: str | None = Field(default=None, description="Jetson Linux release (JetPack), when on a Jetson.")


class Profile(_Strict):
    """The one optimization profile: the batch range the engine accepts."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def max_batch(self) -> int:
        return self.max[0]


class EngineManifest(_Strict):
    format_version: Literal[1] = 1
    role: str = Field(description="Bundle role of the ONNX: vision.fp16, vision.int8, text.fp16, ...")
    tower: Literal["vision", "text"]
    precision: EnginePrecision
    onnx_path: str
    onnx_sha256: str = Field(min_length=64, max_length=64)
    calibration_data_sha256: str | None = None
    device: DeviceFacts
    profile: Profile
    workspace_mib: int = Field(gt=0)
    timing_cache: str | None = None
    engine_path: str
    engine_sha256: str = Field(min_length=64, max_length=64)
    engine_bytes: int = Field(gt=0)
    build_seconds: float = Field(ge=0)
    built_at: str
    builder: str = Field(description="edge-inspect version that built it")


def engine_role(tower: str, precision: str, bundle: Bundle) -> str:
    """The bundle role an engine of ``precision`` is built from.

    The text tower runs only when prompts change, so an INT8 deployment keeps it in FP16
    (or FP32 when the bundle has no FP16 text tower).
    """
    if tower == "vision":
        return "vision" if precision == "fp32" else f"vision.{precision}"
    if precision in ("fp16", "int8") and "text.fp16" in bundle.manifest.files:
        return "text.fp16"
    return "text"


def engine_paths(bundle: Bundle, tower: str, precision: str) -> tuple[Path, Path]:
    """(engine file, manifest file) for a tower at a precision."""
    folder = bundle.root / ENGINE_DIR
    return folder / f"{tower}.{precision}.engine", folder / f"{tower}.{precision}.engine.json"


def rebuild_command(bundle: Bundle, precision: str) -> str:
    return f"edge-inspect build {bundle.root} --precision {precision}"


def read_engine_manifest(path: Path) -> EngineManifest:
    try:
        return EngineManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise EngineError(f"{path}: cannot read the engine manifest ({err.strerror}).") from err
    except ValidationError as err:
        where = ".".join(str(p) for p in err.errors()[0]["loc"])
        raise EngineError(f"{path}: invalid engine manifest at '{where}'; rebuild the engine.") from err


def write_engine_manifest(path: Path, manifest: EngineManifest) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def mismatches(manifest: EngineManifest, bundle: Bundle, device: DeviceFacts | None, engine: Path,
               max_batch: int | None = None, verify_engine: bool = True) -> list[str]:
    """Why this engine must not run here (empty: it may). ``device`` None skips the device checks."""
    out: list[str] = []
    entry = bundle.manifest.files.get(manifest.role)
    if entry is None:
        out.append(f"the bundle no longer has '{manifest.role}'")
    elif entry.sha256 != manifest.onnx_sha256:
        out.append(f"built from another {manifest.onnx_path} (sha256 {manifest.onnx_sha256[:12]}..., the bundle's "
                   f"is {entry.sha256[:12]}...): the bundle was re-exported or re-calibrated")
    if device is not None:
        built = manifest.device
        if built.tensorrt_version != device.tensorrt_version:
            out.append(f"built with TensorRT {built.tensorrt_version}, this device has {device.tensorrt_version}")
        if built.compute_capability != device.compute_capability or built.gpu_name != device.gpu_name:
            out.append(f"built for {built.gpu_name} (sm {built.compute_capability}), this device is "
                       f"{device.gpu_name} (sm {device.compute_capability})")
        if built.l4t_release != device.l4t_release:
            out.append(f"built on Jetson Linux {built.l4t_release}, this device runs {device.l4t_release}")
    if not engine.is_file():
        out.append(f"{engine.name} is missing")
    elif engine.stat().st_size != manifest.engine_bytes:
        out.append(f"{engine.name} has {engine.stat().st_size} bytes, {manifest.engine_bytes} were written "
                   "(truncated or replaced)")
    elif verify_engine and sha256_file(engine) != manifest.engine_sha256:
        out.append(f"{engine.name} does not match its sha256 (damaged or replaced)")
    if max_batch is not None and max_batch > manifest.profile.max_batch:
        out.append(f"model.max_batch {max_batch} exceeds the engine's profile (max batch "
                   f"{manifest.profile.max_batch})")
    return out


def refuse(manifest_path: Path, problems: list[str], bundle: Bundle, precision: str) -> EngineError:
    """The one-line error for a stale or foreign engine, with the command that fixes it."""
    return EngineError(f"{manifest_path.name.removesuffix('.json')}: {'; '.join(problems)}; rebuild with "
                       f"'{rebuild_command(bundle, precision)}'.")
