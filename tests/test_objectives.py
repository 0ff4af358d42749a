"""Pretext objectives and the probe on hand-computable inputs and tiny models (seconds each)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.data import DeviceData, Split
from mnistbench.data.augment import simsiam_view
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model, get_model_info
from mnistbench.models.unet import UNet
from mnistbench.objectives.adversarial import GAN_BETAS, AdversarialObjective
from mnistbench.objectives.denoising import DenoisingObjective
from mnistbench.objectives.simsiam import simsiam_loss
from mnistbench.objectives.vae import VAEObjective, elbo_terms, gaussian_kl
from mnistbench.recipes.features import extract_features, fit_lightgbm_probe
from mnistbench.recipes.train_stages import pretext_objective


def _pretext_objective(model_name: str, model: nn.Module, data: DeviceData, config):
    """The objective the model's recipe pretrains with (its first stage), as the runner builds
    it: the run's settings and the stage options of `config`."""
    return pretext_objective(get_model_info(model_name).recipe.stages[0], model, data, config)


def _adam(params: list[nn.Parameter], lr: float = 1e-3) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(module.state_dict())


def _changed(module: nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in module.state_dict().items() if not torch.equal(v, before[k])]


# --- VAE ----------------------------------------------------------------------------------------


def test_gaussian_kl_closed_form_by_hand() -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    # row 0: the prior itself -> 0; row 1: -1/2[(1 + 0 - 1 - 1) + (1 + ln 2 - 4 - 2)] = 3 - ln2/2
    expected = torch.tensor([0.0, 3.0 - math.log(2.0) / 2])
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_gaussian_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    reference = torch.distributions.kl_divergence(q, p).sum(dim=1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), reference)


def test_vae_beta_weights_the_kl_term() -> None:
    torch.manual_seed(0)
    model = create_model("beta_vae")
    assert not hasattr(model, "beta")  # the KL weight is the objective's, not the model's
    images = torch.rand(8, 1, 28, 28)
    losses = {}
    for beta in (0.0, 4.0):
        objective = VAEObjective(model, beta=beta)
        torch.manual_seed(1)  # the same reparameterisation noise for both
        losses[beta] = objective.eval_step((images, torch.zeros(8)))["loss_sum"]
    torch.manual_seed(1)
    mu, logvar = model.encode(images)
    kl = gaussian_kl(mu, logvar).sum()
    torch.testing.assert_close(losses[4.0] - losses[0.0], 4.0 * kl, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_beta_option_reaches_the_elbo_through_the_recipe(beta: float) -> None:
    """The runner's path: make_config(model_options) -> the recipe's pretext stage -> its
    objective, given the stage option beta. The loss on the same batch and noise is
    BCE + beta * KL for the configured beta (an ignored option would weigh the KL by 1.0)."""
    config = make_config("beta_vae", model_options={"beta": beta})
    torch.manual_seed(0)
    model = create_model(config.model, **config.options())
    images = (torch.rand(8, 1, 28, 28) > 0.7).float()
    split = Split(images, torch.zeros(8, dtype=torch.long))
    data = DeviceData("mnist", split, None, split, 0.0, 1.0, 10, tuple("0123456789"))
    objective = _pretext_objective("beta_vae", model, data, config)
    torch.manual_seed(1)  # the same reparameterisation noise for the loss and the terms
    loss_sum = objective.eval_step((images, split.labels))["loss_sum"]
    torch.manual_seed(1)
    with torch.no_grad():
        bce, kl, _ = elbo_terms(model, images)
    assert kl.sum() > 1.0  # a KL term that matters, so beta 1 and 4 cannot look alike
    torch.testing.assert_close(loss_sum, (bce + beta * kl).sum(), rtol=1e-5, atol=1e-3)


# --- SimSiam -----------------------------------------------------------------------------------


def test_simsiam_loss_is_minus_one_for_identical_directions() -> None:
    v = torch.tensor([[1.0, 2.0, -3.0], [0.5, 0.0, 4.0]])
    loss = simsiam_loss(v, 3.0 * v, 2.0 * v, v)  # cosine ignores length
    torch.testing.assert_close(loss, torch.tensor([-1.0, -1.0]))
    opposite = simsiam_loss(v, v, -v, -v)
    torch.testing.assert_close(opposite, torch.tensor([1.0, 1.0]))


def test_simsiam_stop_gradient_blocks_the_target_branch() -> None:
    torch.manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(4, 8, requires_grad=True) for _ in range(4))
    simsiam_loss(p1, p2, z1, z2).mean().backward()
    assert z1.grad is None and z2.grad is None  # targets are detached
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_simsiam_stop_gradient_in_the_model() -> None:
    """z reaches the loss both through the predictor and as a target: only the first path
    carries gradient, so the projector's gradient equals the one through p alone."""
    torch.manual_seed(0)
    model = create_model("simsiam_lgbm").train()
    h = torch.randn(6, 1152)
    z = model.projector(h)
    z.retain_grad()
    p = model.predictor(z)
    simsiam_loss(p, p, z, z).mean().backward()
    with_stop = z.grad.clone()
    z2 = z.detach().requires_grad_()
    (-F.cosine_similarity(model.predictor(z2), z.detach(), dim=-1)).mean().backward()
    torch.testing.assert_close(with_stop, z2.grad, rtol=1e-4, atol=1e-6)


