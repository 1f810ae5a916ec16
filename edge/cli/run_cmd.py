"""``edge-inspect run``: the service, from a config file and/or options that override it."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from edge.config import ServiceConfig, load_config, parse_config
from edge.errors import ConfigError


def add_service_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="inspect.yaml (see systemd/inspect.example.yaml)")
    p.add_argument("--bundle", type=Path, help="model bundle folder (overrides model.bundle)")
    p.add_argument("--camera", action="append", default=[], metavar="URL",
                   help="a camera source; repeat for several (replaces the config's cameras)")
    p.add_argument("--prompts", type=Path, help="prompt-set YAML (overrides prompts)")
    p.add_argument("--results", type=Path, metavar="FILE.jsonl", help="append results to a JSON-lines file")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="publish to this MQTT broker")
    p.add_argument("--state-dir", type=Path, help="seq counter, caches, evidence")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--stdout", action="store_true", help="also print every result as JSON")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_service_arguments(p)
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--log-format", choices=("text", "json"), help="overrides ops.log_format (json for journald)")


def _overrides(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    if args.bundle:
        data.setdefault("model", {})["bundle"] = str(args.bundle)
    if args.camera:
        data["cameras"] = [{"name": f"cam{i + 1}", "source": url} for i, url in enumerate(args.camera)]
    if args.prompts:
        data["prompts"] = str(args.prompts)
    if args.results:
        data.setdefault("results", {})["jsonl"] = str(args.results)
    if args.stdout:
        data.setdefault("results", {})["stdout"] = True
    if args.state_dir:
        data["state_dir"] = str(args.state_dir)
    if args.mqtt:
        host, _, port = args.mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--mqtt {args.mqtt}: expected HOST:PORT, e.g. 127.0.0.1:1883.")
        data["mqtt"] = {**(data.get("mqtt") or {}), "host": host, "port": int(port)}
    return data


def service_config(args: argparse.Namespace) -> ServiceConfig:
    """The config file (if any) with the command-line options applied on top."""
    if args.config is None:
        if not (args.bundle and args.camera and args.prompts):
            raise ConfigError("no --config given; pass --config FILE, or at least --bundle, "
                              "--camera and --prompts.")
        return parse_config(_overrides(args, {}), "command line", base=Path.cwd())
    cfg = load_config(args.config)
    data = cfg.model_dump(mode="json", exclude_unset=False)
    return parse_config(_overrides(args, data), str(args.config), base=Path.cwd())


def run(args: argparse.Namespace) -> int:
    from edge.app import build_station
    from edge.ops import logs
    from edge.ops.notify import Notifier, Watchdog, watchdog_interval

    cfg = service_config(args)
    logs.setup(args.log_level, args.log_format or cfg.ops.log_format)
    notifier = Notifier()
    with build_station(cfg) as running:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: running.request_stop())
        wait_for_cameras(running.station, timeout=10.0)
        notifier.ready(running.status.summary())
        running.status.listeners.append(notifier.status)
        interval = watchdog_interval()
        dog = Watchdog(notifier, interval, lambda: running.pipeline.stalled_for() < cfg.ops.stall_after_s).start(
            running.station.supervise) if interval else None
        try:
            running.run(duration=args.duration)
        finally:
            notifier.stopping()
            if dog is not None:
                dog.stop()
    if running.exit_code:
        print(f"edge-inspect run: stopped on an error: {running.status.summary()}", file=sys.stderr)
    return running.exit_code


def wait_for_cameras(control: Any, timeout: float) -> None:
    """READY means the cameras were opened: wait until none is still starting (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(c.state == "starting" for c in control.cameras().values()):
        time.sleep(0.05)


def dump_yaml(cfg: ServiceConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
