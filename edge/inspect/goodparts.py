"""Good parts -> the memory of each camera view: loading, checking, encoding, caching.

A prompt set's ``good:`` folder (or a list of frames the operator taught) is read once, checked
(images only, one size, one product: an image whose own leave-one-out score is far above the
others' is named, since it would loosen the threshold for every part), encoded through the
running encoder's ``patch_embeds`` with the view's own tiles, and cached on disk by bundle, image
hashes, view and parameters, so a restart or a roll-back costs no encoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.config import CameraConfig, TileConfig
from edge.errors import BundleError, ConfigError, ImageError
from edge.inspect.memory import MemoryParams, TileMemory, ViewMemory, augment, grid_of, set_thresholds, tile_memory
from edge.inspect.npz import save_npz
from edge.inspect.tiles import crop, tiles_for
from edge.model import ZeroShotModel
from edge.preprocess import IMAGE_SUFFIXES, load_image

log = logging.getLogger("edge_inspect.memory")

MIN_GOOD = 3  # leave-one-out needs a few; 16 is what the numbers in the README were measured with
OUTLIER_FACTOR = 2.0  # an image whose mean patch distance is this far above the median image's is not one of them
# (measured on the nine simulated products, 12 good parts each: natural variation at most 1.27x; one image of
# another product 3.9x (pcb-sensor among pcb-boards) to 11.1x)


def view_key(view: CameraConfig | TileConfig | None) -> str:
    """Identity of how frames are cut (ROI and tiles), for memories and caches."""
    if isinstance(view, CameraConfig):
        data = {"roi": view.roi, "tiles": view.tiles.model_dump() if view.tiles else None}
    else:
        data = {"roi": None, "tiles": view.model_dump() if view is not None else None}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def good_images(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """The good images of a folder, with one-line errors for every way it can be wrong."""
    if not folder.is_dir():
        raise ConfigError(f"good {folder}: no such folder; create it with good parts' images or remove 'good'.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    bad = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise ConfigError(f"good {folder}: not image files: {', '.join(bad[:5])}; keep only images of good parts.")
    images, names, unreadable = [], [], []
    for f in files:
        try:
            images.append(load_image(f))
            names.append(f.name)
        except ImageError:
            unreadable.append(f.name)
    if unreadable:
        raise ConfigError(f"good {folder}: unreadable images: {', '.join(unreadable[:5])}; replace or remove them.")
    if len(images) < MIN_GOOD:
        raise ConfigError(f"good {folder}: {len(images)} image(s); the memory needs at least {MIN_GOOD} good parts "
                          "(16 or more work best).")
    sizes = {im.shape[:2] for im in images}
    if len(sizes) > 1:
        common = max(sizes, key=lambda s: sum(im.shape[:2] == s for im in images))
        odd = [n for n, im in zip(names, images) if im.shape[:2] != common][:5]
        raise ConfigError(f"good {folder}: images of another size than the others ({common[1]}x{common[0]}): "
                          f"{', '.join(odd)}; use frames of this camera only.")
    return images, names


def _encode_views(model: ZeroShotModel, images: Sequence[np.ndarray], view: CameraConfig,
                  batch: int = 32) -> np.ndarray:
    """Every image's crops -> patch tokens [N, T, P, Dp]."""
    h, w = images[0].shape[:2]
    tiles = tiles_for(view, w, h)
    crops = [crop(im, t.box) for im in images for t in tiles]
    parts = []
    for i in range(0, len(crops), batch):
        _, patches = model.embed_views(model.inputs(crops[i : i + batch]))
        if patches is None:
            raise BundleError(f"{model.bundle.root}: the vision graph has no patch_embeds output, which the good-part "
                              "memory needs; re-export the bundle with this version ('edge-inspect export').")
        parts.append(patches)
    tokens = np.concatenate(parts)
    return tokens.reshape(len(images), len(tiles), *tokens.shape[1:])


def build_view_memory(model: ZeroShotModel, images: Sequence[np.ndarray], names: Sequence[str],
                      view: CameraConfig, params: MemoryParams, version: str,
                      progress: Callable[[str], None] | None = None) -> ViewMemory:
    """Encode the good images (and their moved copies) with the view's tiles; build and check the memory."""
    rng = np.random.default_rng(params.seed)
    moved = [augment(im, params, rng) for im in images for _ in range(params.augment)]
    owners = np.concatenate([np.arange(len(images)), np.repeat(np.arange(len(images)), params.augment)])
    if progress:
        progress(f"encoding {len(images)} good images and {len(moved)} moved copies")
    tokens = _encode_views(model, [*images, *moved], view)  # [N, T, P, Dp]
    grid = grid_of(tokens.shape[2])
    tiles: list[TileMemory] = [tile_memory(tokens[:, t], owners, grid, params) for t in range(tokens.shape[1])]
    originals = [tokens[i] for i in range(len(images))]
    loo, typical = set_thresholds(tiles, originals, params.margin)
    _check_outliers(typical, names)
    return ViewMemory(tiles, len(images), version, loo, list(names))


