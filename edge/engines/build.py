"""``edge-inspect build``: TensorRT engines from the bundle's ONNX, on the device that will run them.

The network is strongly typed: every tensor's precision comes from the ONNX that
calibration wrote (the float16-mixed graph, or the Q/DQ graph for INT8), never from
builder flags - the only way TensorRT 11 builds, and the documented direction since 10.
Written against the TensorRT 10 Python API; the one version branch is
:func:`network_flags`. Everything that can be checked without TensorRT (the bundle has the
ONNX, the options make sense) is checked before TensorRT is imported, so a wrong command
fails in a second, not after a ten-minute build.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import __version__
from edge.bundle import Bundle
from edge.engines.device import device_facts, import_tensorrt, tensorrt_major
from edge.engines.manifest import (
    DeviceFacts,
    EngineManifest,
    Profile,
    engine_paths,
    engine_role,
    mismatches,
    read_engine_manifest,
    write_engine_manifest,
)
from edge.errors import BundleError, ConfigError, EngineError
from edge.hashing import sha256_file
from edge.progress import Steps

TOWERS = ("vision", "text")
TEXT_MAX_BATCH = 64  # prompts x templates are encoded in chunks of this size


@dataclass(frozen=True)
class BuildOptions:
    precision: str
    max_batch: int = 16
    opt_batch: int | None = None  # default: min(8, max_batch)
    workspace_mib: int = 1024
    timing_cache: Path | None = None  # default: BUNDLE/engines/timing.cache

    def batches(self, tower: str) -> tuple[int, int]:
        """(opt, max) batch of a tower's profile."""
        if tower == "text":
            return min(16, TEXT_MAX_BATCH), TEXT_MAX_BATCH
        return self.opt_batch or min(8, self.max_batch), self.max_batch


def validate(bundle: Bundle, opts: BuildOptions) -> dict[str, str]:
    """Tower -> bundle role to build from; errors before any TensorRT work."""
    if opts.precision not in ("fp16", "int8"):
        raise ConfigError(f"--precision {opts.precision}: TensorRT engines are built for fp16 or int8.")
    if not 1 <= opts.max_batch <= 256:
        raise ConfigError(f"--max-batch {opts.max_batch}: must be 1 to 256.")
    if opts.opt_batch is not None and not 1 <= opts.opt_batch <= opts.max_batch:
        raise ConfigError(f"--opt-batch {opts.opt_batch}: must be 1 to --max-batch ({opts.max_batch}).")
    if opts.workspace_mib < 64:
        raise ConfigError(f"--workspace {opts.workspace_mib}: at least 64 MiB.")
    roles = {tower: engine_role(tower, opts.precision, bundle) for tower in TOWERS}
    if roles["vision"] not in bundle.manifest.files:
        raise BundleError(f"{bundle.root}: no {roles['vision']}.onnx to build a {opts.precision} engine from; make it "
                          f"with 'edge-inspect calibrate {bundle.root} --images DIR --precision {opts.precision}' "
                          "on the workstation and copy the bundle again.")
    return roles


