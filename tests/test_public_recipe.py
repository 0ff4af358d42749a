"""benchmarks/public_mnist_fast.py, the public recipe our speedrun is compared with: its
architecture and parameter count against a hand count, its optimiser and schedule as the
notebook sets them, and that it learns (on the synthetic data set). No timing is asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from synthetic import learnable_raw

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def public(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "public_mnist_fast", BENCHMARKS / "public_mnist_fast.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "public_mnist_fast", module)
    spec.loader.exec_module(module)
    return module


def test_architecture_and_parameter_count_match_the_notebook(public) -> None:
    net = public.PublicNet()
    layers = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    shapes = [(n, tuple(m.weight.shape)) for n, m in layers]
    assert shapes == [
        ("conv1", (24, 1, 5, 5)),
        ("conv2", (32, 24, 3, 3)),
        ("fc1", (256, 800)),
        ("fc2", (10, 256)),
    ]
    assert all(m.bias is not None for _, m in layers)
    # By hand: conv1 1*24*5*5 + 24 = 624; conv2 24*32*3*3 + 32 = 6,944;
    # fc1 800*256 + 256 = 205,056; fc2 256*10 + 10 = 2,570; total 215,194.
    assert sum(p.numel() for p in net.parameters()) == 215_194
    # 28 -> conv5x5 24 -> pool 12 -> conv3x3 10 -> pool 5: 32 * 5 * 5 = 800 features
    out = net(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(3))  # log-probabilities


def test_data_is_normalised_once_and_shuffled_with_the_seed(public) -> None:
    raw = learnable_raw(n_train=300, n_test=50)
    data = public.prepare(raw, seed=3)
    pixel = raw.train_images[0, 0, 0].item()  # any pixel: (x/255 - 0.1307) / 0.3081
    first = data.train_images.reshape(300, -1)
    expected = (raw.train_images.reshape(300, -1).float() / 255 - 0.1307) / 0.3081
    # the same rows, in another order, fixed by the seed
    assert torch.allclose(first.sum(0), expected.sum(0), atol=1e-3)
    assert not torch.equal(first, expected)
    assert torch.equal(public.prepare(raw, seed=3).train_labels, data.train_labels)
    assert pixel >= 0 and data.train_images.shape == (300, 1, 28, 28)
    assert data.eval_split == "test" and len(data.eval_labels) == 50
    held = public.prepare(raw, seed=3, val_size=60)
    assert held.eval_split == "validation" and len(held.train_labels) == 240


def test_optimiser_and_schedule_are_the_notebooks(public, monkeypatch) -> None:
    seen = {}
    real_adam, real_onecycle = torch.optim.Adam, torch.optim.lr_scheduler.OneCycleLR

    def adam(params, **kwargs):
        seen["adam"] = kwargs
        return real_adam(params, **kwargs)

    def onecycle(optimizer, **kwargs):
        seen["onecycle"] = kwargs
        return real_onecycle(optimizer, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    monkeypatch.setattr(torch.optim.lr_scheduler, "OneCycleLR", onecycle)
    data = public.prepare(learnable_raw(n_train=600, n_test=50), seed=0)
    _, steps = public.train(public.PublicNet(), data)
    assert seen["adam"] == {"lr": 1e-2, "betas": (0.7, 0.9)}
    # ceil(600 / 256) = 3 steps for the one epoch; no momentum cycling
    assert steps == 3
    assert seen["onecycle"] == {"max_lr": 1e-2, "total_steps": 3, "cycle_momentum": False}


def test_one_epoch_learns_the_synthetic_set(public) -> None:
    raw = learnable_raw(n_train=2560, n_test=300)
    run = public.run_seed(raw, seed=0)
    assert run.train_steps == 10 and run.train_images == 2560
    assert run.accuracy >= 0.9  # 10% is chance; the patches are easy to learn in 10 steps
