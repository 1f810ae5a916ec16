"""``edge-inspect bench``: benchmarks that print a table and write JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.bench import mqtt_outbox, mqtt_table, pipeline, pipeline_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    pipe = sub.add_parser("pipeline", help="service frames/s and per-stage time vs the bare encoder")
    pipe.add_argument("--bundle", type=Path, required=True)
    pipe.add_argument("--prompts", type=Path, help="prompt set (default: a small built-in one)")
    pipe.add_argument("--cameras", default="1,4", help="comma list of camera counts (default %(default)s)")
    pipe.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    pipe.add_argument("--tiles", metavar="ROWSxCOLS", help="tile grid per camera, e.g. 2x2")
    pipe.add_argument("--json", type=Path, default=Path("bench-pipeline.json"), help="report file")
    mq = sub.add_parser("mqtt", help="results/s to a loopback mosquitto: outbox vs bare paho")
    mq.add_argument("--results", type=int, default=5000)
    mq.add_argument("--json", type=Path, default=Path("bench-mqtt.json"), help="report file")


def run(args: argparse.Namespace) -> int:
    if args.what == "mqtt":
        report = mqtt_outbox(args.results, args.json)
        print(mqtt_table(report))
        print(f"wrote {args.json}")
        return 0
    tiles = None
    if args.tiles:
        rows, _, cols = args.tiles.partition("x")
        tiles = {"rows": int(rows), "cols": int(cols), "overlap": 0.25}
    cameras = [int(c) for c in args.cameras.split(",") if c.strip()]
    report = pipeline(args.bundle, args.prompts, cameras, args.seconds, tiles, args.json)
    print(pipeline_table(report))
    print(f"wrote {args.json}")
    return 0
