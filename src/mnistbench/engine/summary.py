"""Run-level figures derived from the per-epoch records (pure functions, no I/O)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch

from mnistbench.engine.loop import EpochRecord


def _first_reaching(
    epochs: Sequence[EpochRecord], key: str, target: float
) -> tuple[int | None, float | None]:
    """First epoch whose `key` accuracy reaches `target`, and the training seconds up to it."""
    elapsed_s = 0.0
    for record in epochs:
        elapsed_s += record.train_time_s
        value = getattr(record, key)
        if value is not None and value >= target:
            return record.epoch, elapsed_s
    return None, None


def summarize_epochs(epochs: Sequence[EpochRecord], target_accuracy: float) -> dict[str, object]:
    """Headline accuracies and times.

    `test_accuracy` is the final model's. `test_accuracy_at_best_val` is the honest pick (epoch
    chosen on validation); `best_test_accuracy` is the max over epochs of test accuracy, the
    optimistic protocol some published studies used, kept so both can be shown side by side.
    """
    if not epochs:
        return {"epochs_completed": 0}
    last = epochs[-1]
    summary: dict[str, object] = {
        "epochs_completed": len(epochs),
        "test_accuracy": last.test_accuracy,
        "test_loss": last.test_loss,
        "final_train_loss": last.train_loss,
        "final_train_accuracy": last.train_accuracy,
        "time_per_epoch_s": statistics.median(r.train_time_s for r in epochs),
        "total_train_time_s": sum(r.train_time_s for r in epochs),
        "total_eval_time_s": sum(r.eval_time_s for r in epochs),
        "target_accuracy": target_accuracy,
    }
    with_val = [r for r in epochs if r.val_accuracy is not None]
    if with_val:
        best = max(with_val, key=lambda r: r.val_accuracy)  # earliest epoch wins ties
        summary.update(
            best_val_accuracy=best.val_accuracy,
            best_val_epoch=best.epoch,
            test_accuracy_at_best_val=best.test_accuracy,
        )
    with_test = [r for r in epochs if r.test_accuracy is not None]
    if with_test:
        best_test = max(with_test, key=lambda r: r.test_accuracy)
        summary.update(best_test_accuracy=best_test.test_accuracy, best_test_epoch=best_test.epoch)
    epochs_to_target, seconds_to_target = _first_reaching(epochs, "val_accuracy", target_accuracy)
    test_epochs_to_target, test_seconds_to_target = _first_reaching(
        epochs, "test_accuracy", target_accuracy
    )
    summary.update(
        epochs_to_target=epochs_to_target,
        seconds_to_target=seconds_to_target,
        epochs_to_target_test=test_epochs_to_target,
        seconds_to_target_test=test_seconds_to_target,
    )
    return summary


def confusion_matrix(
    labels: torch.Tensor, predictions: torch.Tensor, num_classes: int
) -> list[list[int]]:
    """Row = true class, column = predicted class."""
    flat = labels.to(torch.long) * num_classes + predictions.to(torch.long)
    counts = torch.bincount(flat.cpu(), minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).tolist()
