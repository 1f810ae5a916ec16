"""Parts on a conveyor, rendered with their ground truth.

A frame is ``render(part, defect)``: sampling what is on the belt is kept apart from
drawing it, so a test can render the very same part with and without its defect and check
that the truth box is where the pixels changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.sim import products
from edge.sim.defects import PAINTERS, Box, box_of
from edge.sim.textures import MATERIALS, TextureBank

DEFECTS = ("scratch", "hole", "crack", "stain", "missing")
CATEGORIES = ("good", *DEFECTS)
SHAPES = ("plate", "bracket", "disc")
Category = Literal["good", "scratch", "hole", "crack", "stain", "missing"]


class SimTruth(BaseModel):
    """What the simulator drew: carried by results of ``sim://`` frames as ``truth``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame: int = Field(ge=0)
    part_id: str
    defect: Category
    box: tuple[int, int, int, int] | None = Field(description="x, y, w, h in frame pixels")
    severity: float = Field(ge=0, le=1, description="0 for good parts; size x contrast scale")
    material: str
    shape: str
    product: str = Field(default="random", description="The line's product, or 'random' on the mixed line.")


@dataclass
class Part:
    """Everything about one part except its defect; enough to redraw it identically."""

    part_id: str
    material: str
    shape: str
    size: tuple[int, int]  # w, h in part pixels
    components: list[tuple[int, int, int]]  # x, y, radius (screws, chips)
    angle: float
    scale: float
    centre: tuple[float, float]
    gain: float
    light_dir: float
    belt_offset: int
    texture_seed: int
    noise_seed: int


@dataclass
class Defect:
    kind: str
    severity: float
    seed: int
    missing_index: int = 0


@dataclass
class SimFrame:
    image: np.ndarray  # BGR uint8 [H, W, 3]
    truth: SimTruth
    mask: np.ndarray | None = None  # bool [H, W]: the defect's pixels (None for good parts)
    extras: dict[str, object] = field(default_factory=dict)


