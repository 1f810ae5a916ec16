"""The active prompt set as the encoder sees it: text embeddings and few-shot prototypes.

Text embeddings are computed only when the set changes and cached on disk by (bundle hash,
prompt-set version), so a restart or a roll-back costs no text encoding. A
:class:`PromptState` is immutable: the service swaps the reference between frames, so a
frame is always scored by one whole set, never half of an old and half of a new one.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.config import CameraConfig, TileConfig
from edge.errors import BundleError, ConfigError, ImageError
from edge.inspect.goodparts import MemoryCache, good_images, memory_for, view_key
from edge.inspect.memory import MemoryParams, ViewMemory
from edge.inspect.npz import save_npz
from edge.model import ZeroShotModel
from edge.preprocess import IMAGE_SUFFIXES, load_image
from edge.prompts import PromptSet
from edge.scoring import l2_normalize

log = logging.getLogger("edge_inspect.prompts")

View = CameraConfig | TileConfig | None  # how a frame is cut: a camera's ROI + tiles, a bare grid, or whole


def camera_for(view: View) -> CameraConfig:
    """A camera config for a bare tile grid (offline tools), or the camera itself."""
    if isinstance(view, CameraConfig):
        return view
    return CameraConfig(name="offline", source="offline", tiles=view)


TIP_BETA = 5.5  # Tip-Adapter's sharpness of the image-affinity kernel


@dataclass(frozen=True)
class PromptState:
    prompts: PromptSet
    text_embeds: np.ndarray  # [C, D] one ensembled, unit-length embedding per category
    prototypes: np.ndarray | None  # [C, D] few-shot image prototypes (zeros where none)
    has_exemplars: np.ndarray  # [C] bool
    source: str  # file path or "mqtt:<client>" - for the audit log
    memories: dict[str, ViewMemory] = field(default_factory=dict)  # view key -> the good-part memory of that view

    def memory_for(self, view: View) -> ViewMemory | None:
        return self.memories.get(view_key(view)) if self.memories else None

    @property
    def memory_version(self) -> str | None:
        """One identity for the set's memories (results carry it beside the prompt-set version)."""
        if not self.memories:
            return None
        return hashlib.sha256("".join(sorted(m.version for m in self.memories.values())).encode()).hexdigest()[:16]

    @property
    def good_images(self) -> int:
        return max((m.images for m in self.memories.values()), default=0)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.prompts.categories]

    @property
    def version(self) -> str:
        return self.prompts.version


