"""``edge-inspect classify`` against a PyTorch reference, and its bad-input errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
from transformers import AutoTokenizer

from edge.bundle import Bundle
from edge.preprocess import to_pixel_values
from export.checkpoint import load_checkpoint
from export.parity import natural_frames
from tests.helpers import one_line_error, run_cli

LABELS = ["a flawless part", "a scratched part", "a part with a hole"]


def _write_images(folder: Path, count: int) -> list[Path]:
    paths = []
    for i, frame in enumerate(natural_frames(count, seed=11)):
        paths.append(folder / f"frame{i}.png")
        cv2.imwrite(str(paths[-1]), frame)
    return paths


def _reference(ckpt_dir: Path, bundle_dir: Path, images: list[Path]) -> np.ndarray:
    """Scores from the PyTorch model's own forward (logits_per_image)."""
    ckpt = load_checkpoint(str(ckpt_dir))
    spec = Bundle.open(bundle_dir).manifest
    hf_tok = AutoTokenizer.from_pretrained(str(ckpt_dir))
    ids = hf_tok(LABELS, padding="max_length", truncation=True, max_length=spec.text.context_length,
                 return_tensors="pt")["input_ids"]
    pixels = torch.from_numpy(to_pixel_values([cv2.imread(str(p)) for p in images], spec.image))
    with torch.no_grad():
        logits = ckpt.model(input_ids=ids, pixel_values=pixels).logits_per_image  # [B, C]
    probs = torch.sigmoid(logits) if ckpt.family == "siglip" else logits.softmax(dim=-1)
    return probs.numpy()


def test_scores_equal_pytorch(tiny_checkpoints: dict[str, Path], tiny_bundles: dict[str, Path],
                              family: str, tmp_path: Path) -> None:
    images = _write_images(tmp_path, 4)
    args = ["classify", "--bundle", str(tiny_bundles[family])]
    for label in LABELS:
        args += ["--label", label]
    result = run_cli(*args, *map(str, images))
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in images]
    ours = np.array([[r["scores"][label] for label in LABELS] for r in rows])
    ref = _reference(tiny_checkpoints[family], tiny_bundles[family], images)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    assert [r["top"] for r in rows] == [LABELS[i] for i in ref.argmax(axis=1)]
    if family == "clip":
        np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-4)


def test_not_an_image(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "frame.jpg"
    bad.write_bytes(b"\x00garbage")
    line = one_line_error(run_cli("classify", "--bundle", str(tiny_bundles["clip"]), "--label", "a",
                                  "--label", "b", str(bad), expect=8))
    assert "frame.jpg" in line and "not a readable image" in line


def test_bundle_hash_mismatch(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = shutil.copytree(tiny_bundles["siglip"], tmp_path / "b")
    with (bundle / "vision.onnx").open("ab") as fh:
        fh.write(b"tampered")
    image = _write_images(tmp_path, 1)[0]
    line = one_line_error(run_cli("classify", "--bundle", str(bundle), "--label", "a", str(image),
                                  expect=3))
    assert "vision.onnx" in line and "does not match the manifest" in line


def test_not_a_bundle(tmp_path: Path) -> None:
    image = _write_images(tmp_path, 1)[0]
    line = one_line_error(run_cli("classify", "--bundle", str(tmp_path), "--label", "a", str(image),
                                  expect=3))
    assert "bundle.json" in line and "edge-inspect export" in line


def test_no_labels(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    image = _write_images(tmp_path, 1)[0]
    line = one_line_error(run_cli("classify", "--bundle", str(tiny_bundles["clip"]), str(image), expect=2))
    assert "--label" in line


def test_classify_with_good_parts_says_how_odd_each_image_is_and_where(tmp_path: Path) -> None:
    """--good: the good-part memory at work in one command, on the shipped demo bundle (the service's functions)."""
    from edge.sim import LineSimulator
    from export.demo_models import recipe

    good = tmp_path / "good"
    good.mkdir()
    line = LineSimulator(seed=5000, product="steel-plate", defect_rate=0.0)
    for i in range(12):
        cv2.imwrite(str(good / f"good{i:02d}.png"), line.frame(i).image)
    new_good = LineSimulator(seed=6000, product="steel-plate", defect_rate=0.0).frame(0)
    defects = LineSimulator(seed=6001, product="steel-plate", defect_rate=1.0, hard_fraction=0.0)
    clear = [f for f in (defects.frame(i) for i in range(40)) if f.truth.severity >= 0.6][:3]  # plain to see
    frames = [new_good, *clear]
    paths = []
    for i, f in enumerate(frames):
        paths.append(tmp_path / f"frame{i}.png")
        cv2.imwrite(str(paths[-1]), f.image)
    bundle = str(recipe.bundle_folder("clip"))
    out = run_cli("classify", "--bundle", bundle, "--label", LABELS[0], "--label", LABELS[1], "--good", str(good),
                  "--tiles", "2x2", *map(str, paths)).out
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["image"] for line in lines] == list(map(str, paths))
    ratios = [line["anomaly"]["score"] / line["anomaly"]["threshold"] for line in lines]
    assert all(r > 0 for r in ratios)
    worst = 1 + int(np.argmax(ratios[1:]))
    assert ratios[worst] > 1.0 > ratios[0]  # the plainest defect is over the threshold, a new good part under it
    (x, y, w, h), (tx, ty, tw, th) = lines[worst]["anomaly"]["box"], frames[worst].truth.box
    assert tx - 16 <= x + w / 2 <= tx + tw + 16 and ty - 16 <= y + h / 2 <= ty + th + 16  # and boxed (image pixels)

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(frames[1].image, (320, 240)))
    err = one_line_error(run_cli("classify", "--bundle", bundle, "--label", "a", "--label", "b", "--good", str(good),
                                 str(small), expect=2))
    assert "not the size of the good images" in err
    err = one_line_error(run_cli("classify", "--bundle", bundle, "--label", "a", "--label", "b", "--tiles", "2x2",
                                 str(small), expect=2))
    assert "--good" in err
