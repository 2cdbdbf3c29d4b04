"""``clicksam eval`` and ``clicksam eval-report`` end to end with oracles (no model needed)."""
from __future__ import annotations

import json

import pytest

from clicksam.cli import main


def eval_args(images, masks, out, *extra):
    return ["eval", "--images", str(images), "--masks", str(masks), "--name", "squares", "--out", str(out),
            "--no-progress", *extra]


def test_eval_writes_summary_table_and_plot(square_dataset, tmp_path, capsys):
    images, masks = square_dataset
    assert main(eval_args(images, masks, tmp_path / "shrink", "--oracle", "erode:3,2,1,0", "--boundary")) == 0
    summary = json.loads((tmp_path / "shrink" / "summary.json").read_text())
    s = summary["datasets"]["squares"]
    assert s["num_objects"] == 2 and s["complete"]
    assert s["noc"] == {"85": 4.0, "90": 4.0, "95": 4.0} and s["nof"] == {"85": 0, "90": 0, "95": 0}
    assert s["miou"][:4] == pytest.approx([0.325, 0.5, 0.725, 1.0])
    assert s["boundary_miou"][3] == 1.0 and s["clicks_run"] == 8
    table = (tmp_path / "shrink" / "results.md").read_text()
    assert "| shrink | oracle-erode | squares | 2 | 4.00 | 4.00 | 4.00 | 0 | 0 | 100.00 |" in table
    assert (tmp_path / "shrink" / "miou.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "NoC@90" in capsys.readouterr().out

    assert main(eval_args(images, masks, tmp_path / "fixed", "--oracle", "erode:1")) == 0
    assert main(["eval-report", str(tmp_path / "shrink"), str(tmp_path / "fixed"),
                 "--out", str(tmp_path / "cmp")]) == 0
    comparison = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| fixed | oracle-erode | squares | 2 | 20.00 | 20.00 | 20.00 | 2 | 2 | 72.50 |" in comparison
    assert "| shrink |" in comparison
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 1000


def test_prompt_protocol_run(square_dataset, tmp_path):
    images, masks = square_dataset
    out = tmp_path / "prompts"
    assert main(eval_args(images, masks, out, "--oracle", "erode:2", "--protocol", "prompts",
                          "--num-prompts", "4", "--box-noise", "0.3")) == 0
    summary = json.loads((out / "summary.json").read_text())
    types = summary["datasets"]["squares"]["types"]
    assert set(types) == {"noisy_box", "point1", "point3", "gt_box"}
    # erosion 2: big square 16^2/20^2, small 6^2/10^2, whatever the prompt
    assert types["point3"]["miou"] == pytest.approx((0.64 + 0.36) / 2)
    assert types["noisy_box"]["stability"] == 1.0
    assert "| prompts | oracle-erode | squares | point1 | 2 | 50.0 |" in (out / "results.md").read_text()
    assert not (out / "miou.png").exists()


def test_cli_errors_are_reported(tmp_path, capsys):
    assert main(["eval", "--dataset", "GrabCut", "--out", str(tmp_path / "x")]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert main(["eval", "--dataset", "GrabCut", "--data-root", str(tmp_path), "--oracle", "empty",
                 "--out", str(tmp_path / "x")]) == 2
    assert "GrabCut not found" in capsys.readouterr().err
    assert main(["eval-report", str(tmp_path / "nothing")]) == 2


def test_an_unreadable_image_is_skipped_the_rest_evaluated_exit_1(square_dataset, tmp_path, capsys):
    images, masks = square_dataset
    (images / "big.png").write_text("not an image")  # its mask is fine
    out = tmp_path / "run"
    assert main(eval_args(images, masks, out, "--oracle", "erode:0")) == 1
    printed = capsys.readouterr()
    assert f"skipped big: cannot read image {images / 'big.png'}: it is not an image" in printed.err
    assert "1 object(s) skipped" in printed.err and "Traceback" not in printed.err
    summary = json.loads((out / "summary.json").read_text())["datasets"]["squares"]
    assert summary["num_objects"] == 1 and not summary["complete"]
    assert "| run (partial) |" in (out / "results.md").read_text()


def test_noc_reports_the_actual_click_cap(square_dataset, tmp_path):
    images, masks = square_dataset
    assert main(eval_args(images, masks, tmp_path / "five", "--oracle", "erode:1", "--max-clicks", "5")) == 0
    table = (tmp_path / "five" / "results.md").read_text()
    assert "| five | oracle-erode | squares | 2 | 5.00 (≤5) | 5.00 (≤5) | 5.00 (≤5) | 2 | 2 |" in table
    assert "(5 if never)" in table and "in 5 clicks" in table and "20 if never" not in table


def test_a_one_click_run_has_no_noc(square_dataset, tmp_path):
    """With one click NoC is 1 whatever the IoU: reported as n/a, not as a perfect 1.00."""
    images, masks = square_dataset
    assert main(eval_args(images, masks, tmp_path / "one", "--oracle", "erode:1", "--max-clicks", "1")) == 0
    table = (tmp_path / "one" / "results.md").read_text()
    assert "| one | oracle-erode | squares | 2 | n/a | n/a | n/a | 2 | 2 |" in table and "1.00" not in table
    assert "n/a" in table.split("\n\n")[-1]  # the footnote says why


def test_eval_report_flags_runs_with_different_caps(square_dataset, tmp_path, capsys):
    images, masks = square_dataset
    assert main(eval_args(images, masks, tmp_path / "a", "--oracle", "erode:1")) == 0
    assert main(eval_args(images, masks, tmp_path / "b", "--oracle", "erode:1", "--max-clicks", "5")) == 0
    capsys.readouterr()
    assert main(["eval-report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    err = capsys.readouterr().err
    assert "different click caps (5, 20)" in err and "not comparable" in err
    comparison = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "different click caps (5, 20)" in comparison and "| b | oracle-erode | squares | 2 | 5.00 (≤5) |" in comparison
