"""DBN: the RBM maths, the CD-k update rule by hand, CD-1 learning a toy distribution, and the
DBN's recipe (a CD stage per RBM, probe, fine-tune) end to end on a tiny data set."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import get_model_info, registry
from mnistbench.models.dbn import DBN, RBM
from mnistbench.objectives.contrastive_divergence import ContrastiveDivergenceObjective
from mnistbench.store import Store


def _toy_patterns(n: int = 256, seed: int = 0) -> torch.Tensor:
    """(n, 1, 4, 4) images: one of four bar patterns, each pixel flipped with probability 0.05."""
    g = torch.Generator().manual_seed(seed)
    bars = torch.zeros(4, 4, 4)
    for k in range(4):
        bars[k, k, :] = 1  # horizontal bar in row k
    images = bars[torch.randint(0, 4, (n,), generator=g)]
    flips = torch.rand(images.shape, generator=g) < 0.05
    return torch.where(flips, 1 - images, images).unsqueeze(1)


def test_rbm_initialisation_and_conditionals() -> None:
    torch.manual_seed(0)
    rbm = RBM(784, 512)
    assert rbm.weight.shape == (512, 784)
    assert abs(rbm.weight.std().item() - 0.01) < 0.001
    assert not rbm.visible_bias.any() and not rbm.hidden_bias.any()
    v = torch.rand(3, 784)
    torch.testing.assert_close(rbm.hidden_probabilities(v), torch.sigmoid(v @ rbm.weight.t()))
    h = torch.rand(3, 512)
    torch.testing.assert_close(rbm.visible_probabilities(h), torch.sigmoid(h @ rbm.weight))


def test_free_energy_matches_the_sum_over_hidden_states() -> None:
    torch.manual_seed(0)
    rbm = RBM(3, 2, init_std=1.0)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        rbm.hidden_bias.copy_(torch.tensor([0.5, -0.5]))
    v = torch.tensor([[1.0, 0.0, 1.0]])
    states = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    energies = -(v @ rbm.visible_bias) - states @ rbm.hidden_bias - states @ rbm.weight @ v[0]
    torch.testing.assert_close(rbm.free_energy(v), -torch.logsumexp(-energies, dim=0).reshape(1))


def test_cd1_step_is_the_hand_computed_update() -> None:
    torch.manual_seed(0)
    model = DBN(sizes=(16, 8), num_classes=4)
    rbm = model.rbms[0]
    before = [p.detach().clone() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]
    images = _toy_patterns(32)
    objective = ContrastiveDivergenceObjective(model, 0, k=1, lr=0.05, seed=7)
    objective.configure_optimizers(lambda params: None)
    out = objective.step((images, torch.zeros(32, dtype=torch.long)))

    # the same chain by hand, with the same seeded draws
    w, b_v, b_h = before
    g = torch.Generator().manual_seed(7)
    v0 = images.flatten(1)
    h0 = torch.sigmoid(v0 @ w.t() + b_h)
    h = torch.bernoulli(h0, generator=g)
    v1 = torch.sigmoid(h @ w + b_v)
    h1 = torch.sigmoid(v1 @ w.t() + b_h)
    torch.testing.assert_close(rbm.weight, w + 0.05 * (h0.t() @ v0 - h1.t() @ v1) / 32)
    torch.testing.assert_close(rbm.visible_bias, b_v + 0.05 * (v0 - v1).mean(0))
    torch.testing.assert_close(rbm.hidden_bias, b_h + 0.05 * (h0 - h1).mean(0))
    torch.testing.assert_close(out["loss"], (v0 - v1).pow(2).mean())
    assert rbm.weight.grad is None  # nothing left behind; no autograd graph was built
    assert not out["loss"].requires_grad


def test_cd1_lowers_reconstruction_error_on_a_toy_rbm() -> None:
    torch.manual_seed(0)
    model = DBN(sizes=(16, 8), num_classes=4)
    images = _toy_patterns(256)
    labels = torch.zeros(256, dtype=torch.long)
    objective = ContrastiveDivergenceObjective(model, 0, k=1, lr=0.5, seed=0)
    objective.configure_optimizers(lambda params: None)
    visible = images.flatten(1)
    start = objective.reconstruction_error(visible)
    for _ in range(20):  # 20 epochs of 8 batches
        for batch in range(0, 256, 32):
            objective.step((images[batch : batch + 32], labels[batch : batch + 32]))
    end = objective.reconstruction_error(visible)
    assert start > 0.2  # an untrained RBM reconstructs about half-grey images
    assert end < start / 3


def test_second_rbm_sees_the_first_ones_hidden_probabilities() -> None:
    torch.manual_seed(0)
    model = DBN(sizes=(16, 8, 6), num_classes=4)
    images = _toy_patterns(8)
    expected = model.rbms[0].hidden_probabilities(images.flatten(1))
    torch.testing.assert_close(model.visible_input(images, 1), expected)
    objective = ContrastiveDivergenceObjective(model, 1, seed=0)
    objective.configure_optimizers(lambda params: None)
    first = model.rbms[0].weight.detach().clone()
    objective.step((images, torch.zeros(8, dtype=torch.long)))
    torch.testing.assert_close(model.rbms[0].weight, first)  # the layer below stays fixed


def test_dbn_stages_are_the_published_protocol() -> None:
    stages = get_model_info("dbn").recipe.stages
    cd = [s for s in stages if s.kind == "contrastive_divergence"]
    assert [(s.params["layer"], s.epochs) for s in cd] == [(0, 5), (1, 5)]
    assert stages[-1].kind == "cross_entropy" and stages[-1].epochs is None  # fine-tune all
    assert {(s.params["lr"], s.params["k"]) for s in cd} == {(0.05, 1)}  # CD-1 at lr 0.05
    assert get_model_info("dbn").recipe.headline_of(stages) == "finetune"


def test_greedy_probe_lands_every_stage_in_the_store(
    tmp_path: Path, learnable_data_dir, monkeypatch
) -> None:
    info = get_model_info("dbn")
    short = tuple(
        replace(s, epochs=2 if s.params.get("layer") == 0 else 1) for s in info.recipe.stages
    )
    monkeypatch.setitem(
        registry._REGISTRY, "dbn", replace(info, recipe=replace(info.recipe, stages=short))
    )
    config = make_config("dbn", epochs=2, val_size=100, subset=400)
    with Store(tmp_path / "results.sqlite") as store:
        record = run_config(config, store, data_dir=learnable_data_dir, progress=False).record
        assert record.status == "finished"
        epochs = store.epochs(record.run_id)
        stages = [e["stage"] for e in epochs]
        assert stages == ["pretrain_rbm1"] * 2 + ["pretrain_rbm2", "probe", "finetune"]
        assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5]
        rbm1 = [e["train_loss"] for e in epochs if e["stage"] == "pretrain_rbm1"]
        assert rbm1[-1] < rbm1[0]  # reconstruction error falls during pretraining
        assert all(e["test_accuracy"] is None for e in epochs[:3])  # CD has no accuracy
        assert all(e["val_loss"] > 0 for e in epochs[:3])  # val reconstruction error
        m = record.metrics
        assert m["pretrain_rbm1_epochs"] == 2 and m["finetune_epochs"] == 1
        assert m["pretrain_total_s"] > 0 and m["finetune_total_s"] > 0
        assert 0 <= m["probe_test_accuracy"] <= 1
        assert m["test_accuracy"] == epochs[-1]["test_accuracy"]  # the fine-tuned model's
        assert m["time_per_epoch_s"] == m["finetune_time_per_epoch_s"]
        (filters,) = [a for a in store.artefacts(record.run_id) if a.name == "rbm1_filters"]
        assert filters.kind == "png" and filters.content.startswith(b"\x89PNG")
        (filters,) = [a for a in store.artefacts(record.run_id) if a.name == "rbm1_filters"]
        assert filters.kind == "png" and filters.content.startswith(b"\x89PNG")
