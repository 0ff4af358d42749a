"""L-inf attacks (engine/attacks.py): FGSM against its closed form on a linear model, PGD's
iterates inside the ball, and PGD never weaker than FGSM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mnistbench.engine.attacks import attack_accuracies, fgsm, pgd_iterates

MEAN, STD = 0.1307, 0.3081  # the model normalises inside, as ours do


def linear_model(seed: int = 0, classes: int = 10):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(classes, 28 * 28, generator=generator, dtype=torch.float64) * 0.1
    bias = torch.randn(classes, generator=generator, dtype=torch.float64)

    def scores(pixels: torch.Tensor) -> torch.Tensor:
        return ((pixels - MEAN) / STD).flatten(1) @ weight.T + bias

    return scores, weight, bias


def images(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n, 1, 28, 28, generator=generator, dtype=torch.float64)
    return pixels, torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_fgsm_on_a_linear_model_is_the_closed_form(eps: float) -> None:
    scores, weight, _ = linear_model()
    x, y = images()
    # d CE / d x = ((softmax(z) - onehot(y)) @ W) / std, per image; FGSM steps eps along its sign
    p = F.softmax(scores(x), dim=1)
    gradient = ((p - F.one_hot(y, 10).double()) @ weight / STD).view_as(x)
    expected = (x + eps * gradient.sign()).clamp(0, 1)
    assert torch.equal(fgsm(scores, x, y, eps), expected)


def test_pgd_iterates_stay_in_the_ball_and_in_pixel_range() -> None:
    scores, _, _ = linear_model()
    x, y = images()
    iterates = pgd_iterates(scores, x, y, 0.1, steps=5, generator=torch.Generator().manual_seed(0))
    assert len(iterates) == 6  # the random start, then 5 steps
    for iterate in iterates:
        assert (iterate - x).abs().max() <= 0.1 + 1e-12
        assert iterate.min() >= 0 and iterate.max() <= 1
    loss = [F.cross_entropy(scores(i), y).item() for i in iterates]
    assert loss[-1] > loss[0]  # ascent: the last iterate is worse for the model than the start


def test_pgd_is_never_weaker_than_fgsm() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    x, y = images(64)
    x = x.float()
    y = net(x).argmax(1)  # labels it gets right, so the attacks have something to take
    results = attack_accuracies(net, x, y, (0.01, 0.03, 0.1), steps=5, batch_size=32)
    for eps in ("0.01", "0.03", "0.1"):
        assert results["pgd"][eps] <= results["fgsm"][eps]
    assert results["fgsm"]["0.01"] > results["pgd"]["0.1"]  # a larger ball takes more


def test_a_model_without_input_gradient_is_left_unchanged_by_fgsm() -> None:
    x, y = images(4)

    def constant(pixels: torch.Tensor) -> torch.Tensor:  # ignores its input
        return torch.zeros(len(pixels), 10, dtype=pixels.dtype, requires_grad=True)

    assert torch.equal(fgsm(constant, x, y, 0.3), x)