def network_flags(trt: Any) -> int:
    """Strongly typed network: an explicit flag on TensorRT 10, always on (flag deprecated) on 11+."""
    if tensorrt_major(trt.__version__) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def progress_monitor(trt: Any, steps: Steps) -> Any:
    """An IProgressMonitor that prints phases and every quarter of their steps (TensorRT 10.0+)."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()  # TensorRT may call from several threads
            self._depth: dict[str, int] = {}
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._depth[phase_name] = self._depth.get(parent_phase or "", -1) + 1
                self._steps[phase_name] = num_steps
                steps.info(f"{'  ' * self._depth[phase_name]}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                total = self._steps.get(phase_name, 0)
                if total >= 8 and (step + 1) % max(1, total // 4) == 0:
                    steps.info(f"{'  ' * (self._depth.get(phase_name, 0) + 1)}{phase_name}: {step + 1}/{total}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                self._steps.pop(phase_name, None)

    return Monitor()


def _parse(trt: Any, logger: Any, onnx_path: Path) -> tuple[Any, Any, Any]:
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            node = getattr(e, "node_name", lambda: "")() or f"#{e.node()}"
            op = getattr(e, "node_operator", lambda: "")()
            errors.append(f"node {node}{f' ({op})' if op else ''}: {e.desc()}")
        raise EngineError(f"{onnx_path}: TensorRT's ONNX parser failed at {errors[0] if errors else 'an unknown node'}"
                          f"{f' (+{len(errors) - 1} more)' if len(errors) > 1 else ''}; this TensorRT may not support "
                          "the op: update JetPack/TensorRT or report the model.")
    return builder, network, parser


def _profile(network: Any, opt: int, max_batch: int) -> tuple[str, Profile]:
    first = network.get_input(0)
    shape = tuple(first.shape)
    rest = shape[1:]
    if any(d < 0 for d in rest):
        raise EngineError(f"input {first.name} has dynamic non-batch axes {shape}; only the batch may be dynamic.")
    prof = Profile(input=first.name, min=(1, *rest), opt=(opt, *rest), max=(max_batch, *rest))
    return first.name, prof


def build_engine(trt: Any, onnx_path: Path, engine_path: Path, opt: int, max_batch: int, workspace_mib: int,
                 cache_path: Path, steps: Steps) -> tuple[Profile, float]:
    """Parse, configure and build one serialized engine; write it (and the timing cache) atomically."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder, network, _parser = _parse(trt, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    name, prof = _profile(network, opt, max_batch)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):  # every input shares the batch axis (text: input_ids, attention_mask)
        inp = network.get_input(i)
        rest = tuple(inp.shape)[1:]
        profile.set_shape(inp.name, (1, *rest), (opt, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    config.progress_monitor = progress_monitor(trt, steps)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        raise EngineError(f"{onnx_path}: TensorRT could not build an engine (see its log above); try a larger "
                          "--workspace or a smaller --max-batch.")
    _atomic_write(engine_path, bytes(plan))
    _atomic_write(cache_path, bytes(config.get_timing_cache().serialize()))
    return prof, seconds


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build(root: Path, opts: BuildOptions, quiet: bool = False) -> list[EngineManifest]:
    """Build (or rebuild) the vision and text engines of one precision; self-test each before keeping it."""
    bundle = Bundle.open(root)
    roles = validate(bundle, opts)
    trt = import_tensorrt(station=False)
    facts = device_facts(station=False)
    steps = Steps(len(TOWERS) * 2, quiet=quiet)
    cache = opts.timing_cache or bundle.root / "engines" / "timing.cache"
    cache.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for tower in TOWERS:
        role = roles[tower]
        engine, manifest_path = engine_paths(bundle, tower, opts.precision)
        engine.parent.mkdir(exist_ok=True)
        opt, max_batch = opts.batches(tower)
        with steps.step(f"building the {tower} engine from {role}.onnx (batch 1..{max_batch}, opt {opt}); "
                        "the first build takes minutes"):
            prof, seconds = build_engine(trt, bundle.path(role, verify=True), engine, opt, max_batch,
                                         opts.workspace_mib, cache, steps)
        entry = bundle.manifest.files[role]
        manifest = EngineManifest(
            role=role, tower=tower, precision=entry.precision or "fp32",  # type: ignore[arg-type]
            onnx_path=entry.path, onnx_sha256=entry.sha256,
            calibration_data_sha256=entry.calibration.data_sha256 if entry.calibration else None,
            device=facts, profile=prof, workspace_mib=opts.workspace_mib, timing_cache=str(cache),
            engine_path=engine.name, engine_sha256=sha256_file(engine), engine_bytes=engine.stat().st_size,
            build_seconds=round(seconds, 1), built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            builder=__version__)
        with steps.step(f"self-test of the {tower} engine against the FP32 ONNX"):
            _selftest_or_remove(bundle, tower, engine, manifest)
        write_engine_manifest(manifest_path, manifest)
        out.append(manifest)
    return out


def _selftest_or_remove(bundle: Bundle, tower: str, engine: Path, manifest: EngineManifest) -> None:
    from edge.encoders.cuda_memory import CudaDevice
    from edge.encoders.tensorrt import TrtImageEncoder, TrtTextEncoder
    from edge.engines import selftest

    device = CudaDevice.open()
    cls = TrtImageEncoder if tower == "vision" else TrtTextEncoder
    try:
        with cls(engine, device, manifest.precision, None) as enc:
            result = selftest.run(enc, selftest.reference(bundle), tower, manifest.precision)
    finally:
        device.close()
    if not result.passed:
        engine.unlink(missing_ok=True)
        raise EngineError(f"{engine}: {result.describe()}; the engine was not kept. Re-calibrate, or report it "
                          "with the bundle and the device.")


@dataclass
class EngineState:
    tower: str
    precision: str
    engine: Path
    problems: list[str]

    @property
    def fresh(self) -> bool:
        return not self.problems


def check(root: Path, precisions: list[str], max_batch: int | None = None) -> tuple[list[EngineState], str | None]:
    """The state of every engine of ``precisions``, without building; the note says what was not checked."""
    bundle = Bundle.open(root)
    facts: DeviceFacts | None = None
    note = None
    try:
        facts = device_facts(station=False)
    except EngineError as err:
        note = f"device not checked: {err}"
    states = []
    for precision in precisions:
        for tower in TOWERS:
            engine, manifest_path = engine_paths(bundle, tower, precision)
            if not manifest_path.is_file():
                states.append(EngineState(tower, precision, engine, ["not built"]))
                continue
            try:
                manifest = read_engine_manifest(manifest_path)
            except EngineError as err:
                states.append(EngineState(tower, precision, engine, [str(err)]))
                continue
            problems = mismatches(manifest, bundle, facts, engine, max_batch if tower == "vision" else None)
            states.append(EngineState(tower, precision, engine, problems))
    return states, note
