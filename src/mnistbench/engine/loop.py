"""The one training loop: every model and objective is trained and evaluated here.

Training time per epoch covers the optimizer steps only, with the device synchronised before
each clock read; evaluation is timed separately.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from mnistbench.config import RunConfig
from mnistbench.data import DeviceData, SealedSplit, Split, augment_batch, iterate_batches
from mnistbench.engine.allocator import retained_allocations
from mnistbench.engine.device import synchronize
from mnistbench.engine.optim import build_optimizer, build_scheduler, total_train_steps
from mnistbench.objectives import Objective

# eval_step outputs that are per image (concatenated), not sums over the batch
PER_IMAGE_KEYS = ("predictions", "top_probability", "true_probability")
LOSS_CHECK_EVERY = 50  # steps between host syncs that check for NaN/inf and refresh the bar


@dataclass
class EpochRecord:
    """Per-epoch figures; accuracies are fractions, times are seconds."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None
    train_time_s: float  # optimizer steps only, device synchronised
    eval_time_s: float  # validation + test passes
    lr: float  # learning rate at the end of the epoch

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    predictions: torch.Tensor  # (N,) predicted class per image, on the device
    # (N,) softmax probability of the predicted and of the true class; None where the model
    # gives no probabilities (an SVC, a label-free objective)
    top_probability: torch.Tensor | None = None
    true_probability: torch.Tensor | None = None
    probabilities_absent: str | None = None  # why there are none, said in the predictions


@dataclass
class FitResult:
    status: str  # "finished" or "diverged"
    epochs: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False
    message: str | None = None  # why the run diverged
    last_test: EvalResult | None = None  # the latest test evaluation (for the confusion matrix)
    # the test evaluation of the epoch with the best validation accuracy (the earliest of
    # equals, as summarize_epochs picks it) and that accuracy: its per-image predictions are
    # kept beside the final model's
    best_val_test: EvalResult | None = None
    best_val_accuracy: float = -math.inf
    # CPU seconds this process (all its threads) spent in the training loops: against their wall
    # time x threads it tells a run that had the cores from one that shared them
    train_cpu_s: float = 0.0
    train_images_seen: int = 0  # images through optimizer steps, all epochs (train_images)
    train_steps: int = 0  # optimizer steps, all epochs


def evaluate(objective: Objective, split: Split, batch_size: int = 1000) -> EvalResult:
    """Loss and accuracy of the objective's model on a whole split, in eval mode."""
    model = objective.model
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    per_image: dict[str, list[torch.Tensor]] = {key: [] for key in PER_IMAGE_KEYS}
    try:
        for batch in iterate_batches(split, batch_size, shuffle=False, generator=None):
            sums = objective.eval_step(batch)
            for key in PER_IMAGE_KEYS:
                if key in sums:
                    per_image[key].append(sums.pop(key))
            for key, value in sums.items():
                totals[key] = totals[key] + value if key in totals else value
    finally:
        model.train(was_training)
    count = int(totals["count"].item())
    top, true = per_image["top_probability"], per_image["true_probability"]
    return EvalResult(
        loss=float(totals["loss_sum"].item()) / count,
        accuracy=int(totals["correct"].item()) / count,
        predictions=torch.cat(per_image["predictions"]),
        top_probability=torch.cat(top) if top else None,
        true_probability=torch.cat(true) if true else None,
    )


