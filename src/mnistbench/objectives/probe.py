"""The probe shared by every pretrained family: features extracted once, then a classifier.

A linear probe is plain supervised training on frozen features, so it is the cross-entropy
objective run by `engine.fit` on a DeviceData whose "images" are feature vectors (N, F). The
probe is the model's own `head` (nn.Linear(num_features, classes)), trained in place, so after
the probe `model(x)` is the probed classifier. Every pretrained family (SimSiam, GAN, U-Net,
beta-VAE, DBN) goes through these functions, which is what makes their probe accuracies compare.

The published SimSiam study probed with LightGBM instead; `fit_lightgbm_probe` does that on the
same extracted features.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from mnistbench.config import RunConfig, with_overrides
from mnistbench.data import DeviceData, Split, resize_images
from mnistbench.engine import EvalResult, FitResult, fit
from mnistbench.engine.device import synchronize
from mnistbench.engine.loop import EpochRecord
from mnistbench.objectives.classification import CrossEntropyObjective

FEATURE_BATCH_SIZE = 1000  # images per forward pass during extraction (memory, not results)


# ---------------------------------------------------------------------------------------------
# Feature extraction: once, batched, on the data's device
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def extract_features(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int = FEATURE_BATCH_SIZE,
    autocast: type[AbstractContextManager] | None = None,
) -> Split:
    """`model.forward_features` of every image of `split`, in eval mode, without gradients.

    Returns a Split whose `images` are the (N, num_features) float32 features (on the split's
    device) and whose labels are the split's labels. BatchNorm uses its running statistics and
    dropout is off, so a feature does not depend on the batch it was computed in.
    """
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, len(split), batch_size):
            images = split.images[start : start + batch_size]
            if split.resize_to is not None:
                images = resize_images(images, split.resize_to)
            with autocast() if autocast is not None else nullcontext():
                features = model.forward_features(images)  # (b, C, H, W) -> (b, F)
            chunks.append(features.float().flatten(1))
    finally:
        model.train(was_training)
    return Split(images=torch.cat(chunks), labels=split.labels)


def feature_data(
    model: nn.Module,
    data: DeviceData,
    *,
    batch_size: int = FEATURE_BATCH_SIZE,
    autocast: type[AbstractContextManager] | None = None,
) -> DeviceData:
    """`data` with every split replaced by its extracted features (see `extract_features`).

    mean/std are set to 0/1: features are used as they come out of the frozen model.
    """

    def features(split: Split | None) -> Split | None:
        if split is None:
            return None
        return extract_features(model, split, batch_size=batch_size, autocast=autocast)

    return replace(
        data,
        train=features(data.train),
        val=features(data.val),
        test=features(data.test),
        mean=0.0,
        std=1.0,
    )


# ---------------------------------------------------------------------------------------------
# Linear probe: cross-entropy on the features through engine.fit
# ---------------------------------------------------------------------------------------------


def probe_config(
    config: RunConfig,
    epochs: int,
    *,
    lr: float = 1e-3,
    optimizer: str = "adam",
    grad_clip: float | None = 1.0,
    batch_size: int | None = None,
) -> RunConfig:
    """The probe's RunConfig: the run's seed, device and batch size, study A's classifier
    recipe (Adam 1e-3, gradient clipping 1.0), no schedule, no augmentation (the inputs are
    feature vectors), no early stopping, fp32 (a Linear on features gains nothing from bf16)."""
    return with_overrides(
        config,
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        grad_clip=grad_clip,
        batch_size=batch_size or config.batch_size,
        scheduler="none",
        augment="none",
        early_stopping_patience=None,
        label_smoothing=0.0,
        weight_decay=0.0,
        precision="fp32",
        image_size=28,  # features are not images; keeps validation from resizing anything
    )


def fit_linear_probe(
    model: nn.Module,
    features: DeviceData,
    config: RunConfig,
    *,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train `model.head` (nn.Linear(num_features, classes)) on extracted `features`.

    `config` is the probe's (see `probe_config`). The head is trained in place; the rest of
    the model is untouched (it never sees a gradient: the features are fixed tensors).
    """
    head = model.head
    objective = CrossEntropyObjective(head, autocast=None, grad_clip=config.grad_clip)
    return fit(objective, features, config, on_epoch=on_epoch, progress=progress)


# ---------------------------------------------------------------------------------------------
# LightGBM probe (the published SimSiam protocol)
# ---------------------------------------------------------------------------------------------


@dataclass
class LightGBMProbe:
    """A fitted LightGBM probe and its scores (accuracies are fractions)."""

    booster: object  # lightgbm.LGBMClassifier
    train_accuracy: float
    train_loss: float  # multiclass log loss
    val: EvalResult | None
    test: EvalResult
    fit_s: float  # wall time of `fit` alone


def _lightgbm_eval(classifier, split: Split) -> EvalResult:
    x = split.images.cpu().numpy()
    y = split.labels.cpu().numpy()
    probabilities = classifier.predict_proba(x)  # (N, classes)
    predictions = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-15, 1.0)
    return EvalResult(
        loss=float(-np.log(picked).mean()),
        accuracy=float((predictions == y).mean()),
        predictions=torch.from_numpy(predictions).to(split.labels.device),
    )


def fit_lightgbm_probe(
    features: DeviceData,
    *,
    seed: int = 42,
    threads: int | None = None,
    n_estimators: int = 100,
    **params: object,
) -> LightGBMProbe:
    """LGBMClassifier (multiclass; published settings: random_state 42 and LightGBM's defaults,
    100 trees, learning rate 0.1, 31 leaves) on the train features, scored on val and test.

    `threads` defaults to half the CPU cores (see below); `params` go to LGBMClassifier.
    """
    import lightgbm

    # Half the cores by default: LightGBM's OpenMP threads spin at each of its many small
    # parallel regions, and on an oversubscribed machine that is ruinous (measured, 2-core box
    # shared with other jobs, 200 x 1152 features: 1 thread 8.3 s, 2 threads 151 s).
    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    classifier = lightgbm.LGBMClassifier(
        objective="multiclass",
        n_estimators=n_estimators,
        random_state=seed,
        n_jobs=threads,
        verbose=-1,
        **params,
    )
    x = features.train.images.cpu().numpy()
    y = features.train.labels.cpu().numpy()
    started = time.perf_counter()
    classifier.fit(x, y)
    fit_s = time.perf_counter() - started
    train = _lightgbm_eval(classifier, features.train)
    return LightGBMProbe(
        booster=classifier,
        train_accuracy=train.accuracy,
        train_loss=train.loss,
        val=_lightgbm_eval(classifier, features.val) if features.val is not None else None,
        test=_lightgbm_eval(classifier, features.test),
        fit_s=fit_s,
    )


def timed_feature_data(
    model: nn.Module, data: DeviceData, **kwargs: object
) -> tuple[DeviceData, float]:
    """`feature_data` plus the seconds it took (device synchronised)."""
    synchronize(data.device)
    started = time.perf_counter()
    features = feature_data(model, data, **kwargs)  # type: ignore[arg-type]
    synchronize(data.device)
    return features, time.perf_counter() - started


__all__ = [
    "LightGBMProbe",
    "extract_features",
    "feature_data",
    "fit_lightgbm_probe",
    "fit_linear_probe",
    "probe_config",
    "timed_feature_data",
]
