"""``edge-inspect demo``: the whole service on the simulated line with a demo model.

Uses the demo model's bundle shipped with the package (exported from the committed weights; a
test keeps the two in step), runs the service on simulated cameras, prints a live table of
verdicts and, at the end, evaluate's measures and the confusion matrix against the simulator's
ground truth. The prompt file it uses can be edited while it runs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.bundle import Bundle
from edge.config import ServiceConfig, parse_config
from edge.errors import BundleError, ConfigError
from edge.metrics import format_confusion
from edge.results import InspectionResult


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", choices=("clip", "siglip"), default="clip", help="demo model")
    p.add_argument("--product", default="steel-plate", help="the simulated line's product (a single-product line, "
                   "like a real station), or 'random' for the mixed line (default %(default)s)")
    p.add_argument("--good", type=int, default=16, help="good parts the memory is taught from before the line "
                   "starts (0: no memory, the text alone decides; default %(default)s)")
    p.add_argument("--cameras", type=int, default=2, help="simulated cameras (default %(default)s)")
    p.add_argument("--fps", type=float, default=4.0, help="frames/s per camera (default %(default)s)")
    p.add_argument("--frames", type=int, default=40, help="parts per camera (default %(default)s)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--workdir", type=Path, default=Path("var/demo"), help="bundle, prompts, results, state")
    p.add_argument("--quiet", action="store_true", help="no live table, only the summary")


def demo_bundle(family: str, workdir: Path) -> Path:
    """The demo model's bundle: the one shipped beside its weights (so that the device install, with no torch,
    runs the demo), else one exported into the workdir on first use (and again when the weights change)."""
    from export.checkpoint import weights_hash
    from export.demo_models import recipe

    want = weights_hash(recipe.folder(family))
    shipped = recipe.bundle_folder(family)
    out = workdir / "bundles" / f"demo-{family}"
    for candidate in (shipped, out):
        try:
            if Bundle.open(candidate).manifest.source.weights_sha256 == want:
                return candidate
        except BundleError:
            pass
    try:
        from export.bundle_export import ExportOptions, bundle_from_checkpoint
    except ImportError as err:
        raise ConfigError(f"demo: the shipped bundle {shipped} is missing or does not match the demo-{family} "
                          f"weights, and exporting it needs the export extra ({err.name} is missing): "
                          "pip install -c constraints.txt 'edge-inspect[export]', or reinstall edge-inspect.") from err
    print(f"exporting demo-{family} to {out} (the shipped bundle does not match its weights) ...", file=sys.stderr)
    bundle_from_checkpoint(str(recipe.folder(family)), out, ExportOptions(force=True, name=f"demo-{family}"))
    return out


def demo_config(args: argparse.Namespace, bundle: Path, mqtt_port: int | None) -> ServiceConfig:
    from export.captions import DEMO_PROMPTS_FILE

    prompts = args.workdir / "prompts.yaml"
    if not prompts.exists():
        shutil.copyfile(DEMO_PROMPTS_FILE, prompts)
    set_good(prompts, teach_good(args) if args.good else None)
    from export.demo_models import recipe

    tiles = dict(recipe.STATION_TILES)  # the demo models see defects best in 3x3 tiles (see their card)
    cameras = [{"name": f"cam{i + 1}", "source": f"sim://line?seed={101 + i}&frames={args.frames}"
                f"&product={args.product}", "fps": args.fps, "tiles": tiles} for i in range(args.cameras)]
    data = {"station": {"site": "demo-plant", "line": "line1", "station": "st1"}, "cameras": cameras,
            "model": {"bundle": str(bundle)}, "prompts": str(prompts),
            "results": {"jsonl": str(args.workdir / "results.jsonl")},
            "state_dir": str(args.workdir / "state")}
    if mqtt_port is not None:
        data["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port}
    from edge.mqtt.local_broker import free_port

    data["ops"] = {"http": {"port": free_port()}}  # the operator page, health and metrics, on loopback
    return parse_config(data, "demo", base=Path.cwd())


def teach_good(args: argparse.Namespace) -> str:
    """Good parts of the demo's product, as an operator would collect them before the line starts: frames of
    another run of the line (seed 900) with no defect, written to WORKDIR/good."""
    from edge.sim import LineSimulator

    folder = args.workdir / "good"
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if args.product == "random":
        raise ConfigError("demo: a good-part memory needs a single-product line; use --product NAME or --good 0.")
    line = LineSimulator(seed=900, product=args.product, defect_rate=0.0)
    for i in range(args.good):
        cv2.imwrite(str(folder / f"good{i:03d}.png"), line.frame(i).image)
    return "good"


def set_good(prompts: Path, good: str | None) -> None:
    """The demo's prompt file with 'good' set (or removed); every other line the operator wrote stays."""
    data = yaml.safe_load(prompts.read_text(encoding="utf-8"))
    if data.get("good") == good:
        return
    if good is None:
        data.pop("good", None)
    else:
        data["good"] = good
    prompts.write_text("# the demo's prompt set; 'good' is set by edge-inspect demo (--good N)\n"
                       + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


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
        right = (truth == "good" and r.verdict == "ok") or (truth not in ("good", "-") and r.verdict == "ng")
        mark = "" if truth == "-" else ("  ok" if right else "  <- miss")
        where = f" anomaly {r.anomaly.score / max(r.anomaly.threshold, 1e-9):4.2f}x" if r.anomaly else ""
        print(f"{r.ts[11:23]} {r.camera:<5} seq {r.seq:>5}  {r.verdict:<9} {r.category:<8} {r.score:5.2f}{where}"
              f"  truth {truth:<8} {r.latency_ms:6.1f} ms{mark}", flush=True)

    def summary(self, labels: list[str], good: str = "good") -> str:
        """The same measures as 'edge-inspect evaluate', on what the service published."""
        from edge.evaluate import Evaluation, measures, row_of_result

        rows = [row_of_result(r, good) for r in self.rows if r.truth]
        if not rows:
            return "no results"
        m = measures(Evaluation(rows, labels, good, None))

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f} %"

        return "\n".join([
            f"{len(rows)} results: verdict accuracy {pct(m['accuracy'])} (uncertain counts as wrong); escapes "
            f"(defects passed as ok) {pct(m['escapes'])}; good parts rejected {pct(m['false_rejects'])}; uncertain "
            f"{pct(m['uncertain'])}; defect type right {pct(m['type_top1'])} of detected defects; localisation "
            f"{pct(m['localisation'])} (box centre in the true box + 16 px, of {m['located_of']})",
            format_confusion(np.array(m["confusion"]["matrix"]), labels)])


