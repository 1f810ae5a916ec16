"""The gate's arithmetic on made-up verdicts: what counts as harmful, the bound, the sample it needs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.gate import Comparison, Thresholds, check_sample, flip_kind, min_frames, wilson_lower
from edge.errors import CalibrationError


@pytest.mark.parametrize("ref, cand, kind", [
    (("ok", ""), ("ok", ""), "same"),
    (("ok", ""), ("ng", "hole"), "harmful"),
    (("ng", "hole"), ("ok", ""), "harmful"),
    (("ng", "hole"), ("ng", "crack"), "harmful"),
    (("ok", ""), ("uncertain", "hole"), "band"),
    (("uncertain", "hole"), ("ng", "hole"), "band"),
    (("uncertain", "hole"), ("uncertain", "stain"), "band"),
])
def test_what_counts_as_harmful(ref: tuple[str, str], cand: tuple[str, str], kind: str) -> None:
    assert flip_kind(ref, cand) == kind


def test_wilson_bound_and_the_sample_it_needs() -> None:
    assert wilson_lower(128, 128) == pytest.approx(128 / (128 + 1.645**2))
    assert wilson_lower(47, 48) < 0.95 < 47 / 48  # one flip in 48 frames is not "98 %"
    assert wilson_lower(255, 256) > 0.97 > wilson_lower(127, 128)
    need = min_frames(0.97)
    assert wilson_lower(need, need) >= 0.97 > wilson_lower(need - 1, need - 1)
    with pytest.raises(CalibrationError, match=r"40 hold-out frames give an agreement bound of at most 0\.93.*use at "
                                               rf"least {need} frames \(--holdout-images {need}\)"):
        check_sample(40, 0.97)
    check_sample(need, 0.97)


def _comparison(kinds: list[str]) -> Comparison:
    ref = [("ok", "")] * len(kinds)
    cand = [{"same": ("ok", ""), "harmful": ("ng", "hole"), "band": ("uncertain", "hole")}[k] for k in kinds]
    n = len(kinds)
    return Comparison(np.full(n * 5, 0.999), np.zeros((n, 2)), ref, cand, np.zeros((n, 2)), np.zeros((n, 2)),
                      ["good", "hole"])


def test_band_moves_do_not_fail_the_gate_harmful_flips_do() -> None:
    t = Thresholds(0.99, 0.97)
    calm = _comparison(["same"] * 120 + ["band"] * 8).record(t, None)
    assert calm.passed and calm.harmful_flips == 0 and calm.band_moves == 8 and calm.frames == 128
    one = _comparison(["same"] * 127 + ["harmful"]).record(t, None)
    assert not one.passed and one.verdict_agreement == 127 / 128 and one.agreement_lower_bound < 0.97
    more = _comparison(["same"] * 255 + ["harmful"]).record(t, None)  # the same rate on twice the frames passes
    assert more.passed and more.harmful_flips == 1


def test_patch_tokens_are_gated_too() -> None:
    """A candidate whose pooled embedding is fine but whose patch tokens drift fails: the memory compares them."""
    t = Thresholds(0.99, 0.97, 0.98)
    comparison = _comparison(["same"] * 128)
    assert comparison.record(t, None).patch_cosine_p1 is None  # no patch tokens, no patch gate
    comparison.patch_cosines = np.full(128 * 5 * 49, 0.999)
    good = comparison.record(t, None)
    assert good.passed and good.patch_cosine_p1 == pytest.approx(0.999) and good.min_patch_cosine == 0.98
    comparison.patch_cosines[: 128 * 5] = 0.90  # 2 % of the tokens far off: the p1 falls below the threshold
    bad = comparison.record(t, None)
    assert not bad.passed and bad.patch_cosine_p1 < 0.98 and bad.cosine_p1 >= 0.99


def test_the_report_lists_and_draws_the_flipped_frames(tmp_path: Path) -> None:
    """Harmful flips first, then moves into the uncertain band, each with both verdicts and scores; the contact
    sheet shows them; no sheet (and no stale one) when nothing flipped."""
    from calibration.report import flip_rows, flipped_frames_png

    comparison = _comparison(["same", "band", "same", "harmful"])
    comparison.cand_scores[3] = comparison.score_diffs[3] = [0.2, 0.8]  # the flip's scores moved (fp32: 0, 0)
    rows = flip_rows(comparison)
    assert [(r["frame"], r["kind"]) for r in rows] == [(3, "harmful"), (1, "band")]
    assert rows[0]["fp32"] == "ok" and rows[0]["candidate"] == "ng hole"
    assert rows[0]["category"] == "hole" and rows[0]["candidate_score"] == 0.8 and rows[0]["fp32_score"] == 0.0
    thumbs = [np.full((60, 80, 3), 90 * i % 255, np.uint8) for i in range(4)]
    sheet = flipped_frames_png(comparison, thumbs, tmp_path / "flips.png")
    assert sheet is not None and cv2.imread(str(sheet)).shape[1] >= 2 * 80
    assert flipped_frames_png(_comparison(["same"] * 4), thumbs, tmp_path / "flips.png") is None
    assert not (tmp_path / "flips.png").exists()
