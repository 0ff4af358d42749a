"""The sklearn_fit stage kind: a scikit-learn estimator fitted once and scored like one epoch
(study C's SVMs)."""

from __future__ import annotations

import time

from mnistbench.config import RunConfig
from mnistbench.data import SealedSplit, Split
from mnistbench.engine import FitResult
from mnistbench.engine.loop import EpochRecord, EvalResult
from mnistbench.errors import ConfigError
from mnistbench.recipes.kinds import StageKind, StageRun, register_stage_kind


def check_sklearn_config(config: RunConfig) -> None:
    """Reject settings a scikit-learn estimator cannot honour (it is fitted once, not trained)."""
    if config.epochs != 1:
        raise ConfigError(
            f"Invalid --epochs {config.epochs} for {config.model}: a scikit-learn estimator is "
            "fitted once, not trained in epochs. Leave --epochs out (it is 1); its iteration "
            "cap is a model option, e.g. --model-option max_iter=5000."
        )
    if config.augment != "none" or config.compile:
        raise ConfigError(
            f"{config.model} is a scikit-learn estimator: --augment and --compile apply to "
            "torch models trained in batches. Leave them out for this model."
        )


# scikit-learn's SVC gives predict_proba only when fitted with probability=True, which runs an
# extra 5-fold Platt scaling the published recipe never did: its predictions keep classes only
NO_PROBABILITIES = "SVC fitted without probability=True: scikit-learn gives it no predict_proba"


def _sklearn_fit(run: StageRun) -> FitResult:
    """Fit the model's estimator once on the training split, then score it.

    The model provides `fit_estimator(images, labels)`, `predict(images)` and
    `fit_summary()` (figures of the fitted estimator for the run's metrics; models/svm.py).
    One EpochRecord holds the result: train_time_s is the fit time, eval_time_s the prediction
    time on train, validation and test. Losses are the 0-1 error (fraction misclassified): an
    SVM minimises a hinge loss, not cross-entropy, so there is no cross-entropy to report.
    """
    model, data = run.model, run.data
    started = time.perf_counter()
    model.fit_estimator(data.train.images, data.train.labels)
    fit_s = time.perf_counter() - started

    def score(split: Split) -> EvalResult:
        predictions = model.predict(split.images)
        accuracy = (predictions == split.labels).double().mean().item()
        return EvalResult(
            loss=1.0 - accuracy,
            accuracy=accuracy,
            predictions=predictions,
            probabilities_absent=NO_PROBABILITIES,
        )

    eval_started = time.perf_counter()
    train = score(data.train)
    val = score(data.val) if data.val is not None else None
    test = None
    if run.test != "none":  # "final": the sealed test opened for its one score
        test = score(data.test.unseal() if isinstance(data.test, SealedSplit) else data.test)
    record = EpochRecord(
        epoch=1,
        train_loss=train.loss,
        train_accuracy=train.accuracy,
        val_loss=val.loss if val else None,
        val_accuracy=val.accuracy if val else None,
        test_loss=test.loss if test else None,
        test_accuracy=test.accuracy if test else None,
        train_time_s=fit_s,
        eval_time_s=time.perf_counter() - eval_started,
        lr=0.0,  # no learning rate
    )
    run.log.add(record, run.stage.name)
    run.record(fit_time_s=fit_s, train_images=len(data.train), **model.fit_summary())
    return FitResult(status="finished", epochs=[record], last_test=test)


register_stage_kind(
    StageKind(
        "sklearn_fit",
        _sklearn_fit,
        labelled=True,
        fits_before_forward=True,
        requires=("fit_estimator", "predict", "fit_summary"),
        check=check_sklearn_config,
    )
)
