"""``edge-inspect calibrate``: FP16 or INT8 artifacts, written into the bundle only if they pass the gate.

Everything is built in a hidden work folder inside the bundle (same file system, so the
final rename is atomic); the manifest is rewritten last. An interrupted or failed run
leaves the bundle exactly as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field

from calibration import cpu_int8
from calibration import fp16 as fp16_mod
from calibration import int8 as int8_mod
from calibration.data import CalibrationData, SplitSpec, load_calibration_data
from calibration.gate import (
    DEFAULTS,
    Comparison,
    Thresholds,
    Views,
    check_sample,
    compare,
    cosines,
    encode,
    seconds_per_image,
)
from calibration.graph import groups
from calibration.qdq_rules import summary, violations
from calibration.ranges import FeedReader, activation_absmax, input_names
from calibration.report import REPORT_DIR, flip_rows, flipped_frames_png, histogram_png, update
from calibration.sensitivity import Variants, keep_until_it_passes, rank
from edge import __version__
from edge.bundle import Bundle, CalibrationRecord, FileEntry, GateRecord, write_manifest
from edge.config import TileConfig
from edge.contract import VISION_INPUTS
from edge.encoders.onnxruntime import OrtImageEncoder, OrtTextEncoder
from edge.errors import CalibrationError, ConfigError
from edge.failpoint import failpoint
from edge.hashing import sha256_file
from edge.inspect.prompt_state import text_embeddings
from edge.model import ZeroShotModel
from edge.progress import Steps
from edge.prompts import PromptSet, load_prompt_set


class CalibrateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    precision: Literal["fp16", "int8"]
    target: Literal["tensorrt", "cpu"] = "tensorrt"
    images: str
    method: int8_mod.Method = "minmax"
    percentile: float = Field(default=99.999, gt=0, le=100)
    calib_images: int = Field(default=64, ge=1)
    holdout_images: int = Field(default=128, ge=1)
    seed: int = 0
    tiles: TileConfig | None = None
    prompts: Path | None = None
    exclude: tuple[str, ...] = ()
    auto: bool = False
    sensitivity: bool = False
    quantize_attention: bool = False
    headroom: float = Field(default=fp16_mod.DEFAULT_HEADROOM, ge=1)
    min_cosine: float | None = Field(default=None, gt=0, le=1)
    min_agreement: float | None = Field(default=None, ge=0, le=1)
    min_patch_cosine: float | None = Field(default=None, ge=0, le=1)
    force: bool = False

    @property
    def thresholds(self) -> Thresholds:
        d = DEFAULTS[self.precision]
        return Thresholds(self.min_cosine if self.min_cosine is not None else d.min_cosine,
                          self.min_agreement if self.min_agreement is not None else d.min_agreement,
                          self.min_patch_cosine if self.min_patch_cosine is not None else d.min_patch_cosine)


@dataclass
class Artifact:
    role: str
    file: Path  # in the work folder until committed
    precision: str
    record: CalibrationRecord


@dataclass
class Outcome:
    artifacts: list[Artifact]
    gate: GateRecord
    comparison: Comparison  # per-image numbers behind the gate, for the histogram
    section: dict[str, Any] = field(default_factory=dict)  # this artifact's part of report.json
    report: Path | None = None
    thumbnails: list[np.ndarray] = field(default_factory=list)  # hold-out frames, for the flipped-frames sheet


def default_prompts() -> Path:
    from export.captions import DEMO_PROMPTS_FILE

    return DEMO_PROMPTS_FILE


def calibrate(root: Path, opts: CalibrateOptions, quiet: bool = False) -> Outcome:
    """Run one calibration; raises CalibrationError (gate failed, bad data) or ConfigError."""
    bundle = Bundle.open(root)
    if "vision" not in bundle.manifest.files:
        raise CalibrationError(f"{root}: bundle has no vision.onnx; re-export it with 'edge-inspect export'.")
    prompts = load_prompt_set(opts.prompts or default_prompts())
    steps = Steps(5 if opts.precision == "fp16" else 6, quiet=quiet)
    with steps.step(f"reading calibration images from {opts.images}"):
        data = load_calibration_data(opts.images, bundle.manifest.image,
                                     SplitSpec(opts.calib_images, opts.holdout_images, opts.seed, opts.tiles))
        skipped = f", {len(data.skipped)} unreadable files skipped" if data.skipped else ""
        steps.info(f"{len(data.calibration)} calibration and {len(data.holdout)} hold-out crops "
                   f"({data.holdout_frames} hold-out frames){skipped}")
        check_sample(data.holdout_frames, opts.thresholds.min_agreement)
    work = Path(tempfile.mkdtemp(prefix=".calibrate-", dir=root))
    try:
        with ZeroShotModel(bundle) as fp32:
            with steps.step("FP32 reference embeddings of the hold-out set"):
                ref = encode(bundle.path("vision"), data.holdout)
                ref_text = text_embeddings(fp32, prompts)
            if opts.precision == "fp16":
                outcome = _fp16(bundle, fp32, opts, data, prompts, ref, ref_text, work, steps)
            elif opts.target == "cpu":
                outcome = _cpu_int8(bundle, fp32, opts, data, prompts, ref, ref_text, work, steps)
            else:
                outcome = _int8(bundle, opts, data, prompts, ref, ref_text, work, steps)
        outcome.thumbnails = data.thumbnails
        _require_gate(outcome, opts)
        with steps.step("writing artifacts and report into the bundle"):
            outcome.report = _commit(bundle, outcome)
        return outcome
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _progress(steps: Steps, what: str, total: int) -> Any:
    marks = {max(1, round(total * f)) for f in (0.25, 0.5, 0.75, 1.0)}
    return lambda done: steps.info(f"{what}: {done}/{total} batches") if done in marks else None


def _feeds(pixels: np.ndarray, bundle: Bundle, batch: int = 8) -> list[dict[str, np.ndarray]]:
    name = VISION_INPUTS[bundle.manifest.image.input].name  # images (uint8) or pixel_values (older bundles)
    return [{name: pixels[i : i + batch]} for i in range(0, len(pixels), batch)]


def _record(bundle: Bundle, role_from: str, method: str, fmt: str, tool: str, data: CalibrationData,
            kept: list[str]) -> CalibrationRecord:
    return CalibrationRecord(derived_from=bundle.manifest.files[role_from].sha256, method=method, format=fmt,
                             tool=tool, data_sha256=data.data_sha256, calibration_images=len(data.calibration),
                             kept_float=kept)


def _data_section(opts: CalibrateOptions, data: CalibrationData) -> dict[str, Any]:
    return {"source": data.source, "calibration": len(data.calibration), "holdout": len(data.holdout),
            "calib_images": opts.calib_images, "holdout_images": opts.holdout_images, "seed": opts.seed,
            "tiles": opts.tiles.model_dump(mode="json") if opts.tiles else None, "sha256": data.data_sha256,
            "skipped": data.skipped}


def _ort_version() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def _fp16(bundle: Bundle, fp32: ZeroShotModel, opts: CalibrateOptions, data: CalibrationData, prompts: PromptSet,
          ref: Views, ref_text: np.ndarray, work: Path, steps: Steps) -> Outcome:
    texts = [t for c in prompts.categories for t in prompts.texts(c)]
    ids, mask = fp32.tokenizer(texts)
    towers = {"vision": _feeds(data.calibration, bundle), "text": [{"input_ids": ids, "attention_mask": mask}]}
    plans: dict[str, fp16_mod.Fp16Plan] = {}
    files: dict[str, Path] = {}
    with steps.step("FP32 activation ranges and FP16 conversion (vision, text)"):
        for tower, feeds in towers.items():
            src = bundle.path(tower)
            names = set(input_names(src))
            reader = FeedReader([{k: v for k, v in f.items() if k in names} for f in feeds])
            model = onnx.load(str(src))
            plans[tower] = fp16_mod.plan_fp16(model, activation_absmax(src, reader), opts.headroom)
            files[tower] = work / f"{tower}.fp16.onnx"
            onnx.save(fp16_mod.convert(model, plans[tower]), str(files[tower]))
            p = plans[tower]
            steps.info(f"{tower}: largest activation {p.largest_activation:.4g}, {len(p.kept)} nodes kept in fp32")
    with steps.step("gate: FP16 vs FP32 on the hold-out set"):
        with ZeroShotModel(bundle, OrtImageEncoder(files["vision"]), OrtTextEncoder(files["text"])) as half:
            cand_text = text_embeddings(half, prompts)
            text_cos = cosines(fp32.embed_texts(texts), half.embed_texts(texts))
        comparison = compare(ref, encode(files["vision"], data.holdout), ref_text, cand_text, prompts, bundle.manifest,
                             data.holdout_counts, text_cos)
        ratio = seconds_per_image(files["vision"], data.holdout) / seconds_per_image(bundle.path("vision"),
                                                                                     data.holdout)
        gate = comparison.record(opts.thresholds, ratio)
    artifacts = []
    for tower in ("vision", "text"):
        kept = [k.node for k in plans[tower].kept]
        record = _record(bundle, tower, "autocast", "float16-mixed", _ort_version() + " float16 converter", data,
                         kept).model_copy(update={"gate": gate})
        artifacts.append(Artifact(f"{tower}.fp16", files[tower], "fp16", record))
    section = {
        "precision": "fp16", "method": "autocast", "data": _data_section(opts, data), "gate": gate.model_dump(),
        "text_cosine_min": float(text_cos.min()), "text_prompts": len(texts), "headroom": opts.headroom,
        "fp16_limit": plans["vision"].fp16_limit,
        "largest_activation": {t: p.largest_activation for t, p in plans.items()},
        "kept_float": [{"name": k.node, "op": k.op, "reason": k.reason, "tower": t}
                       for t, p in plans.items() for k in p.kept],
    }
    return Outcome(artifacts, gate, comparison, section)


def _resolve_excludes(requested: tuple[str, ...], by_group: dict[str, list[str]]) -> tuple[set[str], list[str]]:
    nodes = {n for ns in by_group.values() for n in ns}
    out: set[str] = set()
    kept: list[str] = []
    for name in requested:
        if name in by_group:
            out.update(by_group[name])
        elif name in nodes:
            out.add(name)
        else:
            raise ConfigError(f"--exclude {name}: no such node group or quantizable node; groups are "
                              f"{', '.join(by_group)}.")
        kept.append(name)
    if nodes and nodes <= out:  # an "INT8" file with nothing quantized would pass the gate as FP32 in disguise
        raise ConfigError(f"--exclude {','.join(requested)}: keeps every quantizable node in float, so nothing "
                          "would be INT8; exclude fewer groups, or use --precision fp16.")
    return out, kept


def _int8(bundle: Bundle, opts: CalibrateOptions, data: CalibrationData, prompts: PromptSet,
          ref: Views, ref_text: np.ndarray, work: Path, steps: Steps) -> Outcome:
    src = bundle.path("vision")
    model = onnx.load(str(src))
    quantizable = int8_mod.linear_nodes(model, opts.quantize_attention)
    by_group = {g: [n for n in ns if n in set(quantizable)] for g, ns in groups(model).items()}
    by_group = {g: ns for g, ns in by_group.items() if ns}
    excluded, kept = _resolve_excludes(opts.exclude, by_group)
    cache = work / "ranges.json"
    batches = _feeds(data.calibration, bundle)
    with steps.step(f"calibration pass ({opts.method}) over {len(data.calibration)} crops"):
        reader = FeedReader(batches, _progress(steps, "calibration", len(batches)))
        int8_mod.compute_ranges(src, reader, cache, opts.method, opts.percentile)
    variant = iter(range(10_000))

    def build(skip: set[str]) -> Path:
        out = work / f"vision.int8.{next(variant)}.onnx"
        int8_mod.quantize(src, out, [n for n in quantizable if n not in skip], cache, opts.method)
        return out

    def evaluate(path: Path) -> Comparison:  # TensorRT's int8 arithmetic, the same on every CPU
        return compare(ref, encode(path, data.holdout, emulate_qdq=True), ref_text, ref_text, prompts, bundle.manifest,
                       data.holdout_counts)

    variants = Variants(build, evaluate, opts.thresholds)
    with steps.step("quantize and gate: INT8 vs FP32 on the hold-out set"):
        candidate, comparison, gate = variants.gate(excluded)
        steps.info(f"cosine p1 {gate.cosine_p1:.5f}, {gate.harmful_flips} harmful flip(s) in {gate.frames} frames "
                   f"(bound {gate.agreement_lower_bound:.3f}), {gate.band_moves} uncertain-band move(s)")
    ranked: list[dict[str, Any]] = []
    auto_steps: list[dict[str, Any]] = []
    needed = opts.sensitivity or not gate.passed
    with steps.step("sensitivity analysis, one group at a time" if needed else "sensitivity analysis: not needed"):
        if needed:
            ranked = rank(variants, by_group, quantizable, excluded, steps)
        fallback = keep_until_it_passes(variants, ranked, by_group, excluded, kept, steps) \
            if not gate.passed and opts.auto else None
        if fallback is not None:
            candidate, comparison, gate, kept, auto_steps = (fallback.path, fallback.comparison, fallback.gate,
                                                             fallback.kept, fallback.steps)
            excluded = excluded.union(*(by_group[g] for g in kept if g in by_group))
    qdq = onnx.load(str(candidate))
    broken = violations(qdq, opts.quantize_attention)
    if broken:
        raise CalibrationError(f"INT8 graph breaks a TensorRT rule ({broken[0]}; {len(broken)} in all); "
                               "this is a bug in edge-inspect, please report it with the bundle.")
    ratio = seconds_per_image(candidate, data.holdout) / seconds_per_image(src, data.holdout)
    gate = gate.model_copy(update={"latency_ratio": ratio})
    final = work / "vision.int8.onnx"
    candidate.replace(final)
    record = _record(bundle, "vision", opts.method, "qdq-s8s8", _ort_version() + " quantize_static (QDQ)", data,
                     kept).model_copy(update={"gate": gate})
    reasons = {c["group"]: c for c in ranked}
    section = {
        "precision": "int8", "method": opts.method, "percentile": opts.percentile if opts.method == "percentile"
        else None, "data": _data_section(opts, data), "gate": gate.model_dump(), "qdq": summary(qdq),
        "quantized_nodes": len([n for n in quantizable if n not in excluded]),
        "attention_int8": opts.quantize_attention,
        "kept_float": [{"name": k, "op": "group" if k in by_group else "node",
                        "reason": ("--exclude" if k in opts.exclude else
                                   f"automatic: alone in INT8 it gave cosine p1 {reasons[k]['cosine_p1']:.5f}")}
                       for k in kept],
        "sensitivity": ranked, "auto_steps": auto_steps,
    }
    artifact = Artifact("vision.int8", final, "int8", record)
    return Outcome([artifact], gate, comparison, section)


def _cpu_int8(bundle: Bundle, fp32: ZeroShotModel, opts: CalibrateOptions, data: CalibrationData,
              prompts: PromptSet, ref: Views, ref_text: np.ndarray, work: Path, steps: Steps) -> Outcome:
    """Every ONNX Runtime int8 format, gated and timed here; the fastest that passes is kept."""
    vnni = cpu_int8.has_vnni()
    src = bundle.path("vision")
    quantizable = int8_mod.linear_nodes(onnx.load(str(src)), opts.quantize_attention)
    by_group = {g: [n for n in ns if n in set(quantizable)] for g, ns in groups(onnx.load(str(src))).items()}
    excluded, kept = _resolve_excludes(opts.exclude, {g: ns for g, ns in by_group.items() if ns})
    nodes = [n for n in quantizable if n not in excluded]
    cache = work / "ranges-u8.json"
    batches = _feeds(data.calibration, bundle)
    with steps.step(f"calibration pass ({opts.method}, asymmetric for u8) over {len(data.calibration)} crops"):
        reader = FeedReader(batches, _progress(steps, "calibration", len(batches)))
        int8_mod.compute_ranges(src, reader, cache, opts.method, opts.percentile, symmetric=False)
    texts = [t for c in prompts.categories for t in prompts.texts(c)]
    with steps.step("text tower: dynamic int8 (prompt changes re-encode it on the station)"):
        text_src = bundle.path("text")
        text_file = cpu_int8.build("dynamic", text_src, work / "text.int8-cpu.onnx",
                                   int8_mod.linear_nodes(onnx.load(str(text_src))), None, vnni)
        text_timing = _prompt_timing(bundle, text_src, text_file)
        steps.info(f"100 prompts: fp32 {text_timing['fp32_ms']:.0f} ms, int8 {text_timing['int8_ms']:.0f} ms")
    fp32_b8 = seconds_per_image(src, data.holdout, batch=8)
    fp32_b1 = seconds_per_image(src, data.holdout, batch=1, repeats=5)
    candidates: list[dict[str, Any]] = []
    best: tuple[float, str, Path, GateRecord, Comparison] | None = None
    fallback: tuple[float, str, Path, GateRecord, Comparison] | None = None
    with steps.step(f"candidates: {', '.join(cpu_int8.CPU_FORMATS)} (gate and speed each)"):
        with ZeroShotModel(bundle, text_encoder=OrtTextEncoder(text_file)) as cand_model:
            cand_text = text_embeddings(cand_model, prompts)
            text_cos = cosines(fp32.embed_texts(texts), cand_model.embed_texts(texts))
        for fmt in cpu_int8.CPU_FORMATS:
            path = cpu_int8.build(fmt, src, work / f"vision.{fmt}.onnx", nodes, cache, vnni)
            comparison = compare(ref, encode(path, data.holdout), ref_text, cand_text, prompts,
                                 bundle.manifest, data.holdout_counts, text_cos)
            b8 = seconds_per_image(path, data.holdout, batch=8)
            b1 = seconds_per_image(path, data.holdout, batch=1, repeats=5)
            gate = comparison.record(opts.thresholds, b8 / fp32_b8)
            candidates.append({"format": fmt, "images_per_s_b1": 1 / b1, "images_per_s_b8": 1 / b8,
                               "speedup_b8": fp32_b8 / b8, "speedup_b1": fp32_b1 / b1, "cosine_p1": gate.cosine_p1,
                               "verdict_agreement": gate.verdict_agreement, "passed": gate.passed})
            steps.info(f"{fmt}: {1 / b8:.1f} image/s at batch 8 ({fp32_b8 / b8:.2f}x fp32), cosine p1 "
                       f"{gate.cosine_p1:.5f}, agreement {gate.verdict_agreement:.2%}")
            entry = (b8, fmt, path, gate, comparison)
            if gate.passed and (best is None or b8 < best[0]):
                best = entry
            if fallback is None or b8 < fallback[0]:
                fallback = entry
    assert fallback is not None
    _, chosen, path, gate, comparison = best or fallback
    final = work / "vision.int8-cpu.onnx"
    path.replace(final)
    tool = _ort_version() + (" quantize_dynamic" if chosen == "dynamic" else " quantize_static")
    vision_rec = _record(bundle, "vision", "dynamic" if chosen == "dynamic" else opts.method, chosen, tool, data,
                         kept).model_copy(update={"gate": gate})
    text_rec = _record(bundle, "text", "dynamic", "dynamic", _ort_version() + " quantize_dynamic", data,
                       []).model_copy(update={"gate": gate})
    section = {
        "precision": "int8", "target": "cpu", "method": chosen, "data": _data_section(opts, data),
        "gate": gate.model_dump(), "vnni": vnni, "reduce_range": not vnni, "candidates": candidates,
        "fp32_images_per_s_b1": 1 / fp32_b1, "fp32_images_per_s_b8": 1 / fp32_b8,
        "text_cosine_min": float(text_cos.min()), "text_prompts": len(texts), "text_timing": text_timing,
        "kept_float": [{"name": k, "op": "group", "reason": "--exclude"} for k in kept],
    }
    return Outcome([Artifact("vision.int8-cpu", final, "int8", vision_rec),
                    Artifact("text.int8-cpu", text_file, "int8", text_rec)], gate,
                   comparison, section)


def _prompt_timing(bundle: Bundle, fp32_text: Path, int8_text: Path, count: int = 100) -> dict[str, float]:
    """Milliseconds to encode ``count`` prompts: what an operator waits for after an edit."""
    import time

    texts = [f"a photo of a part with defect number {i}" for i in range(count)]
    out = {}
    for name, path in (("fp32", fp32_text), ("int8", int8_text)):
        with ZeroShotModel(bundle, text_encoder=OrtTextEncoder(path)) as model:
            model.embed_texts(texts[:8])  # warm-up
            start = time.perf_counter()
            model.embed_texts(texts)
            out[f"{name}_ms"] = (time.perf_counter() - start) * 1000
    return out


def _require_gate(outcome: Outcome, opts: CalibrateOptions) -> None:
    g = outcome.gate
    if g.passed:
        return
    if opts.force:
        outcome.gate = g.model_copy(update={"forced": True})
        for a in outcome.artifacts:
            assert a.record.gate is not None
            a.record = a.record.model_copy(update={"gate": a.record.gate.model_copy(update={"forced": True})})
        outcome.section["gate"] = outcome.gate.model_dump()
        return
    fails = []
    if g.cosine_p1 < g.min_cosine:
        fails.append(f"image cosine p1 {g.cosine_p1:.5f} < {g.min_cosine}")
    if (g.agreement_lower_bound or 0) < g.min_agreement:
        fails.append(f"{g.harmful_flips} harmful verdict flip(s) in {g.frames} frames: agreement bound "
                     f"{g.agreement_lower_bound:.3f} < {g.min_agreement}")
    if g.patch_cosine_p1 is not None and g.patch_cosine_p1 < (g.min_patch_cosine or 0):
        fails.append(f"patch-token cosine p1 {g.patch_cosine_p1:.5f} < {g.min_patch_cosine} (the good-part memory)")
    text_min = outcome.section.get("text_cosine_min")
    if text_min is not None and text_min < g.min_cosine:
        fails.append(f"text cosine min {text_min:.5f} < {g.min_cosine}")
    hint = "raise --headroom or check the kept-float list"
    sens = outcome.section.get("sensitivity") or []
    if sens:
        worst = ",".join(c["group"] for c in sens[:2])
        hint = f"try --exclude {worst} (most sensitive), or --auto"
    if opts.auto and sens:  # --auto ran (a failing gate always ranks the groups) and could not pass
        hint = ("with all but one group kept in float it still fails (keeping them all would leave no INT8): "
                "check the calibration images and --method, or use fp16")
    raise CalibrationError(f"{opts.precision.upper()} gate failed: {'; '.join(fails)}; nothing was written; "
                           f"{hint}, or --force to write it anyway.")


def _free_name(root: Path, role: str, sha: str, referenced: set[str]) -> str:
    """``{role}.onnx``, unless the current manifest still points at a file of that name (a
    re-calibration): then ``{role}.{sha8}.onnx``, so that no file the manifest references is ever
    replaced before the manifest itself."""
    plain = f"{role}.onnx"
    return plain if plain not in referenced else f"{role}.{sha[:8]}.onnx"


def _commit(bundle: Bundle, outcome: Outcome) -> Path:
    """Move the artifacts in under names the current manifest does not use, write the report, then
    swap the manifest (the commit point, one atomic rename), then delete the files it no longer
    lists. A kill at any moment leaves a bundle that opens: the old one or the new one."""
    root = bundle.root
    files = dict(bundle.manifest.files)
    referenced = {e.path for e in files.values()}
    replaced = []
    for a in outcome.artifacts:
        sha = sha256_file(a.file)
        dest = root / _free_name(root, a.role, sha, referenced)
        a.file.replace(dest)
        dest.chmod(0o644)
        if a.role in files and files[a.role].path != dest.name:
            replaced.append(files[a.role].path)
        files[a.role] = FileEntry(path=dest.name, sha256=sha, precision=a.precision,  # type: ignore[arg-type]
                                  calibration=a.record)
    failpoint("calibrate-commit")
    role = outcome.artifacts[0].role
    comparison = outcome.comparison
    (root / REPORT_DIR).mkdir(exist_ok=True)
    png = root / REPORT_DIR / f"{role}-score-diff.png"
    histogram_png(comparison.score_diffs, png, f"{role}: {len(comparison.kinds)} hold-out frames")
    flips = flipped_frames_png(comparison, outcome.thumbnails, root / REPORT_DIR / f"{role}-flips.png")
    section = outcome.section | {"histogram": f"{REPORT_DIR}/{png.name}", "roles": [a.role for a in outcome.artifacts],
                                 "flips": flip_rows(comparison), "flips_png": f"{REPORT_DIR}/{flips.name}" if flips
                                 else None,
                                 "files": {a.role: files[a.role].model_dump(mode="json") for a in outcome.artifacts},
                                 "edge_inspect": __version__}
    report = update(root, role, section)
    write_manifest(root, bundle.manifest.model_copy(update={"files": files}))
    still = {e.path for e in files.values()}
    for name in replaced:
        if name not in still:
            (root / name).unlink(missing_ok=True)
    return report
