"""What the registry-parametrized model tests cannot see in studies B, D and E: layouts
(rows as time steps, dropout placement, the 7x7-conv head as a Linear) and the recipes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.config import make_config
from mnistbench.experiments import run_config
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
    assert (d.scheduler, d.step_size, d.gamma, d.augment) == ("step", 7, 0.1, "study_d")
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


def _load_benchmark(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/<name>.py as a module, importable by its siblings as when run as a script."""
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))  # zoo_speed imports from zoo_small
    spec = importlib.util.spec_from_file_location(name, benchmarks / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # a dataclass in it looks its module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_script_writes_its_table(
    tmp_path: Path, learnable_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmarks/zoo_small.py end to end on the tiny set: one run lands in the store, the
    Markdown names the command that trained it, and a second call reuses the run."""
    zoo_small = _load_benchmark("zoo_small", monkeypatch)
    store, out = tmp_path / "zoo.sqlite", tmp_path / "zoo.md"
    argv = ["zoo_small.py", "--data-dir", str(learnable_data_dir), "--store", str(store),
            "--out", str(out), "--models", "cnn_small", "--epochs", "1", "--subset", "200",
            "--val-size", "100"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    zoo_small.main()
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cnn_small"))
    assert "| mnist |" in row and "34,826" in row and "epochs=1" in row and "subset=200" in row
    assert "val_size=100" in row
    assert "- `python zoo_small.py --data-dir" in text
    with Store(store) as db:
        assert len(db.list_runs(status="finished")) == 1
    zoo_small.main()  # the finished config is reused, not trained again
    with Store(store) as db:
        assert len(db.list_runs()) == 1


def test_benchmark_acceptance_compares_seeds_over_their_common_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds with different epoch budgets are scored over the epochs they all ran, each at its
    best-validation epoch (never the best test epoch)."""
    zoo_small = _load_benchmark("zoo_small", monkeypatch)
    curves = {  # seed -> [(val, test)] per epoch
        0: [(0.990, 0.9930), (0.995, 0.9950), (0.999, 0.9990)],  # epoch 3 is past the common 2
        1: [(0.996, 0.9920), (0.994, 0.9980)],  # best val at epoch 1, not the best test
    }
    with Store(tmp_path / "runs.sqlite") as store:
        for seed, rows in curves.items():
            config = make_config("small_cnn_bn", seed=seed, epochs=len(rows))
            run_id = store.start_run(config.to_dict(), config.config_hash(), {})
            for epoch, (val, test) in enumerate(rows, start=1):
                store.log_epoch(run_id, epoch, {"val_accuracy": val, "test_accuracy": test})
            store.finish_run(run_id, "finished", {"epochs_completed": len(rows)})
        text = " ".join(zoo_small.acceptance(store))
    assert "first 2 epochs" in text and "2 seeds" in text
    assert "seed 0: 99.50% (epoch 2)" in text and "seed 1: 99.20% (epoch 1)" in text
    assert "mean 99.35%" in text and "NOT met" in text


def test_speed_table_sets_the_fastest_setting_beside_the_recipe_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmarks/zoo_speed.py: per model, the recipe run and the fastest full-data MNIST run
    with its accuracy and setting, against the study's own CUDA time (microresnet: 21 s);
    subset runs and other datasets are left out."""
    zoo_speed = _load_benchmark("zoo_speed", monkeypatch)
    environment = {"torch_threads": 2, "cpu_capability": "AVX512", "cpu_native_bf16": True}
    runs = [  # (overrides, time per epoch s, test accuracy)
        ({"dataset": "mnist"}, 29.0, 0.9911),
        ({"dataset": "mnist", "precision": "bf16"}, 19.5, 0.9920),
        ({"dataset": "mnist", "precision": "bf16", "subset": 1000}, 1.0, 0.90),
        ({"dataset": "fashion-mnist", "precision": "bf16"}, 2.0, 0.91),
    ]
    with Store(tmp_path / "zoo_small.sqlite") as store:
        for overrides, epoch_s, accuracy in runs:
            config = make_config("microresnet", device="cpu", **overrides)
            run_id = store.start_run(config.to_dict(), config.config_hash(), environment)
            metrics = {"time_per_epoch_s": epoch_s, "test_accuracy": accuracy}
            store.finish_run(run_id, "finished", metrics)
    out = tmp_path / "speed.md"
    monkeypatch.setattr(
        sys, "argv", ["zoo_speed.py", "--results", str(tmp_path), "--out", str(out)]
    )
    zoo_speed.main()
    row = next(line for line in out.read_text().splitlines() if line.startswith("| microresnet"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "29.00 s (2 thr), 99.11%"
    assert cells[3] == "19.50 s (2 thr), 99.20%" and cells[4] == "precision=bf16"
    assert cells[6] == "21 s (study A, CUDA)" and cells[7] == "yes"
    assert "Not measured at the recipe yet:" in out.read_text()