class MesView:
    """What an MES subscribed to the station sees: results, the retained status and prompts."""

    def __init__(self, port: int, topic: str) -> None:
        import json

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.results: list[dict[str, object]] = []
        self.status: list[str] = []
        self.sample: str | None = None
        self._json = json
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        body = self._json.loads(msg.payload)  # type: ignore[attr-defined]
        if msg.topic.endswith("/result"):  # type: ignore[attr-defined]
            self.results.append(body)
            if self.sample is None and body.get("verdict") == "ng":
                self.sample = f"{msg.topic} {msg.payload.decode()}"  # type: ignore[attr-defined]
        elif msg.topic.endswith("/status"):  # type: ignore[attr-defined]
            self.status.append(str(body.get("state")))

    def summary(self) -> str:
        seqs = sorted({int(r["seq"]) for r in self.results})  # type: ignore[call-overload]
        gaps = [s for s in range(seqs[0], seqs[-1] + 1) if s not in set(seqs)] if seqs else []
        states = [s for i, s in enumerate(self.status) if i == 0 or s != self.status[i - 1]]
        lines = [f"MES subscriber: {len(self.results)} results over MQTT, seq {seqs[0] if seqs else '-'}.."
                 f"{seqs[-1] if seqs else '-'}, {len(gaps)} gap(s); status {' -> '.join(states)}"]
        if self.sample:
            lines.append(f"sample: {self.sample[:600]}")
        return "\n".join(lines)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run(args: argparse.Namespace) -> int:
    from edge.mqtt.local_broker import LocalBroker, mosquitto_binary

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    bundle = demo_bundle(args.family, args.workdir)
    if mosquitto_binary() is None:
        print("demo: mosquitto not found, running without MQTT (apt-get install mosquitto)", file=sys.stderr)
        return _run_demo(args, demo_config(args, bundle, None), None)
    with LocalBroker() as broker:
        return _run_demo(args, demo_config(args, bundle, broker.port), broker.port)


def _run_demo(args: argparse.Namespace, cfg: ServiceConfig, port: int | None) -> int:
    from edge.app import build_station
    from edge.service.sinks import CallbackSink

    table = LiveTable(args.quiet)
    mes = MesView(port, f"inspect/{cfg.station.site}/{cfg.station.line}/{cfg.station.station}/#") if port else None
    where = f", MQTT on 127.0.0.1:{port} (topic inspect/demo-plant/line1/st1/#)" if port else ""
    print(f"demo: {args.cameras} simulated camera(s) at {args.fps:g} frames/s, prompts {cfg.prompts} "
          f"(edit it while this runs), results {cfg.results.jsonl}{where}", flush=True)
    with build_station(cfg, sinks=[CallbackSink(table, "demo-table")]) as running:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: running.request_stop())
        if running.ops is not None:
            print(f"demo: operator page http://127.0.0.1:{running.ops.port}/ (edit, preview, activate prompts)",
                  flush=True)
        running.run(duration=args.duration)
        labels = running.prompt_state.names
    print(table.summary(labels))
    if mes is not None:
        time.sleep(0.5)
        mes.close()
        print(mes.summary())
    return 0