def _check_outliers(typical: list[float], names: Sequence[str]) -> None:
    """Each image's mean patch distance to the other good images, relative to the median image's: another
    product differs everywhere (a defect or an odd light differs in a spot, which the threshold absorbs)."""
    odd = [n for n, s in zip(names, typical) if s > OUTLIER_FACTOR]
    if odd and len(odd) < len(names) / 2:
        raise ConfigError(f"good: {', '.join(odd[:5])} differ from the other good images far more than they differ "
                          "from each other (another product, view or a defect?); remove them or use frames of "
                          "this station's product only.")


def images_hash(images: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(str(im.shape).encode())
        h.update(hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest())
    return h.hexdigest()[:16]


class MemoryCache:
    """``.npz`` files under the state dir, keyed by bundle, images, view and parameters, and the last few memories
    built for a candidate (a preview, prompts/test) held in this process only: a candidate writes nothing to disk,
    and the set activated after its preview takes its memory from here (written to disk then) instead of building
    it again. The key is the content (images, view, parameters), so a changed good folder is never served stale."""

    def __init__(self, folder: Path, bundle_hash: str, recent: int = 2) -> None:
        self.folder = folder
        self.bundle_hash = bundle_hash[:16]
        self.recent_size = recent  # candidates' memories held in process: one per camera view of a candidate
        self._recent: OrderedDict[str, ViewMemory] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, version: str) -> Path:
        return self.folder / f"memory-{self.bundle_hash}-{version}.npz"

    def remember(self, memory: ViewMemory) -> None:
        """Hold a candidate's memory in process (beyond recent_size, the oldest goes)."""
        with self._lock:
            self._recent[memory.version] = memory
            self._recent.move_to_end(memory.version)
            while len(self._recent) > self.recent_size:
                self._recent.popitem(last=False)

    def peek(self, version: str) -> ViewMemory | None:
        """Held in process, else from disk; writes nothing (a candidate's read)."""
        with self._lock:
            held = self._recent.get(version)
        return held if held is not None else self._read(version)

    def get(self, version: str) -> ViewMemory | None:
        """From disk; else a candidate's memory held in process, which is written to disk now (it is being
        activated)."""
        found = self._read(version)
        if found is None and (found := self.peek(version)) is not None:
            self.put(found)
        return found

    def _read(self, version: str) -> ViewMemory | None:
        try:
            with np.load(self.path(version), allow_pickle=False) as data:
                count = int(data["tiles"])
                tiles = [TileMemory(tuple(int(v) for v in data[f"grid{i}"]), data[f"mean{i}"],  # type: ignore[arg-type]
                                    data[f"basis{i}"], data[f"entries{i}"], data[f"owners{i}"],
                                    None if int(data[f"radius{i}"]) < 0 else int(data[f"radius{i}"]),
                                    int(data[f"neighbourhood{i}"]), float(data[f"threshold{i}"]))
                         for i in range(count)]
                return ViewMemory(tiles, int(data["images"]), version, [float(x) for x in data["loo"]])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent, or cut short
            return None

    def put(self, memory: ViewMemory) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"tiles": np.array(len(memory.tiles)), "images": np.array(memory.images),
                                         "loo": np.array(memory.loo_scores, np.float32)}
        for i, t in enumerate(memory.tiles):
            arrays.update({f"grid{i}": np.array(t.grid), f"mean{i}": t.mean, f"basis{i}": t.basis,
                           f"entries{i}": t.entries, f"owners{i}": t.owners,
                           f"radius{i}": np.array(-1 if t.radius is None else t.radius),
                           f"neighbourhood{i}": np.array(t.neighbourhood), f"threshold{i}": np.array(t.threshold)})
        save_npz(self.path(memory.version), arrays)


def memory_for(model: ZeroShotModel, images: Sequence[np.ndarray], names: Sequence[str], view: CameraConfig,
               params: MemoryParams, cache: MemoryCache | None,
               progress: Callable[[str], None] | None = None) -> ViewMemory:
    """The view's memory, from the cache when the same images, view and parameters were seen before."""
    version = hashlib.sha256(f"{images_hash(images)}-{view_key(view)}-{params.key()}".encode()).hexdigest()[:16]
    memory = cache.get(version) if cache else None
    if memory is not None:  # the key is the images' contents: the names are today's, not the cached build's
        return replace(memory, names=list(names))
    memory = build_view_memory(model, images, names, view, params, version, progress)
    if cache:
        cache.put(memory)
    log.info("good-part memory %s: %d images, %d tiles, %d patches", version, memory.images, len(memory.tiles),
             memory.patches)
    return memory
