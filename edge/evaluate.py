"""``edge-inspect evaluate``: the station's own decision path on labelled frames, measured.

Frames come from a labelled folder (one sub-folder per category, ``good`` for good parts; boxes
from an optional ``boxes.jsonl``) or from the simulator (its truth). They are scored exactly as the
service scores them (edge.inspect.frames: the same preprocessing, tiles, prompts, thresholds,
good-part memory and two-stage naming), and the verdicts are compared with the truth:

* image AUROC: the anomaly score (with a memory) or the text's defect score (without);
* verdict accuracy (``uncertain`` counts as wrong), escapes (defects passed as ok) and false
  rejects (good parts called ng), the ok/ng/uncertain confusion;
* defect-type top-1 among the detected defects, per-category precision and recall;
* localisation: the share of detected defects whose box centre lies in the true box grown by
  16 pixels.

It writes report.json, report.md and PNGs (ROC curve, confusion matrix, the worst misses with
their heat maps). This is the user's tool to decide before go-live, and the yardstick of the demo
models' card and the README's tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.errors import ConfigError, ImageError, read_utf8
from edge.inspect.frames import FrameScores, score_frames
from edge.inspect.memory import blend_heat
from edge.inspect.prompt_state import PromptState
from edge.metrics import auroc, confusion, format_confusion
from edge.model import ZeroShotModel
from edge.preprocess import IMAGE_SUFFIXES, load_image

GROW = 16  # pixels: a box centre within the true box grown by this counts as found


@dataclass
class Sample:
    image: np.ndarray
    truth: str  # a category name; "good" for good parts
    box: tuple[int, int, int, int] | None = None
    name: str = ""


@dataclass
class Row:
    """One frame's outcome."""

    name: str
    truth: str
    verdict: str
    category: str
    score: float  # the AUROC's ranking score
    box: tuple[int, int, int, int] | None
    truth_box: tuple[int, int, int, int] | None
    located: bool | None = None  # None: not a detected defect with a box to check


@dataclass
class Evaluation:
    rows: list[Row]
    categories: list[str]
    good: str
    memory: dict[str, Any] | None
    measures: dict[str, Any] = field(default_factory=dict)


# ---- inputs ----
def labelled_folder(folder: Path, categories: Sequence[str]) -> list[Sample]:
    """``folder/<category>/*.png``, plus an optional ``boxes.jsonl`` with lines
    ``{"image": "hole/a.png", "box": [x, y, w, h]}``."""
    subs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    unknown = [p.name for p in subs if p.name not in categories]
    if not subs or unknown:
        raise ConfigError(
            f"{folder}: expected one sub-folder per category of the prompt set ({', '.join(categories)}), e.g. "
            f"{folder}/good/*.png and {folder}/scratch/*.png; " + (f"unknown: {', '.join(unknown)}" if unknown
                                                                    else "found none") + ".")
    boxes = read_boxes(folder / "boxes.jsonl")
    samples = []
    for sub in subs:
        for f in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                name = f"{sub.name}/{f.name}"
                samples.append(Sample(load_image(f), sub.name, boxes.get(name), name))
            except ImageError as err:
                raise ConfigError(f"evaluate: {err}") from err
    if not samples:
        raise ConfigError(f"{folder}: the category folders hold no images.")
    return samples


def _box(value: object) -> tuple[int, int, int, int] | None:
    """``[x, y, w, h]`` of 4 non-negative whole numbers, or None."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    x, y, w, h = value
    return x, y, w, h


def read_boxes(index: Path) -> dict[str, tuple[int, int, int, int]]:
    """The optional ``boxes.jsonl`` (image -> true box), checked line by line before any encoding: a bad box
    would otherwise crash the measurement at its end, after all the work."""
    boxes: dict[str, tuple[int, int, int, int]] = {}
    if not index.is_file():
        return boxes
    expected = '{"image": "cat/file.png", "box": [x, y, w, h]} with x, y, w, h whole numbers >= 0'
    for n, line in enumerate(read_utf8(index, "save it as UTF-8 JSON lines").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise ConfigError(f"{index}:{n}: not JSON; expected {expected}; fix or remove the line.") from err
        box = _box(row.get("box")) if isinstance(row, dict) else None
        if box is None or not isinstance(row.get("image"), str):
            raise ConfigError(f"{index}:{n}: expected {expected}, got {line.strip()[:80]}; fix or remove the line.")
        boxes[row["image"]] = box
    return boxes


def simulated(url: str, count: int) -> list[Sample]:
    """``count`` frames of a sim:// line with the simulator's truth."""
    from edge.sim import parse_sim_url, simulator

    p = parse_sim_url(url)
    line = simulator(p)
    out = []
    for i in range(p.start, p.start + count):
        f = line.frame(i)
        out.append(Sample(f.image, f.truth.defect, f.truth.box, f"frame{i:06d}"))
    return out


