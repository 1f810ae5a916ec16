"""PyTorch eager image/s for ``bench encoder --checkpoint``: the baseline every runtime is compared with.

Lives in ``export/`` because it needs torch, which the runtime never imports. It times the
same vision tower that export traces (projection and L2 normalisation included), on the
same preprocessed frames, with torch limited to the threads ONNX Runtime gets.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def eager_runs(checkpoint: str, pixels_by_batch: dict[int, np.ndarray], iterations: int,
               threads: int | None) -> list[dict[str, Any]]:
    import torch

    from edge.preprocess import normalize
    from export.checkpoint import load_checkpoint
    from export.towers import VisionTower

    if threads:
        torch.set_num_threads(threads)
    ckpt = load_checkpoint(checkpoint)
    tower = VisionTower(ckpt.model).eval()
    runs = []
    with torch.inference_mode():
        for batch, pixels in pixels_by_batch.items():
            if pixels.dtype == np.uint8:  # a bundle that normalises in its graph: PyTorch takes pixel_values
                pixels = normalize(pixels, ckpt.image)
            x = torch.from_numpy(pixels)
            tower(x)  # warm-up
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                tower(x)
                times.append(time.perf_counter() - start)
            t = np.array(times) * 1000
            runs.append({"precision": "torch-eager-fp32", "batch": batch,
                         "images_per_s": round(batch * iterations / (t.sum() / 1000), 2),
                         "p50_ms": round(float(np.percentile(t, 50)), 2),
                         "p99_ms": round(float(np.percentile(t, 99)), 2)})
    return runs
