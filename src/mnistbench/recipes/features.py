"""Features for the probes every pretrained family shares: extracted once, then classified.

`feature_data` turns a DeviceData of images into one of feature vectors (N, F) from the frozen
model's `forward_features`; the probe stages (probe_stages.py) train the model's head on them,
or fit LightGBM (the published SimSiam probe). A sealed test split stays sealed: its features
are extracted only when the run's one final score opens it.
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

from mnistbench.data import DeviceData, SealedSplit, Split, resize_images
from mnistbench.engine import EvalResult
from mnistbench.engine.device import synchronize

FEATURE_BATCH_SIZE = 1000  # images per forward pass during extraction (memory, not results)


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


class SealedFeatures(SealedSplit):
    """The features of a sealed test split: extracted from its images when `unseal()` opens
    it for the final score (once, like any SealedSplit)."""

    def __init__(self, images: SealedSplit, extract: Callable[[Split], Split]):
        super().__init__(Split(torch.empty(0), torch.empty(0)), images._purpose)
        self._images, self._extract = images, extract

    def __len__(self) -> int:
        return len(self._images)

    def unseal(self) -> Split:
        self._split = self._extract(self._images.unseal())
        return super().unseal()


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

    def features(split: Split) -> Split:
        return extract_features(model, split, batch_size=batch_size, autocast=autocast)

    test = data.test
    return replace(
        data,
        train=features(data.train),
        val=features(data.val) if data.val is not None else None,
        test=SealedFeatures(test, features) if isinstance(test, SealedSplit) else features(test),
        mean=0.0,
        std=1.0,
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


# ---------------------------------------------------------------------------------------------
# LightGBM probe (the published SimSiam probe)
# ---------------------------------------------------------------------------------------------


@dataclass
class LightGBMProbe:
    """A fitted LightGBM probe and its scores (accuracies are fractions)."""

    booster: object  # lightgbm.LGBMClassifier
    train_accuracy: float
    train_loss: float  # multiclass log loss
    val: EvalResult | None
    fit_s: float  # wall time of `fit` alone

    def score(self, split: Split) -> EvalResult:
        """Log loss, accuracy and predictions on `split` (features)."""
        return lightgbm_eval(self.booster, split)


def lightgbm_eval(classifier, split: Split) -> EvalResult:
    """Log loss, accuracy and predictions of a fitted classifier on `split` (features)."""
    x = split.images.cpu().numpy()
    y = split.labels.cpu().numpy()
    probabilities = classifier.predict_proba(x)  # (N, classes it was fitted on)
    # columns are the classes the fit saw (classes_, sorted), not always every label: a small
    # training set may miss one, whose images then get probability 0 (clipped) for their label
    seen = classifier.classes_
    predictions = seen[probabilities.argmax(axis=1)]
    column = np.minimum(np.searchsorted(seen, y), len(seen) - 1)
    true_class = np.where(seen[column] == y, probabilities[np.arange(len(y)), column], 0.0)
    picked = np.clip(true_class, 1e-15, 1.0)
    return EvalResult(
        loss=float(-np.log(picked).mean()),
        accuracy=float((predictions == y).mean()),
        predictions=torch.from_numpy(predictions).to(split.labels.device),
        top_probability=torch.from_numpy(probabilities.max(axis=1)),
        true_probability=torch.from_numpy(true_class),
    )


def probe_threads() -> int:
    """LightGBM's threads: half the cores, and never more than this process's torch threads.

    LightGBM's OpenMP threads spin at each of its many small parallel regions, and on an
    oversubscribed machine that is ruinous (measured, 2-core box shared with other jobs, 200 x
    1152 features: 1 thread 8.3 s, 2 threads 151 s). A pool worker's torch threads are its
    share of the cores (16 cores, 6 workers: 2 each), so the probe keeps to that share; alone
    on 16 cores it would take 8 while 12 other workers ran (an H200 host: the probe did not
    finish in 7 minutes).
    """
    import torch

    return max(1, min((os.cpu_count() or 2) // 2, torch.get_num_threads()))


def fit_lightgbm_probe(
    train: Split,
    val: Split | None = None,
    *,
    seed: int = 42,
    threads: int | None = None,
    n_estimators: int = 100,
    **params: object,
) -> LightGBMProbe:
    """LGBMClassifier (multiclass; published settings: random_state 42 and LightGBM's defaults,
    100 trees, learning rate 0.1, 31 leaves) on the `train` features, scored on `val`. The
    caller scores the test split (`probe.score`), when its test policy allows.

    `threads` defaults to half the CPU cores (see below); `params` go to LGBMClassifier.
    """
    import lightgbm

    threads = threads or probe_threads()
    classifier = lightgbm.LGBMClassifier(
        objective="multiclass",
        n_estimators=n_estimators,
        random_state=seed,
        n_jobs=threads,
        verbose=-1,
        **params,
    )
    x = train.images.cpu().numpy()
    y = train.labels.cpu().numpy()
    started = time.perf_counter()
    classifier.fit(x, y)
    fit_s = time.perf_counter() - started
    scored = lightgbm_eval(classifier, train)
    return LightGBMProbe(
        booster=classifier,
        train_accuracy=scored.accuracy,
        train_loss=scored.loss,
        val=lightgbm_eval(classifier, val) if val is not None else None,
        fit_s=fit_s,
    )