def good_frames_of(url: str, count: int, folder: Path) -> Path:
    """Good frames of a sim:// line written to ``folder`` (for ``--good sim://...``)."""
    from edge.sim import parse_sim_url, simulator

    p = parse_sim_url(url).model_copy(update={"defect_rate": 0.0})
    line = simulator(p)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(p.start, p.start + count):
        cv2.imwrite(str(folder / f"good{i:06d}.png"), line.frame(i).image)
    return folder


# ---- scoring ----
def _row(sample: Sample, fs: FrameScores, state: PromptState, good: str) -> Row:
    d = fs.decide(state)
    oks = [c.ok for c in state.prompts.categories]
    if fs.anomaly is not None:
        score, box = fs.anomaly.ratio, fs.anomaly.box
    else:
        s = np.asarray(fs.scores)  # the first look (max over tiles and windows) ranks the frames
        score = float(s[[not o for o in oks]].max() - s[oks].max())
        best = fs.best_tile(d.category)
        box = fs.region or (best.box if best is not None else None) if d.verdict != "ok" else None
    located = None
    if sample.truth != good and d.verdict != "ok" and sample.box is not None and box is not None:
        x, y, w, h = sample.box
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        located = bool(x - GROW <= cx <= x + w + GROW and y - GROW <= cy <= y + h + GROW)
    return Row(sample.name, sample.truth, d.verdict, d.category, score, box, sample.box, located)


def row_of_result(result: Any, good: str) -> Row:
    """A published result with the simulator's truth (``./run demo``, a replayed sim line) as an evaluation row:
    the live service and ``evaluate`` are measured alike."""
    truth = result.truth or {}
    box = result.anomaly.box if result.anomaly is not None else (result.tile.box if result.tile else None)
    score = result.anomaly.score / max(result.anomaly.threshold, 1e-9) if result.anomaly else result.score
    truth_box = tuple(truth["box"]) if truth.get("box") else None
    defect = str(truth.get("defect", good))
    located = None
    if defect != good and result.verdict != "ok" and truth_box is not None and box is not None:
        x, y, w, h = truth_box
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        located = bool(x - GROW <= cx <= x + w + GROW and y - GROW <= cy <= y + h + GROW)
    return Row(f"{result.camera}/{result.seq}", defect, result.verdict, result.category, float(score),
               tuple(box) if box else None, truth_box, located)  # type: ignore[arg-type]


def evaluate(model: ZeroShotModel, state: PromptState, samples: Sequence[Sample], view: CameraConfig,
             progress: Callable[[int, int], None] | None = None, batch: int = 16) -> Evaluation:
    """Score every sample through the service's path and measure."""
    good = next(c.name for c in state.prompts.categories if c.ok)
    rows: list[Row] = []
    keep: list[tuple[Row, Sample, FrameScores]] = []
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        for sample, fs in zip(chunk, score_frames(model, state, [s.image for s in chunk], view)):
            row = _row(sample, fs, state, good)
            rows.append(row)
            keep.append((row, sample, fs))
        if progress:
            progress(min(i + batch, len(samples)), len(samples))
    memory = None
    if state.memories:
        memory = {"version": state.memory_version, "images": state.good_images,
                  "patches": sum(m.patches for m in state.memories.values()),
                  # each good image scored without itself, in threshold units (below 1 with memory.margin >= 1):
                  # how close the good parts come to the threshold
                  "leave_one_out": [round(x, 4) for m in state.memories.values() for x in m.loo_scores],
                  "leave_one_out_images": [n for m in state.memories.values() for n in m.names]}  # same order
    result = Evaluation(rows, [c.name for c in state.prompts.categories], good, memory)
    result.measures = measures(result)
    result.measures["worst"] = _worst(keep, good)
    return result


Kept = tuple[Row, Sample, FrameScores]


