"""Calibration images: where they come from, how they are split, what the encoder sees.

Every image goes through ``edge.preprocess`` (and, with ``tiles``, through the service's
own tile grid), so INT8 scales are computed on exactly the tensors the device will feed.
The split into calibration and hold-out sets is a seeded permutation of the sorted file
names: the same folder and seed always give the same two sets, so a report can be
reproduced and a gate cannot be passed by re-rolling the split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.bundle import ImageSpec
from edge.config import TileConfig
from edge.errors import CalibrationError, ConfigError, ImageError
from edge.hashing import sha256_file, sha256_json
from edge.inspect.frames import cut
from edge.preprocess import IMAGE_SUFFIXES, load_image, model_input

MIN_HOLDOUT = 20  # below this a 99 % agreement gate cannot tell one flip from none


@dataclass(frozen=True)
class SplitSpec:
    calibration: int = 64
    holdout: int = 128
    seed: int = 0
    tiles: TileConfig | None = None


@dataclass
class CalibrationData:
    """The two sets as the vision graph takes them (edge.preprocess.model_input: uint8 images or float
    pixel_values, as the bundle says), plus what a report needs to say about them."""

    calibration: np.ndarray  # [N, S, S, 3] uint8 or [N, 3, S, S] float32
    holdout: np.ndarray  # [M, ...] the same, frame by frame
    source: str
    data_sha256: str
    skipped: list[str] = field(default_factory=list)
    holdout_counts: list[int] = field(default_factory=list)  # crops per hold-out frame: verdicts are per frame
    thumbnails: list[np.ndarray] = field(default_factory=list)  # hold-out frames, small, for the report

    @property
    def holdout_frames(self) -> int:
        return len(self.holdout_counts)

    def calibration_batches(self, batch: int = 8) -> Iterator[np.ndarray]:
        for i in range(0, len(self.calibration), batch):
            yield self.calibration[i : i + batch]


def _crops(image: np.ndarray, tiles: TileConfig | None) -> list[np.ndarray]:
    """The crops a camera with these ``tiles`` scores (the service's own edge.inspect.frames.cut)."""
    return cut([image], [tiles])[0]


def _folder_images(folder: Path, split: SplitSpec) -> tuple[list[np.ndarray], list[np.ndarray], str, list[str]]:
    if not folder.is_dir():
        raise CalibrationError(f"{folder}: no such image folder; pass a folder of line images with --images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    need = 1 + MIN_HOLDOUT
    if len(files) < need:
        raise CalibrationError(
            f"{folder}: {len(files)} image files, calibration needs at least {need} "
            f"(1 to calibrate + {MIN_HOLDOUT} to hold out) and works best with "
            f"{split.calibration + split.holdout}; add line images to the folder."
        )
    order = np.random.default_rng(split.seed).permutation(len(files))
    wanted_cal = min(split.calibration, len(files) - MIN_HOLDOUT)
    cal: list[np.ndarray] = []
    hold: list[np.ndarray] = []
    skipped: list[str] = []
    hashes: list[str] = []
    for i in order:
        target = cal if len(cal) < wanted_cal else hold
        if target is hold and len(hold) >= split.holdout:
            break
        try:
            target.append(load_image(files[i]))
            hashes.append(sha256_file(files[i]))
        except ImageError:
            skipped.append(files[i].name)
    if not cal or len(hold) < MIN_HOLDOUT:
        raise CalibrationError(
            f"{folder}: only {len(cal) + len(hold)} readable images ({len(skipped)} unreadable skipped), "
            f"calibration needs at least {need}; add readable line images to the folder."
        )
    return cal, hold, sha256_json({"files": hashes, "seed": split.seed}), skipped


def _sim_images(url: str, split: SplitSpec) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    from edge.sim import parse_sim_url, simulator

    try:
        p = parse_sim_url(url)
    except ConfigError as err:
        raise CalibrationError(str(err)) from err
    sim = simulator(p)
    total = split.calibration + split.holdout
    order = np.random.default_rng(split.seed).permutation(total) + p.start
    frames = [sim.frame(int(i)).image for i in order]
    data_hash = sha256_json({"sim": p.model_dump(mode="json"), "split": [split.calibration, split.holdout,
                                                                          split.seed]})
    return frames[: split.calibration], frames[split.calibration :], data_hash


def load_calibration_data(images: str, spec: ImageSpec, split: SplitSpec) -> CalibrationData:
    """Read, split and preprocess; raises CalibrationError with the count it needs."""
    if split.calibration < 1 or split.holdout < MIN_HOLDOUT:
        raise CalibrationError(
            f"calibration needs >= 1 calibration image and >= {MIN_HOLDOUT} hold-out images "
            f"(got {split.calibration} and {split.holdout}); raise --calib-images / --holdout-images."
        )
    skipped: list[str] = []
    if images.startswith("sim://"):
        cal, hold, data_hash = _sim_images(images, split)
    else:
        cal, hold, data_hash, skipped = _folder_images(Path(images), split)
    if split.tiles is not None:
        data_hash = sha256_json({"images": data_hash, "tiles": split.tiles.model_dump(mode="json")})

    def pixels(frames: list[np.ndarray]) -> np.ndarray:
        crops = [c for f in frames for c in _crops(f, split.tiles)]
        return model_input(crops, spec)

    counts = [len(_crops(f, split.tiles)) for f in hold]
    thumbs = [cv2.resize(f, (160, max(1, round(160 * f.shape[0] / f.shape[1]))), interpolation=cv2.INTER_AREA)
              for f in hold]
    return CalibrationData(pixels(cal), pixels(hold), images, data_hash, skipped, counts, thumbs)
