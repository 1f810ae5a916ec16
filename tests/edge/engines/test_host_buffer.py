"""The page-locked input rows: a batch written straight into them crosses to the device with no staging copy,
any other batch is staged first. A fake stands in for pycuda (no GPU here); the GPU tests use the real one."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.encoders.cuda_memory import HostDeviceBuffer


class _FakeCuda:
    def __init__(self) -> None:
        self.copies: list[np.ndarray] = []

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype)

    def mem_alloc(self, nbytes: int) -> int:
        return 4096

    def memcpy_htod_async(self, device: int, host: np.ndarray, stream: Any) -> None:
        self.copies.append(host.copy())


class _Stream:
    raw = None


def test_rows_written_in_place_are_not_staged_and_others_are() -> None:
    cuda = _FakeCuda()
    buf = HostDeviceBuffer(cuda, (4, 2, 2, 3), np.dtype(np.uint8))
    rows = buf.host[:3]
    rows[...] = 7  # preprocessing resizes into the lent rows
    before = buf.host.copy()
    buf.upload(rows, _Stream())  # type: ignore[arg-type]
    assert np.array_equal(buf.host, before) and cuda.copies[-1].shape == (3, 2, 2, 3)
    other = np.full((2, 2, 2, 3), 9, np.uint8)  # an ordinary array: staged into the first rows, then copied
    buf.upload(other, _Stream())  # type: ignore[arg-type]
    assert (buf.host[:2] == 9).all() and (buf.host[2] == 7).all() and (cuda.copies[-1] == 9).all()
