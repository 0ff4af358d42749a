"""What the registry-parametrized model tests cannot see in studies B, D and E: layouts
(rows as time steps, dropout placement, the 7x7-conv head as a Linear) and the recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model
from mnistbench.store import Store


def test_row_rnn_reads_rows_top_to_bottom() -> None:
    """forward_features == a hand-unrolled tanh RNN cell over the image rows, top row first."""
    torch.manual_seed(0)
    model = create_model("rnn_rows").eval()
    rnn = model.rnn
    x = torch.randn(3, 1, 28, 28)
    h = torch.zeros(3, 128)
    for t in range(28):
        row = x[:, 0, t, :]  # (B, 28): row t is time step t
        h = torch.tanh(
            row @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
        )
    torch.testing.assert_close(model.forward_features(x), h)


def test_lstm_and_gru_use_their_cells() -> None:
    assert isinstance(create_model("lstm_rows").rnn, nn.LSTM)
    assert isinstance(create_model("gru_rows").rnn, nn.GRU)


def test_small_cnn_dropout_and_batch_norm_placement() -> None:
    def count(name: str, kind: type[nn.Module]) -> int:
        return sum(isinstance(m, kind) for m in create_model(name).modules())

    assert (count("small_cnn_v1", nn.Dropout2d), count("small_cnn_v2", nn.Dropout2d)) == (4, 2)
    assert count("small_cnn_bn", nn.Dropout2d) == 2
    assert count("small_cnn_bn", nn.BatchNorm2d) == count("small_cnn_bn", nn.Conv2d) == 11
    assert count("small_cnn_v2", nn.BatchNorm2d) == 0


def test_small_cnn_feature_map_before_pooling_is_3x3() -> None:
    model = create_model("small_cnn_bn").eval()
    assert model.blocks(torch.randn(2, 1, 28, 28)).shape == (2, 32, 3, 3)


def test_diet_head_is_the_7x7_conv() -> None:
    """The Linear head computes exactly what the study's bias-free 7x7 conv on a 7x7 map does."""
    torch.manual_seed(0)
    model = create_model("diet_2").eval()
    x = torch.randn(4, 1, 28, 28)
    feature_map = model.features(x)  # (B, 10, 7, 7)
    assert feature_map.shape == (4, 10, 7, 7)
    weight = model.head.weight.view(10, 10, 7, 7)  # (out, in*7*7) -> (out, in, 7, 7)
    as_conv = F.conv2d(feature_map, weight).flatten(1)  # (B, 10, 1, 1) -> (B, 10)
    torch.testing.assert_close(model(x), as_conv)


def test_diet_convs_are_bias_free() -> None:
    for name in ("diet_1", "diet_2", "diet_3", "diet_4"):
        convs = [m for m in create_model(name).modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(c.bias is None and c.padding == (0, 0) for c in convs), name


def test_study_recipes() -> None:
    d = make_config("small_cnn_bn")
    assert (d.batch_size, d.optimizer, d.lr, d.epochs) == (32, "adam", 1e-3, 20)
    # the study's notebook augments with torchvision's semantics (issue 25)
    assert (d.scheduler, d.step_size, d.gamma, d.augment) == (
        "step",
        7,
        0.1,
        "study_d_torchvision",
    )
    assert (d.early_stopping_patience, d.target_accuracy) == (10, 0.99)
    e = make_config("diet_2")
    assert (e.optimizer, e.momentum, e.lr, e.batch_size, e.epochs) == ("sgd", 0.9, 0.01, 64, 15)
    assert (e.augment, e.scheduler) == ("none", "none")
    assert make_config("diet_4").augment == "rotate7"
    b = make_config("rnn_rows")
    assert (b.optimizer, b.lr, b.batch_size, b.epochs, b.grad_clip) == ("adam", 1e-3, 64, 5, None)


def test_study_d_run_records_first_epoch_at_target(
    tmp_path: Path, learnable_data_dir: Path
) -> None:
    """The study D recipe (augmentation, StepLR) runs end to end, and the study's figure, the
    first epoch whose test accuracy reaches the target, lands in the run's metrics."""
    config = make_config(
        "small_cnn_bn", epochs=2, subset=300, val_size=100, lr=1e-2, step_size=1, gamma=0.5,
        target_accuracy=0.4,
    )  # fmt: skip
    with Store(tmp_path / "runs.sqlite") as store:
        outcome = run_config(
            config, store, data_dir=learnable_data_dir, progress=False, measure_energy=False
        )
        record = outcome.record
        epochs = store.epochs(record.run_id)
    assert record.status == "finished" and len(epochs) == 2
    assert [e["lr"] for e in epochs] == pytest.approx([5e-3, 2.5e-3])
    reached = [e["epoch"] for e in epochs if e["test_accuracy"] >= 0.4]
    assert reached, "the tiny learnable set should reach 40% within 2 epochs"
    assert record.metrics["epochs_to_target_test"] == reached[0]
    best = max(epochs, key=lambda e: e["test_accuracy"])
    assert record.metrics["best_test_epoch"] == best["epoch"]
    assert record.metrics["params"] == 18_278
