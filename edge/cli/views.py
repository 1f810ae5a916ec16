"""The camera view of the offline commands (evaluate, classify): ``--tiles RxC [--windows N,M]`` -> a CameraConfig,
so that they cut frames exactly as a station configured that way would."""

from __future__ import annotations

from edge.config import CameraConfig, TileConfig
from edge.errors import ConfigError


def camera_view(name: str, tiles: str | None, windows: str | None = None) -> CameraConfig:
    if not tiles:
        if windows:
            raise ConfigError("--windows needs --tiles (the first grid), e.g. --tiles 2x2 --windows 3.")
        return CameraConfig(name=name, source=name)
    rows, _, cols = tiles.lower().partition("x")
    if not (rows.isdigit() and cols.isdigit()):
        raise ConfigError(f"--tiles {tiles}: expected ROWSxCOLS, e.g. 2x2.")
    sizes = [w.strip() for w in (windows or "").split(",") if w.strip()]
    if any(not w.isdigit() for w in sizes):
        raise ConfigError(f"--windows {windows}: expected grid sizes like 3 or 3,4.")
    try:
        grid = TileConfig(rows=int(rows), cols=int(cols), overlap=0.25, windows=[int(w) for w in sizes])
    except ValueError as err:  # pydantic's bounds, said as the option's
        raise ConfigError(f"--tiles {tiles} --windows {windows or '-'}: rows, columns and window grids must be 1 "
                          "to 8.") from err
    return CameraConfig(name=name, source=name, tiles=grid)
