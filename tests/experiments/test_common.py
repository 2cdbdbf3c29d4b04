"""The statistics of the small-scale experiments (``experiments/common.py``): exact values on
small hand-computed inputs and the edge cases."""
from __future__ import annotations

import math

import pytest

from experiments.common import describe_difference, paired_difference


def test_paired_difference_hand_computed():
    # differences 0.25, 0, 0.5: mean 0.25, sample sd √((0² + 0.25² + 0.25²) / 2) = 0.25, SE 0.25 / √3
    stats = paired_difference([0.25, 0.5, 0.75], [0.5, 0.5, 1.25])
    assert stats == {"mean": 0.25, "se": pytest.approx(0.25 / math.sqrt(3), rel=1e-15), "better": 2, "worse": 0,
                     "n": 3}
    assert describe_difference(stats) == "+0.2500 ± 0.1443 (+1.7 SE; 2 better, 0 worse of 3 scenes)"


def test_paired_difference_negative_and_the_better_worse_threshold():
    # differences -0.5, 0: mean -0.25, sd √(2 · 0.25²) = 0.3536, SE 0.25
    stats = paired_difference([1.0, 0.5], [0.5, 0.5])
    assert stats == {"mean": -0.25, "se": pytest.approx(0.25, rel=1e-15), "better": 0, "worse": 1, "n": 2}
    assert describe_difference(stats) == "-0.2500 ± 0.2500 (-1.0 SE; 0 better, 1 worse of 2 scenes)"
    tiny = paired_difference([0.5, 0.5, 0.5], [0.5 + 1e-10, 0.5 - 1e-10, 0.5 + 1e-6])  # |d| ≤ 1e-9 is a draw
    assert (tiny["better"], tiny["worse"]) == (1, 0)


def test_zero_variance():
    same = paired_difference([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert same == {"mean": 0.0, "se": 0.0, "better": 0, "worse": 0, "n": 3}
    assert describe_difference(same) == "+0.0000 ± 0.0000 (+0.0 SE; 0 better, 0 worse of 3 scenes)"
    shifted = paired_difference([0.25, 0.5], [0.5, 0.75])  # every scene +0.25: no spread at all
    assert (shifted["mean"], shifted["se"]) == (0.25, 0.0)
    assert describe_difference(shifted) == "+0.2500 ± 0.0000 (+inf SE; 2 better, 0 worse of 2 scenes)"
    down = paired_difference([0.5, 0.75], [0.25, 0.5])
    assert describe_difference(down) == "-0.2500 ± 0.0000 (-inf SE; 0 better, 2 worse of 2 scenes)"


@pytest.mark.parametrize("base, method, message", [
    ([0.5], [0.6], "at least 2 values"),  # n = 1: no standard error
    ([], [], "at least 2 values"),
    ([0.1, 0.2, 0.3], [0.1, 0.2], "equal-length"),
    ([[0.1, 0.2], [0.3, 0.4]], [[0.1, 0.2], [0.3, 0.4]], "per-scene lists"),
    ([0.1, float("nan")], [0.1, 0.2], "finite"),
])
def test_bad_inputs_are_refused_with_a_clear_message(base, method, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(base, method)
