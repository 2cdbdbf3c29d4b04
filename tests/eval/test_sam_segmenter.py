"""SAM behind the segmenter interface: the standard protocol (multimask on the first click, best
predicted IoU; previous low-res logits fed back), equal to the predictor and the session; and the
tiny model end to end on GrabCut, Berkeley and DAVIS."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

clicksam = pytest.importorskip("clicksam")
from clicksam.eval import Click  # noqa: E402
from clicksam.cli import main  # noqa: E402
from clicksam.eval.loop import evaluate_clicks  # noqa: E402
from clicksam.eval.sam_segmenter import SamSegmenter  # noqa: E402
from clicksam.eval.segmenter import Prompt  # noqa: E402


@pytest.fixture(scope="module")
def tiny_predictor():
    torch.manual_seed(0)
    model = clicksam.build_sam("tiny")
    predictor = clicksam.SamPredictor(model)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    image[10:30, 20:50] = (250, 30, 30)
    predictor.set_image(image)
    return predictor, image


def test_steps_match_the_predictor_protocol(tiny_predictor):
    predictor, image = tiny_predictor
    seg = SamSegmenter(predictor, "sam")
    assert seg.threshold == 0.0
    seg.reset("x")
    first = seg.step(Prompt((Click(30, 20, True),)), None)
    masks, scores, low_res = predictor.predict(np.array([[30, 20]]), np.array([1]), multimask_output=True,
                                               return_logits=True)
    best = int(np.argmax(scores))
    np.testing.assert_allclose(first.scores, masks[best], atol=1e-5)
    clicks = (Click(30, 20, True), Click(5, 5, False))
    second = seg.step(Prompt(clicks), first.state)
    masks2, _, _ = predictor.predict(np.array([[30, 20], [5, 5]]), np.array([1, 0]),
                                     mask_input=low_res[best:best + 1], multimask_output=False, return_logits=True)
    np.testing.assert_allclose(second.scores, masks2[0], atol=1e-5)


def test_click_loop_equals_the_interactive_session(tiny_predictor):
    predictor, image = tiny_predictor
    gt = np.zeros(image.shape[:2], dtype=np.int8)
    gt[10:30, 20:50] = 1
    seg = SamSegmenter(predictor, "sam")
    result = evaluate_clicks(seg, gt, "obj", max_clicks=4)
    session = clicksam.InteractiveSession(predictor, method="sam")
    for click in result.clicks:
        session.add_click(click.x, click.y, click.positive)
    final = session.mask
    inter = np.count_nonzero(final & (gt == 1))
    union = np.count_nonzero(final | (gt == 1))
    assert result.ious[len(result.clicks) - 1] == pytest.approx(inter / union)


@pytest.mark.slow
def test_tiny_model_end_to_end_on_the_benchmarks(shared_dir, tmp_path):
    out = tmp_path / "tiny"
    args = ["eval", "--dataset", "GrabCut", "Berkeley", "DAVIS", "--data-root", str(shared_dir / "data"),
            "--model", "tiny", "--method", "sam", "--max-clicks", "4", "--limit", "1", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["datasets"]) == {"GrabCut", "Berkeley", "DAVIS"}
    for s in summary["datasets"].values():
        assert s["num_objects"] == 1 and len(s["miou"]) == 4 and s["spc"] > 0
    assert (out / "miou.png").is_file() and "DAVIS" in (out / "results.md").read_text()
    before = (out / "DAVIS.jsonl").read_text()
    assert main(args) == 0  # a finished run resumes to a no-op
    assert (out / "DAVIS.jsonl").read_text() == before


def test_one_shot_prompts_match_the_predictor(tiny_predictor):
    predictor, image = tiny_predictor
    seg = SamSegmenter(predictor, "sam")
    box = (18.0, 8.0, 51.0, 31.0)
    out = seg.step(Prompt(box=box), None)
    masks, _, _ = predictor.predict(box=np.array(box), multimask_output=False, return_logits=True)
    np.testing.assert_allclose(out.scores, masks[0], atol=1e-5)
    points = (Click(25, 12, True), Click(40, 20, True), Click(30, 25, True))
    out = seg.step(Prompt(points), None)
    masks, _, _ = predictor.predict(np.array([[25, 12], [40, 20], [30, 25]]), np.array([1, 1, 1]),
                                    multimask_output=False, return_logits=True)
    np.testing.assert_allclose(out.scores, masks[0], atol=1e-5)