class EmbeddingCache:
    """``.npz`` files under the state dir, keyed by bundle hash and prompt-set version."""

    def __init__(self, folder: Path, bundle_hash: str) -> None:
        self.folder = folder
        self.bundle_hash = bundle_hash[:16]

    def _path(self, version: str) -> Path:
        return self.folder / f"text-{self.bundle_hash}-{version}.npz"

    def get(self, version: str) -> np.ndarray | None:
        path = self._path(version)
        try:
            with np.load(path) as data:
                return np.asarray(data["text_embeds"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent, or cut short
            return None

    def put(self, version: str, embeds: np.ndarray) -> None:
        save_npz(self._path(version), {"text_embeds": embeds})


class _CandidateMemoryCache(MemoryCache):
    """A candidate's view of the memory cache (see :func:`build_state`'s ``keep``): reads the disk and the memories
    held in process, writes nothing to disk; what it builds is held in ``base``'s process memory."""

    def __init__(self, base: MemoryCache) -> None:
        super().__init__(base.folder, base.bundle_hash)
        self._base = base

    def get(self, version: str) -> ViewMemory | None:
        return self._base.peek(version)

    def put(self, memory: ViewMemory) -> None:
        self._base.remember(memory)


def text_embeddings(model: ZeroShotModel, prompts: PromptSet) -> np.ndarray:
    """Prompt ensembling: each category is the normalised mean of its prompt x template texts."""
    texts = [prompts.texts(c) for c in prompts.categories]
    flat = model.embed_texts([t for group in texts for t in group])  # [T, D]
    out, i = [], 0
    for group in texts:
        out.append(l2_normalize(flat[i : i + len(group)].mean(axis=0)))
        i += len(group)
    return np.stack(out)


def _exemplar_images(folder: Path) -> list[np.ndarray]:
    if not folder.is_dir():
        raise ConfigError(f"exemplars {folder}: no such folder; create it or remove 'exemplars'.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = []
    for f in files:
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"exemplars {f}: not an image file; remove it from the exemplar folder.")
        try:
            images.append(load_image(f))
        except ImageError as err:
            raise ConfigError(f"exemplars {err}") from err
    if not images:
        raise ConfigError(f"exemplars {folder}: folder is empty; add reference images or remove 'exemplars'.")
    return images


def confined(folder: str, base: Path, roots: tuple[Path, ...] = (), what: str = "exemplars") -> Path:
    """A folder named in a prompt set, resolved against the prompt file's folder, that must lie under
    it or under one of ``roots`` (the state dir's uploads): an edit from MQTT or the page cannot make
    the station read, or name, files anywhere else on the box."""
    path = Path(folder)
    resolved = (path if path.is_absolute() else base / path).resolve()
    allowed = [r.resolve() for r in (base, *roots)]
    if not any(resolved.is_relative_to(r) for r in allowed):
        raise ConfigError(f"{what} {folder!r}: outside the prompt set's folder and the station's upload folder; "
                          f"keep reference images under {allowed[0]}" + (f" or {allowed[1]}" if len(allowed) > 1
                                                                          else "") + ".")
    return resolved


def prototypes(model: ZeroShotModel, prompts: PromptSet, base: Path,
               roots: tuple[Path, ...] = ()) -> tuple[np.ndarray | None, np.ndarray]:
    """Few-shot image prototypes, one per category that lists an exemplar folder."""
    has = np.array([c.exemplars is not None for c in prompts.categories])
    if not has.any():
        return None, has
    protos = np.zeros((len(prompts.categories), model.bundle.manifest.embed_dim), np.float32)
    for i, cat in enumerate(prompts.categories):
        if cat.exemplars is not None:
            folder = confined(cat.exemplars, base, roots)
            protos[i] = l2_normalize(model.embed_images(_exemplar_images(folder)).mean(axis=0))
    return protos, has


def memories(model: ZeroShotModel, prompts: PromptSet, base: Path, roots: tuple[Path, ...], views: Sequence[View],
             cache: MemoryCache | None) -> dict[str, ViewMemory]:
    """The good-part memory of every distinct camera view, when the set names a ``good`` folder."""
    if prompts.good is None:
        return {}
    if not model.has_patches:
        raise BundleError(f"{model.bundle.root}: this bundle's vision graph has no patch_embeds, which 'good' needs; "
                          "re-export it with this version of edge-inspect ('edge-inspect export').")
    images, names = good_images(confined(prompts.good, base, roots, "good"))
    params = MemoryParams(**prompts.memory.model_dump())
    out: dict[str, ViewMemory] = {}
    for view in views:
        key = view_key(view)
        if key not in out:
            out[key] = memory_for(model, images, names, camera_for(view), params, cache)
    return out


def build_state(model: ZeroShotModel, prompts: PromptSet, base: Path, cache: EmbeddingCache | None,
                source: str, roots: tuple[Path, ...] = (), views: Sequence[View] = (None,),
                memory_cache: MemoryCache | None = None, keep: bool = True) -> PromptState:
    """Encode a prompt set (or take it from the cache), and build its good-part memories for ``views``;
    raises ConfigError (or BundleError) naming the problem. ``keep=False`` (a candidate: a preview or
    ``prompts/test``) reads the caches but writes nothing to disk: a stream of tests must not fill the state disk
    that the outbox shares; its memories are held in process (MemoryCache.remember), so activating it after a preview
    does not build it again."""
    embeds = cache.get(prompts.version) if cache else None
    if embeds is None or embeds.shape[0] != len(prompts.categories):
        embeds = text_embeddings(model, prompts)
        if cache and keep:
            cache.put(prompts.version, embeds)
    if memory_cache is not None and not keep:
        memory_cache = _CandidateMemoryCache(memory_cache)
    protos, has = prototypes(model, prompts, base, roots)
    return PromptState(prompts, embeds, protos, has, source, memories(model, prompts, base, roots, views, memory_cache))


def score(model: ZeroShotModel, state: PromptState, image_embeds: np.ndarray) -> np.ndarray:
    """Per-crop category scores [N, C]: text scores, blended with few-shot affinity."""
    probs = model.probs(image_embeds, state.text_embeds)  # [N, C]
    if state.prototypes is None:
        return probs
    w = state.prompts.decision.exemplar_weight
    affinity = np.exp(-TIP_BETA * (1.0 - image_embeds @ state.prototypes.T))  # [N, C] in (0, 1]
    blended = (1 - w) * probs + w * affinity
    return np.where(state.has_exemplars[None, :], blended, probs)
