"""Calibration figures (engine/calibration.py) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from mnistbench.engine.calibration import calibration

# Four images, three classes. Top-label confidences 0.65 (right), 0.63 (wrong: label 1),
# 0.72 (right), 0.90 (right) fall in the 15 equal-width bins 9, 9, 10 and 13.
PROBABILITIES = torch.tensor(
    [
        [0.65, 0.25, 0.10],
        [0.63, 0.30, 0.07],
        [0.18, 0.72, 0.10],
        [0.05, 0.05, 0.90],
    ]
)
LABELS = torch.tensor([0, 1, 1, 2])


def test_ece_by_hand() -> None:
    # bin 9: accuracy 1/2, mean confidence 0.64 -> |0.5 - 0.64| x 2/4 = 0.07
    # bin 10: 1 vs 0.72 -> 0.28 x 1/4 = 0.07; bin 13: 1 vs 0.90 -> 0.10 x 1/4 = 0.025
    assert calibration(PROBABILITIES, LABELS).ece == pytest.approx(0.165, abs=1e-6)


def test_nll_by_hand() -> None:
    expected = -(math.log(0.65) + math.log(0.30) + math.log(0.72) + math.log(0.90)) / 4
    assert calibration(PROBABILITIES, LABELS).nll == pytest.approx(expected, rel=1e-6)


def test_brier_by_hand() -> None:
    # per image, sum over classes of (p - onehot)^2:
    # 0.35² + 0.25² + 0.10² = 0.1950;  0.63² + 0.70² + 0.07² = 0.8918
    # 0.18² + 0.28² + 0.10² = 0.1208;  0.05² + 0.05² + 0.10² = 0.0150
    expected = (0.1950 + 0.8918 + 0.1208 + 0.0150) / 4
    assert calibration(PROBABILITIES, LABELS).brier == pytest.approx(expected, rel=1e-6)


def test_perfect_confident_predictions_are_calibrated() -> None:
    onehot = torch.eye(3)[LABELS]
    result = calibration(onehot, LABELS)
    assert (result.ece, result.brier, result.images) == (0.0, 0.0, 4)
    assert result.nll == pytest.approx(0.0, abs=1e-12)


def test_a_zero_probability_for_the_label_is_finite() -> None:
    probabilities = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    result = calibration(probabilities, torch.tensor([1, 1]))
    assert result.nll == pytest.approx(-math.log(1e-12) / 2)  # clamped, not infinite