def _worst(keep: list[Kept], good: str, count: int = 8) -> list[Kept]:
    """The misses that were furthest from right: escapes with the lowest scores, false rejects with the highest."""
    escapes = sorted([k for k in keep if k[0].truth != good and k[0].verdict == "ok"], key=lambda k: k[0].score)
    rejects = sorted([k for k in keep if k[0].truth == good and k[0].verdict != "ok"], key=lambda k: -k[0].score)
    return (escapes[: count // 2] + rejects[: count // 2] + escapes[count // 2 :] + rejects[count // 2 :])[:count]


def _share(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def measures(ev: Evaluation) -> dict[str, Any]:
    rows, good = ev.rows, ev.good
    defect = np.array([r.truth != good for r in rows])
    detected = [r for r in rows if r.truth != good and r.verdict != "ok"]
    per_category = {}
    for c in ev.categories:
        if c == good:
            continue
        predicted = [r for r in rows if r.verdict != "ok" and r.category == c]
        actual = [r for r in rows if r.truth == c]
        per_category[c] = {"precision": _share([r.truth == c for r in predicted]),
                           "recall": _share([r.verdict != "ok" and r.category == c for r in actual]),
                           "frames": len(actual)}
    verdicts = ["ok", "ng", "uncertain"]
    kinds = ["good" if r.truth == good else "defect" for r in rows]
    return {
        "frames": len(rows), "defects": int(defect.sum()), "good_parts": int((~defect).sum()),
        "auroc": auroc(np.array([r.score for r in rows]), defect),
        "accuracy": _share([(r.truth == good and r.verdict == "ok") or (r.truth != good and r.verdict == "ng")
                            for r in rows]),
        "escapes": _share([r.verdict == "ok" for r in rows if r.truth != good]),
        "false_rejects": _share([r.verdict == "ng" for r in rows if r.truth == good]),
        "uncertain": _share([r.verdict == "uncertain" for r in rows]),
        "type_top1": _share([r.category == r.truth for r in detected]),
        "localisation": _share([bool(r.located) for r in detected if r.located is not None]),
        "located_of": len([r for r in detected if r.located is not None]),
        "verdicts": {"labels": verdicts, "rows": ["good", "defect"],
                     "matrix": [[sum(1 for r, k in zip(rows, kinds) if k == row and r.verdict == v) for v in verdicts]
                                for row in ("good", "defect")]},
        "confusion": {"labels": ev.categories, "matrix": confusion(
            [r.truth for r in rows], [r.category if r.verdict != "ok" else good for r in rows],
            ev.categories).tolist()},
        "per_category": per_category,
    }


# ---- reports ----
def _f(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    return f"{100 * x:.1f} %" if pct else f"{x:.3f}"


def markdown(ev: Evaluation, title: str) -> str:
    m = ev.measures
    lines = [f"# {title}", "", f"{m['frames']} frames ({m['defects']} defective, {m['good_parts']} good)" +
             (f"; good-part memory {ev.memory['version']} from {ev.memory['images']} images "
              f"({ev.memory['patches']} patches)" if ev.memory else "; no good-part memory (text only)") + ".", "",
             "| measure | value |", "|---|---|",
             f"| image AUROC | {_f(m['auroc'])} |",
             f"| verdict accuracy (uncertain counts as wrong) | {_f(m['accuracy'], True)} |",
             f"| escapes (defects passed as ok) | {_f(m['escapes'], True)} |",
             f"| false rejects (good parts called ng) | {_f(m['false_rejects'], True)} |",
             f"| uncertain | {_f(m['uncertain'], True)} |",
             f"| defect-type top-1 among detected defects | {_f(m['type_top1'], True)} |",
             f"| localisation (box centre in the true box + {GROW} px), of {m['located_of']} | "
             f"{_f(m['localisation'], True)} |", "",
             "Verdicts (rows: truth):", "", "| truth \\ verdict | ok | ng | uncertain |", "|---|---|---|---|"]
    for name, row in zip(m["verdicts"]["rows"], m["verdicts"]["matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "Categories (rows: truth; an ok verdict counts as the good class):", "",
              format_confusion(np.array(m["confusion"]["matrix"]), m["confusion"]["labels"]), "",
              "| category | precision | recall | frames |", "|---|---|---|---|"]
    lines += [f"| {c} | {_f(v['precision'])} | {_f(v['recall'])} | {v['frames']} |"
              for c, v in m["per_category"].items()]
    lines += ["", "![ROC](roc.png) ![confusion](confusion.png)", "", "Worst misses (with heat maps):", "",
              "![misses](misses.png)", ""]
    return "\n".join(lines)


def roc_png(rows: list[Row], good: str, path: Path) -> None:
    scores = np.array([r.score for r in rows])
    pos = np.array([r.truth != good for r in rows])
    size, pad = 360, 40
    img = np.full((size + 2 * pad, size + 2 * pad, 3), 255, np.uint8)
    cv2.rectangle(img, (pad, pad), (pad + size, pad + size), (0, 0, 0), 1)
    cv2.line(img, (pad, pad + size), (pad + size, pad), (200, 200, 200), 1)
    if pos.any() and (~pos).any():
        points = []
        for t in np.unique(scores)[::-1]:
            pred = scores >= t
            points.append((float((pred & ~pos).sum() / (~pos).sum()), float((pred & pos).sum() / pos.sum())))
        pts = [(pad, pad + size)] + [(int(pad + x * size), int(pad + size - y * size)) for x, y in points]
        cv2.polylines(img, [np.array(pts, np.int32)], False, (180, 80, 20), 2, cv2.LINE_AA)
    cv2.putText(img, f"ROC, AUROC {auroc(scores, pos):.3f}", (pad, pad - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "false positive rate", (pad + 110, pad + size + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def confusion_png(m: dict[str, Any], path: Path) -> None:
    labels, matrix = m["confusion"]["labels"], np.array(m["confusion"]["matrix"], np.float64)
    cell, pad = 56, 90
    n = len(labels)
    img = np.full((pad + n * cell + 10, pad + n * cell + 10, 3), 255, np.uint8)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(n):
        for j in range(n):
            shade = int(255 - 200 * norm[i, j])
            x, y = pad + j * cell, pad + i * cell
            cv2.rectangle(img, (x, y), (x + cell - 2, y + cell - 2), (255, shade, shade), -1)
            cv2.putText(img, str(int(matrix[i, j])), (x + 8, y + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, labels[i][:9], (4, pad + i * cell + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0))
        cv2.putText(img, labels[i][:7], (pad + i * cell + 2, pad - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0))
    cv2.imwrite(str(path), img)


def overlay(image: np.ndarray, heat: np.ndarray | None, box: tuple[int, int, int, int] | None,
            truth_box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The frame with the anomaly map blended in (red = at or over the threshold) and the boxes."""
    out = blend_heat(image, heat) if heat is not None else image.copy()
    if truth_box is not None:
        x, y, w, h_ = truth_box
        cv2.rectangle(out, (x, y), (x + w, y + h_), (255, 255, 255), 1)
    if box is not None:
        x, y, w, h_ = box
        cv2.rectangle(out, (x, y), (x + w, y + h_), (0, 0, 255), 2)
    return out


def misses_png(worst: list[tuple[Row, Sample, FrameScores]], path: Path) -> None:
    cells = []
    for row, sample, fs in worst:
        im = overlay(sample.image, fs.anomaly.heat if fs.anomaly else None, row.box, row.truth_box)
        im = cv2.resize(im, (320, int(320 * im.shape[0] / im.shape[1])))
        cv2.putText(im, f"{row.name[-22:]}: {row.truth} -> {row.verdict} {row.category} ({row.score:.2f})", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        cells.append(im)
    if not cells:
        cells = [np.full((60, 320, 3), 255, np.uint8)]
        cv2.putText(cells[0], "no misses", (8, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 120, 0), 1)
    h = max(c.shape[0] for c in cells)
    cells = [np.pad(c, ((0, h - c.shape[0]), (0, 0), (0, 0))) for c in cells]
    while len(cells) % 4:
        cells.append(np.zeros_like(cells[0]))
    cv2.imwrite(str(path), np.vstack([np.hstack(cells[i : i + 4]) for i in range(0, len(cells), 4)]))


def write_report(ev: Evaluation, out: Path, title: str, extra: dict[str, Any] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    worst = ev.measures.pop("worst", [])
    data = {"title": title, **(extra or {}), "memory": ev.memory, "measures": ev.measures,
            "frames": [vars(r) for r in ev.rows]}
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(ev, title), encoding="utf-8")
    roc_png(ev.rows, ev.good, out / "roc.png")
    confusion_png(ev.measures, out / "confusion.png")
    misses_png(worst, out / "misses.png")
    ev.measures["worst"] = worst
    return out / "report.json"
