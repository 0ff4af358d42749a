"""The training loop on a tiny learnable data set: learning, divergence, early stopping, seeds."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from mnistbench.data import prepare_device_data
from mnistbench.engine import confusion_matrix, evaluate, fit, summarize_epochs
from mnistbench.engine.device import autocast_factory
from mnistbench.engine.loop import EpochRecord
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model
from mnistbench.objectives import CrossEntropyObjective
from synthetic import learnable_raw


@pytest.fixture(scope="module")
def data():
    return prepare_device_data(learnable_raw(), "cpu", val_size=200, seed=0)


def _fit(data, model="mlp", precision="fp32", **overrides):
    config = make_config(model, **{"epochs": 2, "batch_size": 64, **overrides})
    torch.manual_seed(config.seed)
    objective = CrossEntropyObjective(
        create_model(model),
        autocast=autocast_factory("cpu", precision),
        grad_clip=config.grad_clip,
        label_smoothing=config.label_smoothing,
    )
    return objective, fit(objective, data, config, progress=False)


def test_loss_falls_and_model_learns(data) -> None:
    _, result = _fit(data, epochs=3)
    assert result.status == "finished"
    losses = [r.train_loss for r in result.epochs]
    assert losses[-1] < losses[0] / 2
    assert result.epochs[-1].val_accuracy > 0.9
    assert result.epochs[-1].test_accuracy > 0.9
    assert all(r.train_time_s > 0 and r.eval_time_s > 0 for r in result.epochs)


@pytest.mark.parametrize("model", ["cnn", "microresnet"])
def test_conv_models_learn(data, model: str) -> None:
    _, result = _fit(data, model=model, epochs=2, subset=600)
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert result.epochs[-1].val_accuracy > 0.5


def test_same_seed_same_result_different_seed_differs(data) -> None:
    _, first = _fit(data, seed=3)
    _, second = _fit(data, seed=3)
    _, other = _fit(data, seed=4)
    assert [r.train_loss for r in first.epochs] == [r.train_loss for r in second.epochs]
    assert first.epochs[-1].test_accuracy == second.epochs[-1].test_accuracy
    assert [r.train_loss for r in first.epochs] != [r.train_loss for r in other.epochs]


def test_divergence_ends_the_run_cleanly(data) -> None:
    # one NaN pixel poisons the loss of its batch and, through the update, every later batch
    poisoned_images = data.train.images.clone()
    poisoned_images[5, 0, 10, 10] = float("nan")
    poisoned = dataclasses.replace(
        data, train=dataclasses.replace(data.train, images=poisoned_images)
    )
    _, result = _fit(poisoned, epochs=3)
    assert result.status == "diverged"
    assert "nan" in result.message and "lower --lr" in result.message
    assert result.epochs == []  # the first epoch already diverged: nothing evaluated


def test_early_stopping_on_validation(data) -> None:
    # a learning rate this small cannot move validation accuracy: patience 1 stops at epoch 2
    _, result = _fit(data, lr=1e-12, epochs=6, early_stopping_patience=1)
    assert result.stopped_early
    assert len(result.epochs) == 2


@pytest.mark.parametrize(
    ("scheduler", "expected_lr"),
    [("none", 1e-3), ("step", 1e-4), ("cosine", 0.0), ("onecycle", None)],
)
def test_schedulers(data, scheduler: str, expected_lr: float | None) -> None:
    _, result = _fit(data, epochs=2, scheduler=scheduler, step_size=1, gamma=0.1)
    lrs = [r.lr for r in result.epochs]
    if scheduler == "step":
        assert lrs == pytest.approx([1e-4, 1e-5])
    elif scheduler == "onecycle":
        assert lrs[-1] < 1e-3 / 100  # OneCycle anneals far below its peak by the end
    else:
        assert lrs[-1] == pytest.approx(expected_lr, abs=1e-9)


@pytest.mark.parametrize("policy", ["affine", "study_d", "rotate7"])
def test_augmentation_policies_train(data, policy) -> None:
    _, augmented = _fit(data, augment=policy)
    assert augmented.status == "finished"
    assert augmented.epochs[-1].train_loss < augmented.epochs[0].train_loss


def test_bf16_path_trains(data) -> None:
    _, bf16 = _fit(data, precision="bf16")
    for result in (bf16,):
        assert result.status == "finished"
        assert result.epochs[-1].train_loss < result.epochs[0].train_loss


def test_evaluate_matches_a_manual_count(data) -> None:
    objective, _ = _fit(data, epochs=1)
    result = evaluate(objective, data.test, batch_size=77)
    with torch.no_grad():
        predictions = objective.model.eval()(data.test.images).argmax(1)
    assert result.accuracy == (predictions == data.test.labels).float().mean().item()
    assert torch.equal(result.predictions, predictions)


def _record(epoch: int, val: float, test: float, seconds: float = 2.0) -> EpochRecord:
    return EpochRecord(epoch, 0.1, 0.9, 0.1, val, 0.1, test, seconds, 0.5, 1e-3)


def test_summary_separates_honest_and_optimistic_accuracy() -> None:
    epochs = [_record(1, 0.98, 0.985), _record(2, 0.992, 0.989), _record(3, 0.991, 0.993)]
    summary = summarize_epochs(epochs, target_accuracy=0.99)
    assert summary["test_accuracy"] == 0.993  # final model
    assert (summary["best_val_epoch"], summary["test_accuracy_at_best_val"]) == (2, 0.989)
    assert (summary["best_test_epoch"], summary["best_test_accuracy"]) == (3, 0.993)
    assert (summary["epochs_to_target"], summary["seconds_to_target"]) == (2, 4.0)
    assert (summary["epochs_to_target_test"], summary["seconds_to_target_test"]) == (3, 6.0)
    assert summary["time_per_epoch_s"] == 2.0


def test_summary_never_reaching_target() -> None:
    summary = summarize_epochs([_record(1, 0.5, 0.5)], target_accuracy=0.99)
    assert summary["epochs_to_target"] is None and summary["seconds_to_target"] is None


def test_confusion_matrix_counts() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(labels, predictions, 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def _flush_state_in_child(code: str) -> str:
    """Run `code` in a fresh 2-thread interpreter and return what it prints last."""
    result = subprocess.run(
        [sys.executable, "-c", "from mnistbench.engine.device import *\n" + code],
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_denormals_flushed_on_every_thread_only_when_set_before_the_first_parallel_op() -> None:
    """The flag is per thread: torch's workers copy it when they start, so flush_denormals()
    must come first; the recorded probe tells the three cases apart."""
    assert _flush_state_in_child("print(denormal_flush_state())") == "off"
    assert _flush_state_in_child("flush_denormals()\nprint(denormal_flush_state())") == (
        "all threads"
    )
    late = "print(denormal_flush_state())\nflush_denormals()\nprint(denormal_flush_state())"
    assert _flush_state_in_child(late) == "some threads"  # workers started before the flag


def test_training_cpu_share_is_cpu_seconds_over_wall_time_and_threads(monkeypatch) -> None:
    """A hand count: 3 CPU seconds in 2 s of training on 2 threads is 75% of the cores; GPU runs
    and runs with no training time have no share."""
    import torch

    from mnistbench.experiments.runner import cpu_share

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert cpu_share(3.0, 2.0, "cpu") == 0.75
    assert cpu_share(3.0, 2.0, "cuda") is None
    assert cpu_share(0.0, 0.0, "cpu") is None