def final_test(
    objective: Objective,
    data: DeviceData,
    result: FitResult,
    *,
    eval_batch_size: int = 1000,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> FitResult:
    """Score the finished model on the test set once, after `fit(..., test_every_epoch=False)`.

    Opens a sealed test split (data.SealedSplit; a second opening raises), writes the score
    into the last epoch's record so the run's summary reads it as usual, reports that epoch
    again through `on_epoch` (stores replace it) and sets `result.last_test`. A run that did
    not finish is not scored.
    """
    if result.status != "finished" or not result.epochs:
        return result
    split = data.test.unseal() if isinstance(data.test, SealedSplit) else data.test
    started = time.perf_counter()
    test = evaluate(objective, split, eval_batch_size)
    last = result.epochs[-1]
    last.test_loss, last.test_accuracy = test.loss, test.accuracy
    last.eval_time_s += time.perf_counter() - started
    result.last_test = test
    if on_epoch is not None:
        on_epoch(last)
    return result


def _show_progress(requested: bool) -> bool:
    return requested and sys.stderr.isatty()


def fit(
    objective: Objective,
    data: DeviceData,
    config: RunConfig,
    *,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
    eval_batch_size: int = 1000,
    test_every_epoch: bool = True,
) -> FitResult:
    """Train `objective.model` on `data.train` for `config.epochs` epochs.

    After each epoch evaluates on validation and (unless `test_every_epoch` is False, e.g. for
    speed records that may touch the test set only once) on test, then calls `on_epoch`. Stops
    early on validation patience, and ends as "diverged" when the loss becomes NaN or infinite.
    With $MNISTBENCH_MALLOC=retain the C allocator keeps freed memory throughout
    (engine/allocator.py).
    """
    with retained_allocations():
        return _fit(objective, data, config, on_epoch, progress, eval_batch_size, test_every_epoch)


def _fit(
    objective: Objective,
    data: DeviceData,
    config: RunConfig,
    on_epoch: Callable[[EpochRecord], None] | None,
    progress: bool,
    eval_batch_size: int,
    test_every_epoch: bool,
) -> FitResult:
    device = data.device
    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
    optimizers = objective.configure_optimizers(lambda params: build_optimizer(params, config))
    schedules = [build_scheduler(opt, config, steps_per_epoch) for opt in optimizers]
    steps_left = total_train_steps(config, steps_per_epoch)  # fewer with config.train_images
    batch_generator = torch.Generator(device=device).manual_seed(config.seed)
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    result = FitResult(status="finished")
    best_val, epochs_without_gain = -math.inf, 0

    for epoch in range(1, config.epochs + 1):
        if steps_left <= 0:  # train_images reached at the end of the previous epoch
            break
        objective.model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not _show_progress(progress),
            leave=False,
            unit="step",
        )
        synchronize(device)
        started, cpu_started = time.perf_counter(), time.process_time()
        step = 0
        for step, (images, labels) in enumerate(
            iterate_batches(data.train, config.batch_size, shuffle=True, generator=batch_generator),
            start=1,
        ):
            if config.augment != "none":
                images = augment_batch(
                    config.augment, images, augment_generator, mean=data.mean, std=data.std
                )
            out = objective.step((images, labels))
            for scheduler, when in schedules:
                if scheduler is not None and when == "step":
                    scheduler.step()
            loss_sum += out["loss"] * len(labels)
            correct += out.get("correct", 0)
            seen += len(labels)
            if step % LOSS_CHECK_EVERY == 0 or step == steps_per_epoch or steps_left == 1:
                mean_loss = loss_sum.item() / seen  # one host sync per LOSS_CHECK_EVERY steps
                bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                if not math.isfinite(mean_loss):
                    break
            bar.update()
            steps_left -= 1
            if steps_left <= 0:  # train_images reached: the run ends with this step
                break
        synchronize(device)
        train_time_s = time.perf_counter() - started
        result.train_cpu_s += time.process_time() - cpu_started
        result.train_images_seen += seen
        result.train_steps += step
        bar.close()
        for scheduler, when in schedules:
            if scheduler is not None and when == "epoch":
                scheduler.step()

        train_loss = loss_sum.item() / max(seen, 1)
        if not math.isfinite(train_loss):
            result.status = "diverged"
            result.message = (
                f"training loss became {train_loss} in epoch {epoch}; "
                "try a lower --lr or gradient clipping"
            )
            break

        eval_started = time.perf_counter()
        val = evaluate(objective, data.val, eval_batch_size) if data.val is not None else None
        test = evaluate(objective, data.test, eval_batch_size) if test_every_epoch else None
        result.last_test = test or result.last_test
        if val is not None and test is not None and val.accuracy > result.best_val_accuracy:
            result.best_val_test, result.best_val_accuracy = test, val.accuracy
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=int(correct.item()) / max(seen, 1),
            val_loss=val.loss if val else None,
            val_accuracy=val.accuracy if val else None,
            test_loss=test.loss if test else None,
            test_accuracy=test.accuracy if test else None,
            train_time_s=train_time_s,
            eval_time_s=time.perf_counter() - eval_started,
            lr=optimizers[0].param_groups[0]["lr"],
        )
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)

        if config.early_stopping_patience is not None and val is not None:
            if val.accuracy > best_val + config.min_delta:
                best_val, epochs_without_gain = val.accuracy, 0
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= config.early_stopping_patience:
                    result.stopped_early = True
                    break
    return result
