"""Calibration of predicted class probabilities: ECE, negative log-likelihood, Brier score.

ECE is torchmetrics' `multiclass_calibration_error` (top-label, 15 equal-width confidence bins,
L1: the sum over bins of |accuracy - mean confidence| weighted by the bin's share of images;
Guo et al. 2017). torchmetrics has no multiclass Brier score, and NLL is one line, so those two
are written here: NLL = mean over images of -log p(true class) (natural log, nats; a
probability of 0 is clamped to 1e-12 so one hopeless image gives 27.6 nats, not infinity);
Brier = mean over images of sum over classes of (p_k - [k = true])^2 (Brier 1950's multiclass
form, between 0 and 2). tests/test_calibration.py checks all three against hand computations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

ECE_BINS = 15  # equal-width confidence bins, as Guo et al. 2017 and most later work
NLL_FLOOR = 1e-12  # smallest probability the NLL takes a log of


@dataclass(frozen=True)
class Calibration:
    ece: float  # expected calibration error, fraction (0 = perfectly calibrated)
    nll: float  # nats per image
    brier: float  # in [0, 2]
    images: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def calibration(probabilities: torch.Tensor, labels: torch.Tensor) -> Calibration:
    """ECE, NLL and Brier of (N, C) class probabilities (rows sum to 1) against (N,) labels."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    probabilities = probabilities.detach().to(torch.float64).cpu()
    labels = labels.detach().to(torch.long).cpu()
    n, classes = probabilities.shape
    ece = multiclass_calibration_error(
        probabilities.float(), labels, num_classes=classes, n_bins=ECE_BINS, norm="l1"
    )
    true_p = probabilities[torch.arange(n), labels]
    nll = -true_p.clamp_min(NLL_FLOOR).log().mean()
    onehot = torch.nn.functional.one_hot(labels, classes).to(torch.float64)
    brier = (probabilities - onehot).square().sum(dim=1).mean()
    return Calibration(ece=float(ece), nll=float(nll), brier=float(brier), images=n)
