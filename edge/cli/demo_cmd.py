"""``edge-inspect demo``: the whole service on the simulated line with a demo model.

Exports the committed demo checkpoint to a bundle (once), runs the service on simulated
cameras, prints a live table of verdicts and, at the end, the confusion matrix against the
simulator's ground truth. The prompt file it uses can be edited while it runs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path

from edge.bundle import Bundle
from edge.config import ServiceConfig, parse_config
from edge.errors import BundleError, ConfigError
from edge.metrics import confusion, format_confusion
from edge.results import InspectionResult


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", choices=("clip", "siglip"), default="clip", help="demo model")
    p.add_argument("--cameras", type=int, default=2, help="simulated cameras (default %(default)s)")
    p.add_argument("--fps", type=float, default=4.0, help="frames/s per camera (default %(default)s)")
    p.add_argument("--frames", type=int, default=40, help="parts per camera (default %(default)s)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--workdir", type=Path, default=Path("var/demo"), help="bundle, prompts, results, state")
    p.add_argument("--quiet", action="store_true", help="no live table, only the summary")


def demo_bundle(family: str, workdir: Path) -> Path:
    """The demo model's bundle, exported on first use (and again if the weights changed)."""
    try:
        from export.checkpoint import weights_hash
        from export.demo_models import recipe
    except ImportError as err:
        raise ConfigError(f"the demo exports its model and needs the export extra ({err.name} is "
                          "missing): pip install 'edge-inspect[export]', or use ./run demo.") from err
    checkpoint = recipe.folder(family)
    out = workdir / "bundles" / f"demo-{family}"
    try:
        if Bundle.open(out).manifest.source.weights_sha256 == weights_hash(checkpoint):
            return out
    except BundleError:
        pass
    from export.bundle_export import ExportOptions, bundle_from_checkpoint

    print(f"exporting demo-{family} to {out} (first run only) ...", file=sys.stderr)
    bundle_from_checkpoint(str(checkpoint), out, ExportOptions(force=True, name=f"demo-{family}"))
    return out


def demo_config(args: argparse.Namespace, bundle: Path) -> ServiceConfig:
    from export.captions import DEMO_PROMPTS_FILE

    prompts = args.workdir / "prompts.yaml"
    if not prompts.exists():
        shutil.copyfile(DEMO_PROMPTS_FILE, prompts)
    cameras = [{"name": f"cam{i + 1}", "source": f"sim://line?seed={101 + i}&frames={args.frames}",
                "fps": args.fps} for i in range(args.cameras)]
    data = {"station": {"site": "demo-plant", "line": "line1", "station": "st1"}, "cameras": cameras,
            "model": {"bundle": str(bundle)}, "prompts": str(prompts),
            "results": {"jsonl": str(args.workdir / "results.jsonl")},
            "state_dir": str(args.workdir / "state")}
    return parse_config(data, "demo", base=Path.cwd())


class LiveTable:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.rows: list[InspectionResult] = []
        self._lock = threading.Lock()

    def __call__(self, r: InspectionResult) -> None:
        with self._lock:
            self.rows.append(r)
        if self.quiet:
            return
        truth = (r.truth or {}).get("defect", "-")
        mark = "" if truth == "-" else ("  ok" if truth == r.category or (truth == "good" and r.verdict == "ok")
                                        else "  <- miss")
        print(f"{r.ts[11:23]} {r.camera:<5} seq {r.seq:>5}  {r.verdict:<9} {r.category:<8} {r.score:5.2f}"
              f"  truth {truth:<8} {r.latency_ms:6.1f} ms{mark}", flush=True)

    def summary(self, labels: list[str]) -> str:
        rows = [r for r in self.rows if r.truth]
        if not rows:
            return "no results"
        truth = [str(r.truth["defect"]) for r in rows]  # type: ignore[index]
        top = [max(r.scores, key=lambda k: r.scores[k]) for r in rows]
        matrix = confusion(truth, top, labels)
        accuracy = sum(t == p for t, p in zip(truth, top)) / len(rows)
        good = "good"
        catch = [r.verdict != "ok" for r, t in zip(rows, truth) if t != good]
        false_ng = [r.verdict == "ng" for r, t in zip(rows, truth) if t == good]
        return "\n".join([
            f"{len(rows)} results; top-1 category accuracy {accuracy:.3f}; defective parts not passed as ok "
            f"{(sum(catch) / max(1, len(catch))):.3f}; good parts rejected as ng "
            f"{(sum(false_ng) / max(1, len(false_ng))):.3f}",
            format_confusion(matrix, labels)])


def run(args: argparse.Namespace) -> int:
    from edge.service.service import InspectionService
    from edge.service.sinks import CallbackSink

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(args, demo_bundle(args.family, args.workdir))
    table = LiveTable(args.quiet)
    print(f"demo: {args.cameras} simulated camera(s) at {args.fps:g} frames/s, prompts {cfg.prompts} "
          f"(edit it while this runs), results {cfg.results.jsonl}", flush=True)
    with InspectionService(cfg, sinks=[CallbackSink(table, "demo-table")]) as service:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: service.request_stop())
        service.run(duration=args.duration)
        labels = service.prompt_state.names
    print(table.summary(labels))
    return 0
