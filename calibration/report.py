"""``calibration/report.json``, ``report.md`` and the score-difference histograms in a bundle.

One report per bundle, one section per artifact role: calibrating INT8 after FP16 adds
its section and keeps the FP16 one. The Markdown is rendered from the JSON, so the two
cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPORT_DIR = "calibration"


def histogram_png(diffs: np.ndarray, path: Path, title: str, bins: int = 40) -> None:
    """A plain bar histogram of |score difference| (log-count axis), drawn with OpenCV."""
    values = np.abs(diffs).ravel()
    top = max(float(values.max()) if values.size else 0.0, 1e-6)
    counts, edges = np.histogram(values, bins=bins, range=(0.0, top))
    w, h, pad = 640, 360, 48
    img = np.full((h, w, 3), 255, np.uint8)
    logc = np.log10(counts + 1.0)
    scale = (h - 2 * pad) / max(float(logc.max()), 1e-6)
    bar_w = (w - 2 * pad) / bins
    for i, c in enumerate(logc):
        x0 = int(pad + i * bar_w)
        cv2.rectangle(img, (x0, int(h - pad - c * scale)), (int(x0 + bar_w) - 1, h - pad), (180, 110, 40), -1)
    cv2.line(img, (pad, h - pad), (w - pad, h - pad), (0, 0, 0), 1)
    cv2.line(img, (pad, pad), (pad, h - pad), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (pad, 28), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "0", (pad - 4, h - pad + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{edges[-1]:.2e}", (w - pad - 50, h - pad + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "|score difference| vs FP32 (count, log scale)", (pad, h - 10), font, 0.4, (0, 0, 0), 1,
                cv2.LINE_AA)
    tmp = path.with_suffix(".tmp.png")
    if not cv2.imwrite(str(tmp), img):
        raise OSError(f"{tmp}: cannot write the histogram")
    tmp.replace(path)


def flip_rows(comparison: Any, limit: int = 24) -> list[dict[str, Any]]:
    """The frames whose verdict changed, harmful flips first, with both verdicts and top scores."""
    rows = []
    for i in comparison.harmful + comparison.band:
        ref, cand = comparison.ref_verdicts[i], comparison.cand_verdicts[i]
        top = int(np.argmax(np.abs(comparison.score_diffs[i])))
        rows.append({"frame": i, "kind": comparison.kinds[i], "fp32": f"{ref[0]} {ref[1]}".strip(),
                     "candidate": f"{cand[0]} {cand[1]}".strip(), "category": comparison.names[top],
                     "fp32_score": round(float(comparison.ref_scores[i, top]), 4),
                     "candidate_score": round(float(comparison.cand_scores[i, top]), 4)})
    return rows[:limit]


def flipped_frames_png(comparison: Any, thumbnails: list[np.ndarray], path: Path, limit: int = 12) -> Path | None:
    """A contact sheet of the flipped frames, each with its FP32 and candidate verdict and score."""
    rows = flip_rows(comparison, limit)
    if not rows or not thumbnails:
        path.unlink(missing_ok=True)
        return None
    cells = []
    for r in rows:
        thumb = thumbnails[r["frame"]].copy()
        canvas = np.full((thumb.shape[0] + 46, max(thumb.shape[1], 160), 3), 255, np.uint8)
        canvas[: thumb.shape[0], : thumb.shape[1]] = thumb
        colour = (0, 0, 200) if r["kind"] == "harmful" else (0, 140, 220)
        for k, text in enumerate((f"fp32 {r['fp32']} {r['fp32_score']:.2f}",
                                  f"cand {r['candidate']} {r['candidate_score']:.2f}")):
            cv2.putText(canvas, text, (3, thumb.shape[0] + 16 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1,
                        cv2.LINE_AA)
        cells.append(canvas)
    h = max(c.shape[0] for c in cells)
    cells = [np.pad(c, ((0, h - c.shape[0]), (0, 0), (0, 0)), constant_values=255) for c in cells]
    per_row = 4
    lines = [np.hstack(cells[i : i + per_row] + [np.full_like(cells[0], 255)] * (per_row - len(cells[i:i + per_row])))
             for i in range(0, len(cells), per_row)]
    tmp = path.with_suffix(".tmp.png")
    if not cv2.imwrite(str(tmp), np.vstack(lines)):
        raise OSError(f"{tmp}: cannot write the flipped frames")
    tmp.replace(path)
    return path


def update(root: Path, role: str, section: dict[str, Any]) -> Path:
    """Replace one role's section of the bundle's report; rewrite JSON and Markdown atomically."""
    folder = root / REPORT_DIR
    folder.mkdir(exist_ok=True)
    path = folder / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {"format_version": 1, "artifacts": {}}
    report["artifacts"][role] = section
    _atomic_write(path, json.dumps(report, indent=2) + "\n")
    _atomic_write(folder / "report.md", markdown(report))
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _f(x: float | None, digits: int = 5) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _patch_rows(g: dict[str, Any]) -> list[str]:
    if g.get("patch_cosine_p1") is None:
        return []
    ok = g["patch_cosine_p1"] >= (g.get("min_patch_cosine") or 0)
    return [f"| patch-token cosine p1 (the good-part memory) | {_f(g['patch_cosine_p1'])} | "
            f">= {g.get('min_patch_cosine')} | {'pass' if ok else 'FAIL'} |"]


def _verdict_rows(g: dict[str, Any]) -> list[str]:
    """The verdict part of the gate table (per frame; older reports compared crops)."""
    if g.get("agreement_lower_bound") is None:
        return [f"| verdict agreement (per crop) | {g['verdict_agreement']:.2%} | >= {g['min_agreement']:.0%} | |"]
    ok = g["agreement_lower_bound"] >= g["min_agreement"]
    return [f"| harmful verdict flips (frames) | {g['harmful_flips']} of {g['frames']} | | |",
            f"| agreement, lower bound (Wilson, 95 %) | {g['agreement_lower_bound']:.4f} | >= {g['min_agreement']} | "
            f"{'pass' if ok else 'FAIL'} |",
            f"| moves into or out of uncertain | {g['band_moves']} | (not gated) | |"]


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Calibration report", ""]
    for role, s in sorted(report["artifacts"].items()):
        g = s["gate"]
        lines += [f"## {role} ({s['precision']}, {s['method']})", "",
                  f"Data: `{s['data']['source']}`, {s['data']['calibration']} calibration and "
                  f"{s['data']['holdout']} hold-out crops (seed {s['data']['seed']}), "
                  f"{len(s['data']['skipped'])} unreadable files skipped.", "",
                  "| gate | value | threshold | |", "|---|---|---|---|",
                  f"| image cosine p1 | {_f(g['cosine_p1'])} | >= {g['min_cosine']} | "
                  f"{'pass' if g['cosine_p1'] >= g['min_cosine'] else 'FAIL'} |",
                  f"| image cosine mean / min | {_f(g['cosine_mean'])} / {_f(g['cosine_min'])} | | |",
                  *_patch_rows(g),
                  *_verdict_rows(g),
                  f"| max score difference | {_f(g['max_score_diff'])} | | |",
                  f"| ORT CPU time per image vs FP32 (batch 8) | {_f(g['latency_ratio'], 2)}x | | |", "",
                  f"Gate: **{'passed' if g['passed'] else 'FAILED'}**" + (" (written with --force)" if g['forced']
                                                                         else ""), ""]
        if s.get("text_cosine_min") is not None:
            lines += [f"Text tower: min cosine over {s['text_prompts']} prompts {_f(s['text_cosine_min'])}.", ""]
        if s.get("candidates"):
            lines += [f"ONNX Runtime formats measured on this machine (VNNI: {'yes' if s['vnni'] else 'no'}); FP32: "
                      f"{s['fp32_images_per_s_b1']:.1f} / {s['fp32_images_per_s_b8']:.1f} image/s at batch 1 / 8:", "",
                      "| format | image/s b1 | image/s b8 | vs fp32 b8 | cosine p1 | agreement | gate |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {c['format']} | {c['images_per_s_b1']:.1f} | {c['images_per_s_b8']:.1f} | "
                      f"{c['speedup_b8']:.2f}x | {_f(c['cosine_p1'])} | {c['verdict_agreement']:.2%} | "
                      f"{'pass' if c['passed'] else 'FAIL'} |" for c in s["candidates"]]
            t = s["text_timing"]
            lines += ["", f"Written: **{s['method']}**, the fastest that passed. Text tower (dynamic int8): "
                      f"100 prompts in {t['int8_ms']:.0f} ms (FP32 {t['fp32_ms']:.0f} ms).", ""]
        if s.get("kept_float"):
            lines += ["Kept in higher precision:", "", "| node or group | op | why |", "|---|---|---|"]
            lines += [f"| `{k['name']}` | {k.get('op', '')} | {k['reason']} |" for k in s["kept_float"]]
            lines.append("")
        if s.get("sensitivity"):
            lines += ["Sensitivity (only this group in INT8):", "", "| group | nodes | cosine p1 | cosine mean | "
                      "agreement |", "|---|---|---|---|---|"]
            lines += [f"| {c['group']} | {c['nodes']} | {_f(c['cosine_p1'])} | {_f(c['cosine_mean'])} | "
                      f"{c['verdict_agreement']:.2%} |" for c in s["sensitivity"]]
            lines.append("")
        if s.get("auto_steps"):
            lines += ["Automatic fallback (groups kept in float, cumulative):", "",
                      "| kept | cosine p1 | agreement |", "|---|---|---|"]
            lines += [f"| {a['kept']} | {_f(a['cosine_p1'])} | {a['verdict_agreement']:.2%} |"
                      for a in s["auto_steps"]]
            lines.append("")
        if s.get("flips"):
            lines += ["Frames whose verdict changed (harmful: ok <-> ng or another NG category; band: into or out of "
                      "uncertain):", "", "| frame | kind | FP32 | candidate | category | FP32 score | candidate "
                      "score |", "|---|---|---|---|---|---|---|"]
            lines += [f"| {f['frame']} | {f['kind']} | {f['fp32']} | {f['candidate']} | {f['category']} | "
                      f"{f['fp32_score']:.4f} | {f['candidate_score']:.4f} |" for f in s["flips"]]
            lines.append("")
            if s.get("flips_png"):
                lines += [f"![flipped frames]({Path(s['flips_png']).name})", ""]
        if s.get("histogram"):
            lines += [f"![score differences]({Path(s['histogram']).name})", ""]
    return "\n".join(lines)
