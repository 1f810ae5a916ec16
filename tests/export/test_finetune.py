"""Contrastive training: both losses go down, and bad training data gets clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge.errors import ConfigError
from edge.preprocess import normalize
from edge.prompts import PromptSet
from edge.sim import LineSimulator
from export.captions import DEMO_PROMPTS
from export.checkpoint import load_checkpoint
from export.finetune import (
    PairData,
    TrainConfig,
    _batch,
    clip_loss,
    folder_pairs,
    init_logits,
    noisy_caption,
    pair_loss,
    positive_share,
    siglip_loss,
    steps_within,
    to_pixels,
    train,
    zero_shot_eval,
)
from tests.helpers import one_line_error, run_cli


def test_losses_prefer_matching_pairs() -> None:
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    same = torch.eye(4)
    scale, bias = torch.tensor(np.log(10.0)), torch.tensor(-2.0)
    assert clip_loss(img, img, scale, same) < clip_loss(img, img.roll(1, 0), scale, same)
    assert siglip_loss(img, img, scale, bias, same) < siglip_loss(img, img.roll(1, 0), scale, bias, same)


def test_a_fresh_siglip_starts_at_the_log_odds_of_a_positive_pair(tiny_checkpoints: dict[str, Path],
                                                                    family: str) -> None:
    """Six equally common labels: a sixth of a batch's pairs share a label, so the sigmoid's bias starts at
    log(1/5), not SigLIP's -10 (which AdamW cannot move far in a short run); CLIP starts at 1/0.07."""
    assert positive_share(["good", "scratch", "dent", "crack", "stain", "chip"] * 5, 30) == pytest.approx(1 / 6)
    # unique captions: only each image's own pair is positive, 1 in B (not 1 in the data set's size)
    assert positive_share([f"part {i}" for i in range(5000)], 32) == pytest.approx(1 / 32)
    assert positive_share(["a", "b"], 32) == pytest.approx(1 / 2)
    model = load_checkpoint(str(tiny_checkpoints[family])).model
    init_logits(model, family, ["good", "scratch", "dent", "crack", "stain", "chip"] * 5, 30)  # type: ignore[arg-type]
    if family == "siglip":
        assert float(model.logit_bias) == pytest.approx(np.log(1 / 5))
        assert float(model.logit_scale.exp()) == pytest.approx(10.0)
    else:
        assert float(model.logit_scale.exp()) == pytest.approx(1 / 0.07)


def test_a_few_steps_reduce_the_loss(tiny_checkpoints: dict[str, Path], family: str) -> None:
    ckpt = load_checkpoint(str(tiny_checkpoints[family]))
    model = ckpt.model.train()
    sim = LineSimulator(seed=3, size=(160, 120), defect_rate=0.5)
    frames = np.stack([cv2.resize(sim.frame(i).image, (ckpt.image.size,) * 2) for i in range(8)])
    pixels = torch.from_numpy(normalize(frames, ckpt.image))
    captions = [f"a photo of part number {i}" for i in range(8)]
    ids = ckpt.tokenizer(captions, padding="max_length", truncation=True,
                         max_length=ckpt.text.context_length, return_tensors="pt")["input_ids"]
    same = torch.eye(8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    torch.manual_seed(0)
    losses = []
    for _ in range(20):
        loss = pair_loss(model, ckpt.family, pixels, ids, same)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.75 * losses[0], losses


def _image(path: Path) -> None:
    cv2.imwrite(str(path), np.full((16, 16, 3), 128, np.uint8))


def test_folder_pairs_errors(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    spec = load_checkpoint(str(tiny_checkpoints["siglip"])).image
    with pytest.raises(ConfigError, match="no captions.jsonl"):
        folder_pairs(tmp_path, spec)
    (tmp_path / "captions.jsonl").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        folder_pairs(tmp_path, spec)
    _image(tmp_path / "a.png")
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"image": "a.png", "caption": "a part"}) + "\n"
        + json.dumps({"image": "gone.png", "caption": "a scratch"}) + "\n")
    with pytest.raises(ConfigError, match="1 caption\\(s\\) name missing images, first 'gone.png'"):
        folder_pairs(tmp_path, spec)
    _image(tmp_path / "gone.png")
    data = folder_pairs(tmp_path, spec)
    assert data.images.shape == (2, spec.size, spec.size, 3) and data.labels == ["a part", "a scratch"]


