"""``sim://line?seed=N&...``: the simulator addressed like any other camera URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.errors import CameraError
from edge.sim.products import CATALOGUE, product_names
from edge.sim.scene import DEFECTS, LineSimulator


class SimParams(BaseModel):
    """Parameters of a ``sim://`` URL; an unknown one is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, ge=0, description="Same seed, same frames.")
    fps: float = Field(default=10.0, gt=0, le=1000, description="Frames per second delivered.")
    size: tuple[int, int] = Field(default=(640, 480), description="WIDTHxHEIGHT, e.g. 640x480.")
    defect_rate: float = Field(default=0.5, ge=0, le=1, description="Share of defective parts.")
    defects: tuple[str, ...] = Field(default=DEFECTS, description="Comma list of defect kinds.")
    hard: float = Field(default=0.15, ge=0, le=1, description="Share of small, faint defects.")
    start: int = Field(default=0, ge=0, description="Index of the first frame.")
    frames: int | None = Field(default=None, ge=1, description="Stop after this many (default: never).")
    product: str = Field(default="random", description="A named product (a single-product line: one design, "
                         "small pose and light changes) or 'random' (the mixed line).")
    live: bool = Field(default=True, description="1: paced at fps, newest frame wins like a camera; "
                       "0: replay, every frame is inspected.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: object) -> object:
        if isinstance(v, str):
            w, _, h = v.lower().partition("x")
            return (int(w), int(h))
        return v

    @field_validator("defects", mode="before")
    @classmethod
    def _defects(cls, v: object) -> object:
        if isinstance(v, str):
            v = tuple(s.strip() for s in v.split(",") if s.strip())
        unknown = [d for d in v if d not in DEFECTS]  # type: ignore[attr-defined]
        if unknown:
            raise ValueError(f"unknown defect {unknown[0]!r}, expected some of {', '.join(DEFECTS)}")
        return v


    @field_validator("product")
    @classmethod
    def _product(cls, v: str) -> str:
        if v != "random" and v not in CATALOGUE:
            raise ValueError(f"unknown product {v!r}, expected one of {product_names()}")
        return v


def simulator(p: SimParams) -> LineSimulator:
    """The simulator a ``sim://`` URL describes (frames from ``p.start`` on are the caller's)."""
    return LineSimulator(seed=p.seed, size=p.size, defect_rate=p.defect_rate, defects=p.defects,
                         hard_fraction=p.hard, product=p.product)


def parse_sim_url(url: str) -> SimParams:
    """``sim://line?seed=3&size=640x480`` -> SimParams, or a CameraError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "sim":
        raise CameraError(f"{url}: not a sim:// URL; use sim://line?seed=N.")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    try:
        return SimParams.model_validate(query)
    except ValidationError as err:
        first = err.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        known = ", ".join(SimParams.model_fields)
        raise CameraError(
            f"{url}: parameter '{name}': {first['msg']}; known parameters: {known}."
        ) from err
