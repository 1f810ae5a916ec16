"""The named products of ``sim://line?product=NAME``: one design per line, as on a real station.

A real inspection station sees one product (one design, colour and texture) with small
changes of pose and light; changeovers are rare. The mixed line (``product=random``, the
default) draws material, shape, size, pose and light anew for every part and stays the hard
case. A product's look does not depend on the line's seed: frames of ``seed=1`` and
``seed=2`` of one product are the same design, so good references taken from one seed
describe the parts of another.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.sim.textures import MATERIALS


@dataclass(frozen=True)
class Product:
    """One design: what stays fixed from part to part."""

    name: str
    material: str
    shape: str  # plate | bracket | disc
    size: tuple[int, int]  # w, h in pixels of a 640x480 frame (scaled with the frame)
    light_dir: float  # radians; each part varies it a little
    fixed_texture: bool  # printed/etched designs (a PCB's traces) repeat exactly; cast and brushed grain does not
    texture_seed: int  # the product's own texture bank, independent of the line's seed


CATALOGUE: dict[str, Product] = {p.name: p for p in (
    Product("steel-plate", "brushed metal", "plate", (500, 340), 0.6, False, 101),
    Product("steel-bracket", "brushed metal", "bracket", (480, 360), 2.2, False, 102),
    Product("cast-flange", "cast metal", "disc", (390, 390), 4.0, False, 103),
    Product("cast-bracket", "cast metal", "bracket", (500, 370), 1.0, False, 104),
    Product("plastic-cover", "painted plastic", "plate", (460, 320), 3.0, False, 105),
    Product("plastic-disc", "painted plastic", "disc", (370, 370), 5.2, False, 106),
    Product("fabric-panel", "textile", "plate", (520, 350), 0.3, False, 107),
    Product("pcb-board", "circuit board", "plate", (500, 330), 1.6, True, 108),
    Product("pcb-sensor", "circuit board", "disc", (380, 380), 2.8, True, 109),
)}
assert all(p.material in MATERIALS for p in CATALOGUE.values())

# Part-to-part variation on a single-product line (the mixed line's is much larger).
ANGLE_DEG = 3.0
SCALE = (0.98, 1.02)
CENTRE_JITTER = 0.015  # of the frame side
GAIN = (0.92, 1.08)
LIGHT_JITTER = 0.3  # radians


def product_names() -> str:
    return ", ".join(["random", *CATALOGUE])