def test_simsiam_view_identity_and_flip() -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 1, 28, 28)
    generator = torch.Generator().manual_seed(0)
    still = {
        "crop_scale": (1.0, 1.0),
        "crop_ratio": (1.0, 1.0),
        "degrees": 0.0,
        "translate": 0.0,
        "scale": (1.0, 1.0),
    }
    same = simsiam_view(images, generator, flip_p=0.0, **still)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    flipped = simsiam_view(images, generator, flip_p=1.0, **still)
    torch.testing.assert_close(flipped, images.flip(-1), atol=1e-5, rtol=0)


def test_simsiam_views_are_seeded_random_and_filled_with_black() -> None:
    images = torch.full((4, 1, 28, 28), 2.0)
    a = simsiam_view(images, torch.Generator().manual_seed(3), fill=-0.5)
    b = simsiam_view(images, torch.Generator().manual_seed(3), fill=-0.5)
    c = simsiam_view(images, torch.Generator().manual_seed(4), fill=-0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == images.shape
    assert a.min() >= -0.5 - 1e-5 and a.max() <= 2.0 + 1e-5  # only fill and image values mix


def test_simsiam_drops_a_short_last_batch() -> None:
    """As published (drop_last): the recipe's objective skips a batch smaller than the run's
    batch size, without an update, and reports the previous batch's loss for it."""
    torch.manual_seed(0)
    model = create_model("simsiam_lgbm")
    images = torch.randn(6, 1, 28, 28)
    split = Split(images, torch.zeros(6, dtype=torch.long))
    data = DeviceData("mnist", split, None, split, 0.1307, 0.3081, 10, tuple("0123456789"))
    config = make_config("simsiam_lgbm", batch_size=4)
    objective = _pretext_objective("simsiam_lgbm", model, data, config)
    objective.configure_optimizers(_adam)
    full = objective.step((images[:4], split.labels[:4]))
    before = _snapshot(model)
    short = objective.step((images[4:], split.labels[4:]))
    assert _changed(model, before) == []
    assert short["count"].item() == 0 and torch.equal(short["loss"], full["loss"])


# --- adversarial -------------------------------------------------------------------------------


def _gan_objective() -> tuple[nn.Module, AdversarialObjective]:
    torch.manual_seed(0)
    model = create_model("gan")
    objective = AdversarialObjective(model)
    objective.configure_optimizers(lambda params: _adam(params, 2e-4))
    return model, objective


def test_adversarial_step_updates_only_its_own_side() -> None:
    model, objective = _gan_objective()
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    g_before, d_before = _snapshot(model.generator), _snapshot(model.discriminator)
    objective.discriminator_step(real)
    assert _changed(model.generator, g_before) == []
    assert sorted(_changed(model.discriminator, d_before)) == sorted(d_before)  # all of D
    g_before, d_before = _snapshot(model.generator), _snapshot(model.discriminator)
    objective.generator_step(8, real.device)
    assert _changed(model.discriminator, d_before) == []
    assert sorted(_changed(model.generator, g_before)) == sorted(g_before)  # all of G
    assert all(p.requires_grad for p in model.discriminator.parameters())  # switched back
    assert [g["betas"] for o in objective.optimizers for g in o.param_groups] == [GAN_BETAS] * 2


def test_adversarial_full_step_reports_both_losses() -> None:
    _, objective = _gan_objective()
    out = objective.step((torch.rand(8, 1, 28, 28) * 2 - 1, torch.zeros(8, dtype=torch.long)))
    assert torch.isfinite(out["loss"])
    extra = objective.extra.pop()
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= extra.keys()
    assert out["loss"].item() == pytest.approx(extra["d_loss"] + extra["g_loss"], rel=1e-5)


# --- denoising ---------------------------------------------------------------------------------


def test_denoising_loss_falls_and_compares_in_pixel_space() -> None:
    torch.manual_seed(0)
    model = UNet(width=4)
    mean, std = 0.1307, 0.3081
    pixels = (torch.rand(8, 1, 12, 12) > 0.8).float()  # sparse bright strokes, like digits
    images = (pixels - mean) / std
    objective = DenoisingObjective(model, mean=mean, std=std, seed=0)
    torch.testing.assert_close(objective.to_pixels(images), pixels)
    objective.configure_optimizers(lambda params: _adam(params, 1e-2))
    first = objective.step((images, torch.zeros(8)))["loss"].item()
    for _ in range(25):
        last = objective.step((images, torch.zeros(8)))["loss"].item()
    assert 0 <= last < 0.5 * first  # MSE of a sigmoid output against [0, 1] targets


# --- every pretext parameter learns ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["beta_vae", "gan", "unet", "simsiam_lgbm"])
def test_pretext_objective_trains_every_parameter_but_the_head(name: str) -> None:
    torch.manual_seed(0)
    info = get_model_info(name)
    model = create_model(name)
    scaling = {"unit": (0.0, 1.0), "symmetric": (0.5, 0.5), "standard": (0.1307, 0.3081)}
    mean, std = scaling[info.input_scaling]
    images = ((torch.rand(4, 1, 28, 28) > 0.7).float() - mean) / std
    split = Split(images, torch.zeros(4, dtype=torch.long))
    data = DeviceData("mnist", split, None, split, mean, std, 10, tuple("0123456789"))
    objective = _pretext_objective(name, model, data, make_config(name))
    assert objective.name == {"vae": "vae", "gan": "adversarial", "unet": "denoising"}.get(
        info.family, info.family
    )
    objective.configure_optimizers(_adam)
    before = _snapshot(model)
    objective.step((images, split.labels))
    changed = set(_changed(model, before))
    trained = {k for k in before if not k.startswith("head.") and "running" not in k}
    trained -= {k for k in before if k.endswith("num_batches_tracked")}
    assert trained <= changed, f"not trained: {sorted(trained - changed)}"
    assert not any(k.startswith("head.") for k in changed)


# --- probe -------------------------------------------------------------------------------------


def test_extract_features_is_forward_features_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = create_model("simsiam_lgbm").train()
    split = Split(torch.randn(10, 1, 28, 28), torch.arange(10))
    features = extract_features(model, split, batch_size=4)
    assert model.training  # mode restored
    assert features.images.shape == (10, 1152) and not features.images.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(features.images, model.eval().forward_features(split.images))
    assert torch.equal(features.labels, split.labels)


def test_lightgbm_probe_separates_separable_features() -> None:
    torch.manual_seed(0)
    labels = torch.arange(300) % 3
    features = torch.randn(300, 5) * 0.1
    features[:, 0] += labels.float()  # class is readable from feature 0
    split = Split(features, labels)
    data = DeviceData("toy", split, split, split, 0.0, 1.0, 3, ("a", "b", "c"))
    probe = fit_lightgbm_probe(data.train, data.val, n_estimators=10, threads=1)
    test = probe.score(data.test)
    assert test.accuracy > 0.95 and probe.val is not None
    assert test.predictions.shape == (300,)


def test_lightgbm_probe_scores_labels_its_training_set_never_saw() -> None:
    """A small training subset may lack a class: its test images are scored as misses, with
    predictions that are labels (not column indices of the classes seen)."""
    labels = torch.tensor([0, 2, 3] * 20)
    features = torch.randn(60, 4) * 0.1
    features[:, 0] += labels.float()
    probe = fit_lightgbm_probe(Split(features, labels), n_estimators=10, threads=1)
    test_labels = torch.tensor([0, 2, 3, 1])  # 1 never seen
    test_features = torch.randn(4, 4) * 0.1
    test_features[:, 0] += torch.tensor([0.0, 2.0, 3.0, 1.0])
    scored = probe.score(Split(test_features, test_labels))
    assert scored.predictions[:3].tolist() == [0, 2, 3] and scored.accuracy == 0.75
    assert scored.loss > -math.log(1e-15) / 4 - 1e-6  # the unseen label's 0 probability


def test_the_lightgbm_probe_keeps_to_its_share_of_the_cores(monkeypatch) -> None:
    """Half the cores at most, and never more than the process's torch threads (a pool
    worker's share): 16 cores and 2 torch threads give 2 threads, not 8."""
    import os

    import torch

    from mnistbench.recipes.features import probe_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "cpu_count", lambda: 16)
        torch.set_num_threads(2)
        assert probe_threads() == 2
        torch.set_num_threads(12)
        assert probe_threads() == 8
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        assert probe_threads() == 1
    finally:
        torch.set_num_threads(before)
