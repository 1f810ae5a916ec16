"""``edge-inspect bench``: benchmarks that print a table and write JSON."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.bench import (
    CAPTURE_SUFFIX,
    encoder,
    encoder_table,
    memory_bench,
    mqtt_outbox,
    mqtt_table,
    pipeline,
    pipeline_table,
    sim,
)
from edge.errors import ConfigError, require_extra


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    pipe = sub.add_parser("pipeline", help="service frames/s and per-stage time vs the bare encoder")
    pipe.add_argument("--bundle", type=Path, required=True)
    pipe.add_argument("--prompts", type=Path, help="prompt set (default: a small built-in one)")
    pipe.add_argument("--cameras", default="1,4,8", help="comma list of camera counts (default %(default)s)")
    pipe.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    pipe.add_argument("--tiles", metavar="VIEWS", default="whole",
                      help="comma list of views: whole and/or tile grids, e.g. whole,2x2 (default %(default)s)")
    pipe.add_argument("--defect-rate", type=float, default=0.5, help="share of defective frames replayed "
                      "(default %(default)s; a line's is usually a few percent)")
    pipe.add_argument("--capture", default="jpeg", help="comma list of what the cameras deliver: jpeg (an MJPEG "
                      "camera: decoded on the camera's thread) and/or raw (uncompressed, like GigE Vision or USB3 "
                      "Vision) (default %(default)s)")
    pipe.add_argument("--unbatched", action="store_true", help="each count of 2+ cameras again with one crop per "
                      "encoder call (model.max_batch 1): what batching the cameras gains")
    pipe.add_argument("--memory", action="store_true", help="each camera count again with a good-part memory "
                      "(needs a bundle with patch_embeds)")
    pipe.add_argument("--json", type=Path, default=Path("bench-pipeline.json"), help="report file")
    mem = sub.add_parser("memory", help="encoder alone vs encoder + good-part memory search, one batch")
    mem.add_argument("--bundle", type=Path, required=True)
    mem.add_argument("--batch", type=int, default=8)
    mem.add_argument("--patches", type=int, default=16384, help="memory size (patch tokens)")
    mem.add_argument("--iterations", type=int, default=10)
    mem.add_argument("--json", type=Path, default=Path("bench-memory.json"), help="report file")
    enc = sub.add_parser("encoder", help="vision encoder image/s and p50/p99 latency per batch size")
    enc.add_argument("--bundle", type=Path, required=True)
    enc.add_argument("--batches", default="1,4,8,16")
    enc.add_argument("--iterations", type=int, default=20)
    enc.add_argument("--threads", type=int)
    enc.add_argument("--artifacts", help="comma list of vision roles: vision, vision.fp16, vision.int8, "
                     "vision.int8-cpu (default: all the bundle has)")
    enc.add_argument("--checkpoint", help="also time PyTorch eager on this checkpoint (needs the export extra)")
    enc.add_argument("--json", type=Path, default=Path("bench-encoder.json"), help="report file")
    sm = sub.add_parser("sim", help="simulated-line frames/s on one core")
    sm.add_argument("--url", default="sim://line?seed=0&size=640x480")
    sm.add_argument("--frames", type=int, default=300)
    sm.add_argument("--json", type=Path, default=Path("bench-sim.json"), help="report file")
    mq = sub.add_parser("mqtt", help="results/s to a loopback mosquitto: outbox vs bare paho")
    mq.add_argument("--results", type=int, default=5000)
    mq.add_argument("--json", type=Path, default=Path("bench-mqtt.json"), help="report file")


def _eager(checkpoint: str) -> Any:
    """PyTorch eager timing lives in export/ (torch); only the CLI may reach it."""
    require_extra("bench encoder --checkpoint", ("torch", "transformers", "safetensors"), "export")
    from export.bench_torch import eager_runs  # another missing module: main's one line
    return lambda pixels, iterations, threads: eager_runs(checkpoint, pixels, iterations, threads)


def run(args: argparse.Namespace) -> int:
    if args.what == "encoder":
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
        roles = [r for r in args.artifacts.split(",") if r.strip()] if args.artifacts else None
        report = encoder(args.bundle, batches, args.iterations, args.threads, args.json, roles,
                         _eager(args.checkpoint) if args.checkpoint else None, args.checkpoint)
        print(encoder_table(report))
        print(f"wrote {args.json}")
        return 0
    if args.what == "memory":
        report = memory_bench(args.bundle, args.batch, args.patches, args.iterations, args.json)
        print(f"batch {report['batch']}: encoder {report['encoder_ms']} ms, memory search {report['memory_ms']} ms "
              f"({report['memory_patches']} patches): encoder + memory = "
              f"{report['encoder_plus_memory_vs_encoder']:.2f}x the encoder; {report['machine']}")
        print(f"wrote {args.json}")
        return 0
    if args.what == "sim":
        report = sim(args.url, args.frames, args.json)
        print(f"{report['frames_per_s']} frames/s ({report['ms_per_frame']} ms/frame) at "
              f"{report['size'][0]}x{report['size'][1]} on one core; {report['machine']}")
        return 0
    if args.what == "mqtt":
        report = mqtt_outbox(args.results, args.json)
        print(mqtt_table(report))
        print(f"wrote {args.json}")
        return 0
    views: list[dict[str, Any] | None] = []
    for view in (v.strip() for v in args.tiles.split(",") if v.strip()):
        rows, x, cols = view.partition("x")
        if view == "whole":
            views.append(None)
        elif x and rows.isdigit() and cols.isdigit() and int(rows) * int(cols) > 0:
            views.append({"rows": int(rows), "cols": int(cols), "overlap": 0.25})
        else:
            raise ConfigError(f"--tiles {args.tiles}: '{view}' is not a view; use whole or ROWSxCOLS, e.g. whole,2x2.")
    cameras = [int(c) for c in args.cameras.split(",") if c.strip()]
    report = pipeline(args.bundle, args.prompts, cameras, args.seconds, views, args.json, args.memory,
                      args.unbatched, args.defect_rate, _captures(args.capture))
    print(pipeline_table(report))
    print(f"wrote {args.json}")
    return 0


def _captures(text: str) -> tuple[str, ...]:
    """``--capture``'s comma list, each capture once, or a one-line error naming what is wrong."""
    captures = tuple(c.strip() for c in text.split(",") if c.strip())
    odd = [c for c in captures if c not in CAPTURE_SUFFIX]
    if not captures:
        what = "none given"
    elif odd:
        what = f"'{odd[0]}' is not a capture"
    elif len(set(captures)) < len(captures):
        what = "a capture given twice"
    else:
        return captures
    raise ConfigError(f"--capture {text}: {what}; expected jpeg and/or raw, e.g. jpeg,raw.")
