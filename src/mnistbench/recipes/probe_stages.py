"""Probe stage kinds: the model's head, or LightGBM, on features extracted once.

A linear probe is plain supervised training on frozen features, so it is the cross-entropy
objective run by `engine.fit` on a DeviceData whose "images" are feature vectors (N, F). The
probe is the model's own `head` (nn.Linear(num_features, classes)), trained in place, so after
the probe `model(x)` is the probed classifier. Every pretrained family (SimSiam, GAN, U-Net,
beta-VAE, DBN) goes through these stages, which is what makes their probe accuracies compare.
"""

from __future__ import annotations

from dataclasses import replace

from mnistbench.config import RunConfig
from mnistbench.data import DeviceData, SealedSplit, Split
from mnistbench.engine import FitResult
from mnistbench.engine.loop import EpochRecord
from mnistbench.objectives import CrossEntropyObjective
from mnistbench.options import StageOption
from mnistbench.recipes.features import fit_lightgbm_probe, timed_feature_data
from mnistbench.recipes.kinds import StageKind, StageRun, register_stage_kind

LIGHTGBM_SEED = 42  # the published probe's random_state
LIGHTGBM_LEARNING_RATE = 0.1  # LightGBM's default shrinkage, recorded as the epoch's lr
# where the fitted LightGBM classifier is left in RecipeContext.shared, for the run's kept
# weights (models/weights.py writes its text model beside the encoder's state dict)
LIGHTGBM_PROBE_KEY = "lightgbm_probe"

LGBM_TRAIN_SIZE = StageOption(
    "lgbm_train_size",
    int,
    0,
    help="the number of training images LightGBM is fitted on (0: all of them)",
    check=lambda size: size >= 0,
    rule="must be a whole number, 0 or more",
    example=10000,
)


def probe_config(config: RunConfig, epochs: int, grad_clip: float | None = None) -> RunConfig:
    """The linear probe's settings: the run's seed, device and batch size, study A's probe
    recipe (Adam 1e-3 without gradient clipping: its probe loops, unlike its supervised
    scripts, do not clip; `grad_clip` is the stage's, None unless a recipe sets it), no
    schedule, no augmentation (the inputs are feature vectors), no
    early stopping, fp32 (a Linear on features gains nothing from bf16)."""
    return replace(
        config,
        epochs=epochs,
        lr=1e-3,
        optimizer="adam",
        grad_clip=grad_clip,
        scheduler="none",
        augment="none",
        early_stopping_patience=None,
        label_smoothing=0.0,
        weight_decay=0.0,
        precision="fp32",
    )


def shared_features(run: StageRun) -> DeviceData:
    """The frozen model's features of every split, extracted at the first probe stage and
    shared by the next ones (figures: feature_extraction_s, probe_features)."""
    if "features" not in run.ctx.shared:
        features, seconds = timed_feature_data(run.model, run.data, autocast=run.inputs().autocast)
        run.ctx.shared["features"] = features
        run.record(feature_extraction_s=seconds, probe_features=features.train.images.shape[1])
    return run.ctx.shared["features"]


def _linear_probe(run: StageRun) -> FitResult:
    features = shared_features(run)
    config = probe_config(run.config, run.config.epochs, run.stage.params.get("grad_clip"))
    objective = CrossEntropyObjective(run.model.head, grad_clip=config.grad_clip)
    fitted = run.fit(objective, data=features, config=config)
    run.record(probe="linear", probe_train_images=len(features.train))
    return fitted


def _lightgbm_probe(run: StageRun) -> FitResult:
    features = shared_features(run)
    train, size = features.train, run.options["lgbm_train_size"]
    if size and size < len(train):
        train = Split(train.images[:size], train.labels[:size])
    probe = fit_lightgbm_probe(train, features.val, seed=LIGHTGBM_SEED)
    run.ctx.shared[LIGHTGBM_PROBE_KEY] = probe.booster
    test = None
    if run.test != "none":  # "final": the sealed test's features, opened for this one score
        split = features.test
        test = probe.score(split.unseal() if isinstance(split, SealedSplit) else split)
    record = EpochRecord(
        epoch=1,
        train_loss=probe.train_loss,
        train_accuracy=probe.train_accuracy,
        val_loss=probe.val.loss if probe.val else None,
        val_accuracy=probe.val.accuracy if probe.val else None,
        test_loss=test.loss if test else None,
        test_accuracy=test.accuracy if test else None,
        train_time_s=probe.fit_s,
        eval_time_s=0.0,
        lr=LIGHTGBM_LEARNING_RATE,
    )
    run.log.add(record, run.stage.name)
    run.record(probe="lightgbm", probe_train_images=len(train))
    return FitResult(status="finished", epochs=[record], last_test=test)


register_stage_kind(
    StageKind(
        "linear_probe",
        _linear_probe,
        labelled=True,
        uses_features=True,
        requires=("head", "forward_features"),
    )
)
register_stage_kind(
    StageKind(
        "lightgbm_probe",
        _lightgbm_probe,
        labelled=True,
        uses_features=True,
        options=(LGBM_TRAIN_SIZE,),
        requires=("forward_features",),
    )
)
