"""``edge-inspect config check FILE``: validate a config and explain what it will do."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cameras.sources import redact
from edge.config import ServiceConfig, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate an inspect.yaml and print what it configures")
    check.add_argument("file", type=Path)
    sub.add_parser("keys", help="list every config key with its meaning and default")


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    lines = []
    for name, f in model.model_fields.items():  # type: ignore[attr-defined]
        ann = f.annotation
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        default = "" if f.is_required() else f" (default: {f.get_default(call_default_factory=True)!r})"
        if inner:
            lines += _keys(inner[0], f"{prefix}{name}.")
        else:
            lines.append(f"{prefix}{name}{default}: {f.description or ''}".rstrip(": "))
    return lines


def explain(cfg: ServiceConfig) -> list[str]:
    out = [f"station {cfg.station.path}", f"model {cfg.model.bundle} ({cfg.model.precision}, "
           f"backend {cfg.model.backend}, max batch {cfg.model.max_batch})",
           f"prompts {cfg.prompts} (hot-reloaded on change)", f"trigger {cfg.trigger.mode}"]
    for cam in cfg.cameras:
        tiles = f", tiles {cam.tiles.rows}x{cam.tiles.cols}" if cam.tiles else ""
        out.append(f"camera {cam.name}: {redact(cam.source)} (fps limit {cam.fps or 'none'}, roi "
                   f"{cam.roi or 'whole frame'}{tiles})")
    sinks = [s for s, on in (("jsonl " + str(cfg.results.jsonl), cfg.results.jsonl),
                              ("stdout", cfg.results.stdout)) if on]
    if cfg.mqtt:
        sinks.append(f"mqtt {cfg.mqtt.host}:{cfg.mqtt.port} prefix {cfg.mqtt.prefix}")
    out.append("results -> " + (", ".join(sinks) or "evidence only (no sink configured)"))
    out.append(f"state {cfg.state_dir}, evidence {cfg.evidence_dir} (max {cfg.evidence.max_mb:g} MB)")
    return out


def run(args: argparse.Namespace) -> int:
    if args.action == "keys":
        print("\n".join(_keys(ServiceConfig)))
        return 0
    cfg = load_config(args.file)
    from edge.ops.auth import checked_users

    checked_users(cfg.ops)  # what the service refuses at start is refused here too (an empty users_file)
    print(f"{args.file}: valid")
    for line in explain(cfg):
        print(f"  {line}")
    return 0
