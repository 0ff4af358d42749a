"""L-inf white-box attacks in [0, 1] pixel space: FGSM and PGD with a random start.

Written here rather than taken from adversarial-robustness-toolbox: ART wants each model
wrapped as its PyTorchClassifier and numpy arrays in and out, while our models are scored by
several paths (a probe head on frozen features, a spiking net's surrogate gradient) that we
already express as one differentiable function `scores(pixels)`; the two attacks are a dozen
lines each (Goodfellow et al. 2015; Madry et al. 2018) and tests/test_attacks.py checks FGSM
against its closed form on a linear model. The perturbation is applied before the model's own
normalisation and every adversarial image stays in [0, 1].

PGD's figure is a per-image worst case: an image counts as robust only if the FGSM image and
every PGD iterate are classified correctly, so PGD is never reported weaker than FGSM at the
same eps (as an ensemble of attacks, e.g. AutoAttack, is scored).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Scores = Callable[[torch.Tensor], torch.Tensor]  # (B, 1, H, W) pixels in [0, 1] -> (B, C)
EPSILONS = (0.05, 0.1, 0.2, 0.3)  # L-inf radii in [0, 1] pixel units
PGD_STEPS = 20
PGD_STEP_FRACTION = 2.5  # step size = 2.5 * eps / steps (Madry et al.'s ratio)


def input_gradient(scores: Scores, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d(summed cross-entropy)/d(pixels); a model without input gradients gets zeros."""
    x = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = scores(x)
        if out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        loss = F.cross_entropy(out, labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if gradient is None else gradient


def fgsm(scores: Scores, pixels: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps, clipped to [0, 1]."""
    step = eps * input_gradient(scores, pixels, labels).sign()
    return (pixels + step).clamp(0.0, 1.0).detach()


def pgd_iterates(
    scores: Scores,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    *,
    steps: int = PGD_STEPS,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Projected gradient ascent on the cross-entropy from a uniform random start in the eps
    ball: every iterate (start included), each inside the ball and [0, 1]."""
    alpha = PGD_STEP_FRACTION * eps / steps
    noise = torch.rand(pixels.shape, generator=generator, device=pixels.device) * 2 - 1
    x = (pixels + eps * noise.to(pixels.dtype)).clamp(0.0, 1.0)
    iterates = [x]
    for _ in range(steps):
        x = x + alpha * input_gradient(scores, x, labels).sign()
        x = torch.min(torch.max(x, pixels - eps), pixels + eps).clamp(0.0, 1.0).detach()
        iterates.append(x)
    return iterates


@torch.no_grad()
def correct(scores: Scores, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return scores(pixels).argmax(dim=1) == labels


def attack_accuracies(
    scores: Scores,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    epsilons: tuple[float, ...] = EPSILONS,
    *,
    steps: int = PGD_STEPS,
    batch_size: int = 250,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Accuracy under FGSM and PGD at each eps: {"fgsm": {"0.1": acc, ...}, "pgd": {...}}."""
    generator = torch.Generator(device=pixels.device).manual_seed(seed)
    fgsm_right = {eps: 0 for eps in epsilons}
    pgd_right = {eps: 0 for eps in epsilons}
    for start in range(0, len(labels), batch_size):
        x, y = pixels[start : start + batch_size], labels[start : start + batch_size]
        for eps in epsilons:
            survives = correct(scores, fgsm(scores, x, y, eps), y)
            fgsm_right[eps] += int(survives.sum())
            for iterate in pgd_iterates(scores, x, y, eps, steps=steps, generator=generator):
                survives &= correct(scores, iterate, y)
            pgd_right[eps] += int(survives.sum())
    n = len(labels)
    return {
        "fgsm": {str(eps): fgsm_right[eps] / n for eps in epsilons},
        "pgd": {str(eps): pgd_right[eps] / n for eps in epsilons},
    }