def _part_mask(shape: str, w: int, h: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    if shape == "disc":
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 1, -1)
    elif shape == "bracket":
        cv2.rectangle(mask, (2, 2), (w - 3, h // 2), 1, -1)
        cv2.rectangle(mask, (2, 2), (w // 3, h - 3), 1, -1)
    else:
        cv2.rectangle(mask, (2, 2), (w - 3, h - 3), 1, -1)
    return mask


def _components(shape: str, w: int, h: int) -> list[tuple[int, int, int]]:
    r = max(6, min(w, h) // 13)
    if shape == "disc":
        return [(w // 2 + int(dx * w / 3.2), h // 2 + int(dy * h / 3.2), r)
                for dx, dy in ((0, -1), (1, 0), (0, 1), (-1, 0))]
    if shape == "bracket":
        return [(w // 6, h // 6, r), (w - w // 8, h // 4, r), (w // 6, h - h // 6, r)]
    return [(w // 8, h // 6, r), (w - w // 8, h // 6, r), (w // 8, h - h // 6, r), (w - w // 8, h - h // 6, r)]


def _draw_component(surface: np.ndarray, x: int, y: int, r: int, material: str, present: bool) -> None:
    if material == "circuit board":
        if present:  # a chip
            cv2.rectangle(surface, (x - r, y - r), (x + r, y + r), (25, 25, 28), -1)
            cv2.rectangle(surface, (x - r, y - r), (x + r, y + r), (70, 70, 70), 1)
        else:  # its bare solder pads
            for dx in (-r, r):
                cv2.rectangle(surface, (x + dx - 3, y - r), (x + dx + 3, y + r), (150, 190, 200), -1)
        return
    if present:  # a screw head with a slot
        cv2.circle(surface, (x, y), r, (200, 200, 205), -1, cv2.LINE_AA)
        cv2.circle(surface, (x, y), r, (90, 90, 95), 1, cv2.LINE_AA)
        cv2.line(surface, (x - r + 2, y), (x + r - 2, y), (60, 60, 60), 2, cv2.LINE_AA)
    else:  # an empty threaded hole
        cv2.circle(surface, (x, y), max(3, r // 2), (25, 25, 25), -1, cv2.LINE_AA)


class LineSimulator:
    """Deterministic per seed: frame ``i`` of seed ``s`` is always the same picture."""

    def __init__(self, seed: int = 0, size: tuple[int, int] = (640, 480), defect_rate: float = 0.5,
                 defects: tuple[str, ...] = DEFECTS, hard_fraction: float = 0.15, product: str = "random") -> None:
        self.seed = seed
        self.width, self.height = size
        self.defect_rate = defect_rate
        self.defects = defects
        self.hard_fraction = hard_fraction
        self.product = products.CATALOGUE[product] if product != "random" else None
        if self.product is None:
            self._textures = TextureBank(np.random.default_rng([seed, 0xBEEF]))
        else:  # the product's own textures: the same design whatever the line's seed
            self._textures = TextureBank(np.random.default_rng([self.product.texture_seed, 0xBEEF]), per_material=1,
                                         materials=(self.product.material,))

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])

    def sample_part(self, index: int, rng: np.random.Generator) -> Part:
        if self.product is not None:
            return self._product_part(index, self.product, rng)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        scale_to_frame = min(self.width / 640, self.height / 480)
        # an inspection camera is framed on the part: it fills most of the view
        w = int(rng.uniform(420, 540) * scale_to_frame)
        h = int(rng.uniform(300, 380) * scale_to_frame) if shape != "disc" else w
        h = min(h, int(self.height * 0.86))
        jitter = 0.06
        return Part(
            part_id=f"S{self.seed}-{index:07d}", material=material, shape=shape, size=(w, h),
            components=_components(shape, w, h), angle=float(rng.uniform(-12, 12)),
            scale=float(rng.uniform(0.92, 1.06)),
            centre=(self.width * (0.5 + rng.uniform(-jitter, jitter)),
                    self.height * (0.5 + rng.uniform(-jitter, jitter))),
            gain=float(rng.uniform(0.75, 1.2)), light_dir=float(rng.uniform(0, 2 * np.pi)),
            belt_offset=int(index * 7), texture_seed=int(rng.integers(1 << 31)),
            noise_seed=int(rng.integers(1 << 31)),
        )

    def _product_part(self, index: int, product: products.Product, rng: np.random.Generator) -> Part:
        """One part of a single-product line: the product's design, a little pose and light."""
        s = min(self.width / 640, self.height / 480)
        w, h = int(product.size[0] * s), int(product.size[1] * s)
        j = products.CENTRE_JITTER
        texture_seed = product.texture_seed if product.fixed_texture else int(rng.integers(1 << 31))
        return Part(
            part_id=f"S{self.seed}-{index:07d}", material=product.material, shape=product.shape, size=(w, h),
            components=_components(product.shape, w, h),
            angle=float(rng.uniform(-products.ANGLE_DEG, products.ANGLE_DEG)),
            scale=float(rng.uniform(*products.SCALE)),
            centre=(self.width * (0.5 + rng.uniform(-j, j)), self.height * (0.5 + rng.uniform(-j, j))),
            gain=float(rng.uniform(*products.GAIN)),
            light_dir=product.light_dir + float(rng.uniform(-products.LIGHT_JITTER, products.LIGHT_JITTER)),
            belt_offset=int(index * 7), texture_seed=texture_seed, noise_seed=int(rng.integers(1 << 31)),
        )

    def sample_defect(self, part: Part, rng: np.random.Generator) -> Defect | None:
        if rng.random() >= self.defect_rate:
            return None
        kind = self.defects[int(rng.integers(len(self.defects)))]
        hard = rng.random() < self.hard_fraction
        severity = float(rng.uniform(0.08, 0.3) if hard else rng.uniform(0.35, 1.0))
        return Defect(kind, round(severity, 3), int(rng.integers(1 << 31)),
                      missing_index=int(rng.integers(len(part.components))))

    def frame(self, index: int) -> SimFrame:
        rng = self._rng(index)
        part = self.sample_part(index, rng)
        return self.render(index, part, self.sample_defect(part, rng))

    def render(self, index: int, part: Part, defect: Defect | None) -> SimFrame:
        surface, mask, defect_mask = self._surface(part, defect)
        local_box = box_of(defect_mask) if defect_mask is not None else None
        image, box, frame_mask = self._place(part, surface, mask, local_box, defect_mask)
        self._finish(image, part)
        truth = SimTruth(
            frame=index, part_id=part.part_id, defect=defect.kind if defect else "good",  # type: ignore[arg-type]
            box=box, severity=defect.severity if defect else 0.0, material=part.material,
            shape=part.shape, product=self.product.name if self.product else "random",
        )
        return SimFrame(image=image, truth=truth, mask=frame_mask)

    def _surface(self, part: Part, defect: Defect | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The part's surface, its outline mask, and the defect's mask (part pixels) or None."""
        w, h = part.size
        tex_rng = np.random.default_rng(part.texture_seed)
        surface = self._textures.sample(part.material, h, w, tex_rng)
        mask = _part_mask(part.shape, w, h)
        defect_mask = None
        for i, (x, y, r) in enumerate(part.components):
            missing = defect is not None and defect.kind == "missing" and i == defect.missing_index
            _draw_component(surface, x, y, r, part.material, present=not missing)
            if missing:  # the empty mount: pads reach r + 3, the box (x - r - 4, y - r - 4, 2r + 9, 2r + 9)
                defect_mask = np.zeros((h, w), bool)
                defect_mask[max(0, y - r - 4) : y + r + 5, max(0, x - r - 4) : x + r + 5] = True
        if defect is not None and defect.kind in PAINTERS:
            defect_mask = PAINTERS[defect.kind](surface, mask, defect.severity, np.random.default_rng(defect.seed))
        return surface, mask, defect_mask

    def _background(self, part: Part) -> np.ndarray:
        rows = np.arange(self.height, dtype=np.float32)[:, None]
        cols = (np.arange(self.width, dtype=np.float32)[None, :] + part.belt_offset) % 48
        belt = 52 + 6 * np.sin(rows / 3.0) + 10 * (cols < 3)
        img = np.repeat(belt[..., None], 3, axis=2)
        img[: self.height // 12] = img[-self.height // 12 :] = 95  # guide rails
        return img.astype(np.uint8)

    def _place(self, part: Part, surface: np.ndarray, mask: np.ndarray, box: tuple | None,
               defect_mask: np.ndarray | None) -> tuple[np.ndarray, Box | None, np.ndarray | None]:
        """The part placed on the belt; the defect's box and mask in frame pixels (None for good parts)."""
        w, h = part.size
        m = cv2.getRotationMatrix2D((w / 2, h / 2), part.angle, part.scale)
        m[0, 2] += part.centre[0] - w / 2
        m[1, 2] += part.centre[1] - h / 2
        size = (self.width, self.height)
        warped = cv2.warpAffine(surface, m, size, flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(mask.astype(np.float32), m, size, flags=cv2.INTER_LINEAR)[..., None]
        image = (self._background(part) * (1 - alpha) + warped * alpha).astype(np.uint8)
        if box is None or box[2] == 0 or defect_mask is None:
            return image, None, None
        # warped like the surface (bilinear), so that thin lines keep their pixels
        frame_mask = cv2.warpAffine(defect_mask.astype(np.float32), m, size, flags=cv2.INTER_LINEAR) > 0.25
        x, y, bw, bh = box
        corners = np.array([[x, y, 1], [x + bw, y, 1], [x, y + bh, 1], [x + bw, y + bh, 1]], np.float32)
        pts = corners @ m.T
        x0, y0 = np.floor(pts.min(axis=0)).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(self.width, int(x1)), min(self.height, int(y1))
        return image, (x0, y0, x1 - x0, y1 - y0), frame_mask

    def _finish(self, image: np.ndarray, part: Part) -> None:
        """Lighting: a gain, a directional gradient, sensor noise."""
        yy = np.linspace(-1, 1, self.height, dtype=np.float32)[:, None]
        xx = np.linspace(-1, 1, self.width, dtype=np.float32)[None, :]
        grad = 1 + 0.15 * (np.cos(part.light_dir) * xx + np.sin(part.light_dir) * yy)
        noise = np.random.default_rng(part.noise_seed).normal(0, 3, (self.height, self.width, 1))
        out = image.astype(np.float32) * (part.gain * grad)[..., None] + noise.astype(np.float32)
        image[:] = np.clip(out, 0, 255).astype(np.uint8)