def test_finetune_cli_trains_and_saves_a_loadable_checkpoint(tiny_checkpoints: dict[str, Path],
                                                            tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    sim = LineSimulator(seed=2, size=(96, 72))
    for i in range(6):
        frame = sim.frame(i)
        cv2.imwrite(str(data / f"{i}.png"), frame.image)
        rows.append(json.dumps({"image": f"{i}.png", "caption": f"a {frame.truth.defect} part",
                                "label": frame.truth.defect}))
    (data / "captions.jsonl").write_text("\n".join(rows) + "\n")
    result = run_cli("finetune", "--from", str(tiny_checkpoints["clip"]), "--data", str(data),
                     "--out", str(tmp_path / "tuned"), "--steps", "3", "--batch", "4", "--eval-every", "1")
    assert "wrote" in result.out
    progress = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    assert [p["step"] for p in progress] == [1, 2, 3] and all("loss" in p for p in progress)
    run_cli("export", str(tmp_path / "tuned"), "--out", str(tmp_path / "bundle"), "--quiet")


def test_finetune_dense_objective_uses_the_masks_of_a_folder(tiny_checkpoints: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """--dense-weight: patches are aligned with their region's label, from the masks that 'sim --out' writes."""
    data = tmp_path / "data"
    run_cli("sim", "sim://line?seed=3&defect_rate=1&size=96x72", "--out", str(data), "--frames", "6")
    rows = [json.loads(line) for line in (data / "truth.jsonl").read_text().splitlines()]
    assert all(r["mask"] for r in rows)
    (data / "captions.jsonl").write_text("".join(json.dumps({"image": r["image"], "caption": f"a {r['defect']} part",
                                                             "label": r["defect"], "mask": r["mask"]}) + "\n"
                                                 for r in rows))

    def first_loss(*extra: str) -> float:
        out = run_cli("finetune", "--from", str(tiny_checkpoints["clip"]), "--data", str(data), "--out",
                      str(tmp_path / "tuned"), "--steps", "1", "--batch", "4", *extra).err
        return float(json.loads(next(ln for ln in out.splitlines() if ln.startswith("{")))["loss"])

    plain, dense = first_loss(), first_loss("--dense-weight", "1")
    assert dense > plain  # the same first batch and weights: the patch term is added to the image loss

    for r in rows:
        r.pop("mask")
    (data / "captions.jsonl").write_text("".join(json.dumps({"image": r["image"], "caption": "a part"}) + "\n"
                                                 for r in rows))
    line = one_line_error(run_cli("finetune", "--from", str(tiny_checkpoints["clip"]), "--data", str(data), "--out",
                                  str(tmp_path / "o"), "--dense-weight", "0.5", expect=2))
    assert "no defect masks" in line
    line = one_line_error(run_cli("finetune", "--init", "clip", "--data", str(data), "--out", str(tmp_path / "o"),
                                  "--zoom", "0,2", expect=2))
    assert "--zoom" in line


def test_finetune_cli_errors(tmp_path: Path) -> None:
    line = one_line_error(run_cli("finetune", "--init", "clip", "--data", str(tmp_path / "empty"),
                                  "--out", str(tmp_path / "o"), expect=2))
    assert "captions.jsonl" in line
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    line = one_line_error(run_cli("finetune", "--from", str(tmp_path / "bert"), "--data", str(tmp_path),
                                  "--out", str(tmp_path / "o"), expect=4))
    assert "not supported" in line
    line = one_line_error(run_cli("finetune", "--init", "clip", "--data", "sim://line?colour=red",
                                  "--out", str(tmp_path / "o"), expect=7))
    assert "colour" in line


def test_caption_noise_adds_made_up_words_and_keeps_the_caption() -> None:
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert noisy_caption("a steel plate with a scratch", rng, 0.0) == "a steel plate with a scratch"
    assert rng.bit_generator.state == before  # off: the recipe's random stream is the one it always was
    caption = "a steel plate with a scratch"
    for _ in range(50):
        words = noisy_caption(caption, rng, 1.0).split()
        extra = list(words)
        for w in caption.split():  # the caption's own words, in order
            extra.remove(w)
        assert 1 <= len(extra) <= 3 and all(w.isalpha() and w.islower() and 2 <= len(w) <= 9 for w in extra)
        assert [w for w in words if w not in extra] == caption.split()
    hits = sum(noisy_caption(caption, rng, 0.5) != caption for _ in range(400))
    assert 150 < hits < 250


def test_a_batch_carries_the_caption_noise(tiny_checkpoints: dict[str, Path]) -> None:
    """The share given to training reaches the captions that are tokenized (not only the helper)."""
    ckpt = load_checkpoint(str(tiny_checkpoints["clip"]))
    seen: list[str] = []

    def tokenizer(captions: list[str], **kw: object) -> object:
        seen.extend(captions)
        return ckpt.tokenizer(captions, **kw)

    size = ckpt.image.size
    data = PairData(np.zeros((4, size, size, 3), np.uint8), ["a", "b", "c", "d"], lambda i, rng: "a clean part")
    for noise, grows in ((0.0, False), (1.0, True)):
        seen.clear()
        _batch(data, ckpt.image, tokenizer, ckpt.text.context_length, 4, np.random.default_rng(0), noise)
        assert len(seen) == 4 and all((len(c.split()) > 3) == grows for c in seen), seen


def test_text_only_leaves_the_image_side_as_it_was(tiny_checkpoints: dict[str, Path], family: str,
                                                    tmp_path: Path) -> None:
    """--text-only: image tower, temperature and bias bit for bit the same (a memory taught on the patch tokens
    still holds); the text tower moved."""
    data = tmp_path / "data"
    run_cli("sim", "sim://line?seed=3&defect_rate=0.5&size=96x72", "--out", str(data), "--frames", "6")
    rows = [json.loads(line) for line in (data / "truth.jsonl").read_text().splitlines()]
    (data / "captions.jsonl").write_text("".join(json.dumps({"image": r["image"], "caption": f"a {r['defect']} part",
                                                             "label": r["defect"]}) + "\n" for r in rows))
    run_cli("finetune", "--from", str(tiny_checkpoints[family]), "--data", str(data), "--out", str(tmp_path / "t"),
            "--steps", "3", "--batch", "4", "--lr", "1e-3", "--warmup", "1", "--text-only", "--text-noise", "0.5")
    before = dict(load_checkpoint(str(tiny_checkpoints[family])).model.named_parameters())
    after = dict(load_checkpoint(str(tmp_path / "t")).model.named_parameters())
    image_side = [n for n in before if not n.startswith(("text_model.", "text_projection."))]
    assert any(n.startswith("vision_model.") for n in image_side) and "logit_scale" in image_side
    assert all(torch.equal(before[n], after[n]) for n in image_side)
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("text_model."))
    line = one_line_error(run_cli("finetune", "--from", str(tiny_checkpoints[family]), "--data", str(data), "--out",
                                  str(tmp_path / "o"), "--text-noise", "1.5", expect=2))
    assert "--text-noise 1.5" in line
    line = one_line_error(run_cli("finetune", "--init", family, "--data", str(data), "--out", str(tmp_path / "o"),
                                  "--text-only", expect=2))
    assert "--text-only needs --from" in line


def test_training_normalises_exactly_as_the_runtime(tiny_checkpoints: dict[str, Path], family: str) -> None:
    """The training batch is normalised where the model is (a GPU), with the runtime's constants: the same
    pixel values as edge.preprocess.normalize, bit for bit on the CPU."""
    spec = load_checkpoint(str(tiny_checkpoints[family])).image
    frames = np.random.default_rng(0).integers(0, 256, (3, spec.size, spec.size, 3), dtype=np.uint8)
    assert np.array_equal(to_pixels(torch.from_numpy(frames), spec).numpy(), normalize(frames, spec))


def test_a_time_budget_sets_the_run_length_at_the_end_of_warm_up() -> None:
    """The cosine schedule needs its length before it decays: 95 % of the budget left after warm-up, at the
    speed measured in it; never more than the step cap, never fewer than one more step."""
    cfg = TrainConfig(steps=1000, warmup=10, budget_s=60.0)
    assert steps_within(cfg, seconds_so_far=10.0, steps_so_far=10) == 10 + int(0.95 * 50 / 1.0)
    assert steps_within(TrainConfig(steps=20, warmup=10, budget_s=60.0), 10.0, 10) == 20
    assert steps_within(TrainConfig(steps=1000, warmup=10, budget_s=5.0), 10.0, 10) == 11
    assert steps_within(TrainConfig(steps=1000, warmup=10), 10.0, 10) == 1000  # no budget: the steps given
    # 4 of the 10 s were an evaluation: the speed is 0.6 s a step, the 50 s left still count from 10 s
    assert steps_within(cfg, seconds_so_far=10.0, steps_so_far=10, eval_seconds=4.0) == 10 + int(0.95 * 50 / 0.6)


def _tiny_pairs(size: int, n: int = 6) -> PairData:
    sim = LineSimulator(seed=3, size=(160, 120), defect_rate=0.5)
    frames = [sim.frame(i) for i in range(n)]
    return PairData(np.stack([cv2.resize(f.image, (size, size)) for f in frames]),
                    [f.truth.defect for f in frames], lambda i, rng: f"a {frames[i].truth.defect} part")


def test_a_budgeted_run_stops_and_logs_its_length(tiny_checkpoints: dict[str, Path]) -> None:
    ckpt = load_checkpoint(str(tiny_checkpoints["clip"]))
    lines: list[str] = []
    cfg = TrainConfig(steps=500, batch=4, warmup=2, eval_every=100, budget_s=1e-3)
    history = train(ckpt.model, "clip", ckpt.tokenizer, ckpt.image, _tiny_pairs(ckpt.image.size), cfg,
                    log=lines.append)
    assert json.loads(lines[0]) == {"budget_s": 1e-3, "steps": 3}
    assert [row["step"] for row in history] == [3]
    with pytest.raises(ConfigError, match="warm-up of at least 1 step"):
        train(ckpt.model, "clip", ckpt.tokenizer, ckpt.image, _tiny_pairs(ckpt.image.size),
              TrainConfig(steps=5, batch=4, warmup=0, budget_s=1.0), log=lines.append)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU; the refusal is for those without")
def test_training_on_a_gpu_that_is_not_there_is_refused_in_one_line(tiny_checkpoints: dict[str, Path]) -> None:
    ckpt = load_checkpoint(str(tiny_checkpoints["clip"]))
    with pytest.raises(ConfigError) as e:
        train(ckpt.model, "clip", ckpt.tokenizer, ckpt.image, _tiny_pairs(ckpt.image.size),
              TrainConfig(steps=2, batch=4, warmup=1, device="cuda"))
    assert "--device cuda" in str(e.value) and "--device cpu" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU seen by PyTorch")
def test_training_on_the_gpu_lowers_the_loss_with_the_patch_objective(tiny_checkpoints: dict[str, Path],
                                                                      family: str) -> None:
    """Batch, masks and evaluation all follow the model to the GPU (a tensor left on the CPU fails the step)."""
    ckpt = load_checkpoint(str(tiny_checkpoints[family]))
    data = _tiny_pairs(ckpt.image.size)
    data.masks = np.zeros(data.images.shape[:3], np.uint8)
    data.masks[:, 4:12, 4:12] = 255
    prompts = PromptSet.model_validate(DEMO_PROMPTS)

    def evaluate() -> dict[str, object]:
        return zero_shot_eval(ckpt.model, family, ckpt.tokenizer, ckpt.text.context_length, ckpt.image, prompts,
                              data.images, data.labels)

    cfg = TrainConfig(steps=30, batch=6, lr=1e-3, warmup=2, eval_every=10, dense_weight=0.5, device="cuda")
    history = train(ckpt.model, family, ckpt.tokenizer, ckpt.image, data, cfg, evaluate, log=lambda s: None)
    assert next(ckpt.model.parameters()).is_cuda and [row["step"] for row in history] == [10, 20, 30]
    assert history[-1]["loss"] < history[0]["loss"] and 0 <= history[-1]["top1"] <= 1, history
