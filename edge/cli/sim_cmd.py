"""``edge-inspect sim``: write simulated frames as an image folder or a video, with truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from edge.errors import ConfigError
from edge.sim import LineSimulator, parse_sim_url, simulator


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="sim://line?seed=N&size=640x480&defect_rate=0.5&...")
    p.add_argument("--frames", type=int, default=100, help="how many frames (default %(default)s)")
    p.add_argument("--out", type=Path, required=True,
                   help="a folder (PNG per frame, masks/ with each defect's mask, truth.jsonl) or a .mp4/.avi "
                   "file (+ .truth.json)")


def run(args: argparse.Namespace) -> int:
    params = parse_sim_url(args.url)
    sim = simulator(params)
    indices = range(params.start, params.start + args.frames)
    if args.out.suffix.lower() in (".mp4", ".avi"):
        return _video(sim, indices, args.out, params.fps)
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    with (args.out / "truth.jsonl").open("w", encoding="utf-8") as fh:
        for i in indices:
            frame = sim.frame(i)
            name = f"frame{i:06d}.png"
            cv2.imwrite(str(args.out / name), frame.image)
            row = {"image": name, **frame.truth.model_dump(mode="json"), "mask": None}
            if frame.mask is not None:  # 255 where the defect is
                row["mask"] = f"masks/{name}"
                cv2.imwrite(str(args.out / row["mask"]), frame.mask.astype("uint8") * 255)
            fh.write(json.dumps(row) + "\n")
    print(f"wrote {args.frames} frames and truth.jsonl to {args.out}")
    return 0


def _video(sim: LineSimulator, indices: range, out: Path, fps: float) -> int:
    codec = "mp4v" if out.suffix.lower() == ".mp4" else "MJPG"
    fourcc = cv2.VideoWriter_fourcc(*codec)  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(out), fourcc, fps, (sim.width, sim.height))
    if not writer.isOpened():
        raise ConfigError(f"{out}: OpenCV cannot write this video format here; use a .avi file or a folder.")
    truths = []
    for i in indices:
        frame = sim.frame(i)
        writer.write(frame.image)
        truths.append(frame.truth.model_dump(mode="json"))
    writer.release()
    sidecar = out.with_suffix(".truth.json")
    sidecar.write_text(json.dumps({"fps": fps, "frames": truths}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(truths)} frames to {out} and ground truth to {sidecar}")
    return 0
