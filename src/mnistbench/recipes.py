"""Training protocols: how a registered model is trained and scored, run by the one engine.

A model's registration names its protocol (`ModelInfo.protocol`). `supervised` is cross-entropy
training through `engine.fit`; the families of issue 4 add `pretrain_probe` and `greedy_probe`
(their stages are data: objective, budget, frozen parts), and SVMs add `sklearn`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from mnistbench.config import RunConfig, with_overrides
from mnistbench.data import DeviceData
from mnistbench.engine import FitResult, autocast_factory, final_test, fit
from mnistbench.engine.compile import batch_sizes, compile_for_training
from mnistbench.engine.loop import EpochRecord
from mnistbench.errors import ConfigError
from mnistbench.objectives import CrossEntropyObjective

EVAL_BATCH_SIZE = 1000  # images per evaluation batch (no gradients, so larger than training)


@dataclass
class RecipeContext:
    """Everything a protocol needs; it returns a FitResult and may add artefacts and metrics."""

    model: torch.nn.Module
    data: DeviceData
    config: RunConfig
    on_epoch: Callable[[EpochRecord], None]
    add_artefact: Callable[[str, str, bytes | str], None]  # (name, kind, content)
    progress: bool = True
    # Protocol-specific figures for the run's metrics (e.g. compile time, probe fit time).
    extra_metrics: dict[str, object] | None = None
    # False for records (mnistbench speedrun): no test pass per epoch, one final score at the
    # end (engine.final_test); the runner then hands over a sealed test split.
    test_every_epoch: bool = True

    def record(self, **metrics: object) -> None:
        """Add figures to the run's stored metrics."""
        if self.extra_metrics is None:
            self.extra_metrics = {}
        self.extra_metrics.update(metrics)


def supervised(ctx: RecipeContext) -> FitResult:
    """Cross-entropy training of the whole model with the config's optimizer and schedule."""
    config = ctx.config
    objective = CrossEntropyObjective(
        ctx.model,
        autocast=autocast_factory(config.device, config.precision),
        grad_clip=config.grad_clip,
        label_smoothing=config.label_smoothing,
    )
    if config.compile:
        # every batch shape compiled here, timed apart, so no epoch pays for compilation
        data = ctx.data
        objective.model, compile_s = compile_for_training(
            ctx.model,
            tuple(data.train.images.shape[1:]),
            batch_sizes(len(data.train), config.batch_size),
            {
                size
                for split in (data.val, data.test)
                if split is not None
                for size in batch_sizes(len(split), EVAL_BATCH_SIZE)
            },
            config.device,
            autocast_factory(config.device, config.precision),
        )
        ctx.record(compile_time_s=compile_s)
    result = fit(
        objective,
        ctx.data,
        config,
        on_epoch=ctx.on_epoch,
        progress=ctx.progress,
        eval_batch_size=EVAL_BATCH_SIZE,
        test_every_epoch=ctx.test_every_epoch,
    )
    if not ctx.test_every_epoch:
        final_test(
            objective, ctx.data, result, eval_batch_size=EVAL_BATCH_SIZE, on_epoch=ctx.on_epoch
        )
    return result


# ---------------------------------------------------------------------------------------------
# Staged protocols (issue 4): pretrain without labels, then probe; stages are data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage of a staged protocol.

    `objective` names what trains: a pretext objective (`PRETEXT_OBJECTIVES`), "linear_probe"
    (model.head on features extracted once) or "lightgbm_probe". `frozen` says what the stage
    leaves alone: "head" (the pretext objective trains everything but the probe head) or
    "features" (everything but the head: the probe sees fixed feature tensors).
    """

    name: str  # recorded with each of the stage's epochs: "pretrain", "probe", ...
    objective: str
    epochs: int | None = None  # None: the run config's epochs (what --epochs sets)
    frozen: str = "head"
    labels: bool = False  # whether the stage reads labels (pretext stages never do)
    layer: int | None = None  # the RBM a contrastive-divergence stage trains (greedy_probe)


@dataclass
class StageEpochRecord(EpochRecord):
    """An EpochRecord of a staged protocol; `epoch` counts across stages (1, 2, ...).

    Pretext epochs carry their losses (train_loss, val_loss = the pretext loss on the
    validation split) and no accuracies (None, not 0%); `pretext` holds the objective's own
    per-epoch figures (the KL term, D and G losses, ...).
    """

    stage: str = ""
    stage_epoch: int = 0  # epoch within the stage
    pretext: dict[str, float] = field(default_factory=dict)


# The pretext stage trains with the run's config (the model's registered recipe: --epochs,
# --batch-size, --lr set it); probe epochs are the published ones (study A, SPECS.md).
PRETRAIN_PROBE_STAGES: dict[str, tuple[Stage, ...]] = {
    "vae": (
        Stage("pretrain", "vae"),
        Stage("probe", "linear_probe", epochs=10, frozen="features", labels=True),
    ),
    "gan": (
        Stage("pretrain", "adversarial"),
        Stage("probe", "linear_probe", epochs=5, frozen="features", labels=True),
    ),
    "unet": (
        Stage("pretrain", "denoising"),
        Stage("probe", "linear_probe", epochs=5, frozen="features", labels=True),
    ),
    "simsiam": (  # the shared linear probe, then the published one: LightGBM, the headline
        Stage("pretrain", "simsiam"),
        Stage("linear_probe", "linear_probe", epochs=10, frozen="features", labels=True),
        Stage("probe", "lightgbm_probe", frozen="features", labels=True),
    ),
    "simsiam/linear": (  # --model-option probe=linear: the probe every family shares
        Stage("pretrain", "simsiam"),
        Stage("probe", "linear_probe", epochs=10, frozen="features", labels=True),
    ),
}


def _pretext_objective(name: str, model: torch.nn.Module, data: DeviceData, config: RunConfig):
    """Build the pretext objective `name` with the run's precision and gradient clipping."""
    from mnistbench.objectives.adversarial import AdversarialObjective
    from mnistbench.objectives.denoising import DenoisingObjective
    from mnistbench.objectives.simsiam import SimSiamObjective
    from mnistbench.objectives.vae import VAEObjective

    common = {
        "autocast": autocast_factory(config.device, config.precision),
        "grad_clip": config.grad_clip,
    }
    builders = {
        "vae": lambda: VAEObjective(model, beta=model.beta, **common),
        "adversarial": lambda: AdversarialObjective(model, seed=config.seed, **common),
        "denoising": lambda: DenoisingObjective(
            model, mean=data.mean, std=data.std, seed=config.seed, **common
        ),
        "simsiam": lambda: SimSiamObjective(
            model,
            mean=data.mean,
            std=data.std,
            seed=config.seed,
            # published drop_last (a split smaller than one batch still trains)
            min_batch=min(config.batch_size, len(data.train)),
            **common,
        ),
    }
    if name not in builders:
        raise ConfigError(f"Unknown pretext objective {name!r}; known: {', '.join(builders)}.")
    return builders[name]()


PRETEXT_OBJECTIVES = ("vae", "adversarial", "denoising", "simsiam")


def pretrain_probe_stages(family: str, model: torch.nn.Module) -> tuple[Stage, ...]:
    """The stages of `family` (a model's `probe` option may pick another probe)."""
    probe = getattr(model, "probe", None)
    key = f"{family}/{probe}" if f"{family}/{probe}" in PRETRAIN_PROBE_STAGES else family
    if key not in PRETRAIN_PROBE_STAGES:
        raise ConfigError(
            f"No pretrain_probe stages for model family {family!r}; "
            f"known: {', '.join(sorted(PRETRAIN_PROBE_STAGES))}."
        )
    return PRETRAIN_PROBE_STAGES[key]


class _StageLog:
    """Turns each stage's EpochRecords into StageEpochRecords numbered across stages."""

    def __init__(self, ctx: RecipeContext):
        self.ctx = ctx
        self.records: list[StageEpochRecord] = []

    def callback(self, stage: Stage, objective=None) -> Callable[[EpochRecord], None]:
        def on_epoch(record: EpochRecord) -> None:
            values = record.to_dict()
            values["epoch"] = len(self.records) + 1
            if not stage.labels:  # a pretext epoch has losses, no accuracy
                values.update(train_accuracy=None, val_accuracy=None, test_accuracy=None)
                values.update(test_loss=None)
            extra = objective.extra.pop() if hasattr(objective, "extra") else {}
            self.add(
                StageEpochRecord(
                    **values, stage=stage.name, stage_epoch=record.epoch, pretext=extra
                )
            )

        return on_epoch

    def add(self, record: StageEpochRecord) -> None:
        self.records.append(record)
        self.ctx.on_epoch(record)


def held_out_images(data: DeviceData, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the first `count` validation images, for pictures and activity
    figures; the training split when there is no validation. Never the test split, which a
    speed record keeps sealed until its one final score."""
    split = data.val if data.val is not None else data.train
    return split.images[:count], split.labels[:count]


def _store_pictures(ctx: RecipeContext, objective, images: torch.Tensor) -> None:
    """Image grids the pretext objective offers (samples, reconstructions), as PNG artefacts."""
    if not hasattr(objective, "pictures"):
        return
    from mnistbench.report.images import image_grid_png

    titles = {
        "vae_samples": ("VAE samples, z ~ N(0, I)", None, 8),
        "vae_reconstructions": ("VAE: held-out images (top 4 rows), reconstructed", None, 8),
        "gan_samples": ("GAN samples", None, 8),
        "unet_denoising": ("U-Net denoising", ["clean", "noisy", "denoised"], 16),
        "simsiam_views": ("SimSiam views", ["image", "view 1", "view 2"], 16),
        "rbm1_filters": ("DBN: RBM 1 filters of 64 hidden units, each scaled", None, 16),
    }
    for name, grid in objective.pictures(images).items():
        title, rows, ncols = titles.get(name, (name, None, 8))
        ctx.add_artefact(
            name, "png", image_grid_png(grid, ncols=ncols, title=title, row_labels=rows)
        )


def pretrain_probe(ctx: RecipeContext) -> FitResult:
    """Pretrain without labels with the family's pretext objective, extract features once, and
    fit a probe on them (the model's head, or LightGBM), every stage through the one engine.

    Records every epoch (see StageEpochRecord) and the run's stage timings; the run's
    `time_per_epoch_s` is the median pretraining epoch (the figure the published studies give).
    """
    from mnistbench.data import Split
    from mnistbench.models import get_model_info
    from mnistbench.objectives.probe import (
        fit_lightgbm_probe,
        fit_linear_probe,
        probe_config,
        timed_feature_data,
    )

    config, model, data = ctx.config, ctx.model, ctx.data
    if config.compile:
        raise ConfigError(
            f"--compile is not supported for {config.model}: its pretrain_probe protocol runs "
            "several objectives over different parts of the model. Run it without --compile."
        )
    stages = pretrain_probe_stages(get_model_info(config.model).family, model)
    log = _StageLog(ctx)
    result = FitResult(status="finished")
    autocast = autocast_factory(config.device, config.precision)
    metrics: dict[str, object] = {}
    features = None
    for stage in stages:
        if stage.objective in PRETEXT_OBJECTIVES:
            stage_config = with_overrides(
                config,
                epochs=stage.epochs or config.epochs,
                early_stopping_patience=None,  # no accuracy to stop on
            )
            objective = _pretext_objective(stage.objective, model, data, stage_config)
            fitted = fit(
                objective,
                data,
                stage_config,
                on_epoch=log.callback(stage, objective),
                progress=ctx.progress,
                test_every_epoch=False,
            )
            times = [r.train_time_s for r in log.records if r.stage == stage.name]
            metrics.update(
                {
                    f"{stage.name}_epochs": len(times),
                    f"{stage.name}_time_per_epoch_s": statistics.median(times) if times else None,
                    f"{stage.name}_total_s": sum(times),
                    f"{stage.name}_final_loss": log.records[-1].train_loss if times else None,
                    f"{stage.name}_objective": stage.objective,
                }
            )
            if fitted.status != "finished":
                result.status, result.message = fitted.status, fitted.message
                break
            _store_pictures(ctx, objective, held_out_images(data, 64)[0])
            continue
        if features is None:  # extracted once, shared by every probe stage
            features, extract_s = timed_feature_data(model, data, autocast=autocast)
            metrics.update(
                feature_extraction_s=extract_s, probe_features=features.train.images.shape[1]
            )
        if stage.objective == "linear_probe":
            fitted = fit_linear_probe(
                model,
                features,
                probe_config(config, stage.epochs or 10),
                on_epoch=log.callback(stage),
                progress=ctx.progress,
            )
            result.last_test = fitted.last_test
            if fitted.status != "finished":
                result.status, result.message = fitted.status, fitted.message
                break
            metrics.update(
                probe="linear",
                probe_epochs=len(fitted.epochs),
                probe_train_images=len(features.train),
            )
        elif stage.objective == "lightgbm_probe":
            train_size = getattr(model, "lgbm_train_size", 0)  # 0: every training image
            fitted_on = features
            if train_size and train_size < len(features.train):
                train = features.train
                subset = Split(train.images[:train_size], train.labels[:train_size])
                fitted_on = replace(features, train=subset)
            probe = fit_lightgbm_probe(fitted_on, seed=42)
            log.add(
                StageEpochRecord(
                    epoch=len(log.records) + 1,
                    train_loss=probe.train_loss,
                    train_accuracy=probe.train_accuracy,
                    val_loss=probe.val.loss if probe.val else None,
                    val_accuracy=probe.val.accuracy if probe.val else None,
                    test_loss=probe.test.loss,
                    test_accuracy=probe.test.accuracy,
                    train_time_s=probe.fit_s,
                    eval_time_s=0.0,
                    lr=0.1,  # LightGBM's default learning rate (shrinkage)
                    stage=stage.name,
                    stage_epoch=1,
                )
            )
            result.last_test = probe.test
            metrics.update(
                probe="lightgbm", probe_epochs=1, probe_train_images=len(fitted_on.train)
            )
        else:
            raise ConfigError(f"Unknown stage objective {stage.objective!r} in {stage}.")
        probe_records = [r for r in log.records if r.stage == stage.name]
        metrics[f"{stage.name}_total_s"] = sum(r.train_time_s for r in probe_records)
        metrics[f"{stage.name}_test_accuracy"] = probe_records[-1].test_accuracy

    result.epochs = list(log.records)
    # The headline time per epoch is the pretraining one; the engine's median would mix stages.
    pretrain_s = metrics.get("pretrain_total_s") or 0.0
    metrics["time_per_epoch_s"] = metrics.get("pretrain_time_per_epoch_s")
    # "epochs" of a run are what --epochs sets: pretraining; every stage's epochs are rows
    metrics["epochs_completed"] = metrics.get("pretrain_epochs", 0)
    metrics["stage_epochs_recorded"] = len(log.records)
    metrics["train_images_per_s"] = (
        len(data.train) * metrics.get("pretrain_epochs", 0) / pretrain_s if pretrain_s else None
    )
    ctx.record(**metrics)
    return result


# ---------------------------------------------------------------------------------------------
# scikit-learn estimators (study C's SVMs): fitted once, scored like one epoch
# ---------------------------------------------------------------------------------------------


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


def sklearn_estimator(ctx: RecipeContext) -> FitResult:
    """Fit the model's scikit-learn estimator once on the training split, then score it.

    The model provides `fit_estimator(images, labels)` and `predict(images)` (models/svm.py).
    One EpochRecord holds the result: train_time_s is the fit time, eval_time_s the prediction
    time on train, validation and test. Losses are the 0-1 error (fraction misclassified): an
    SVM minimises a hinge loss, not cross-entropy, so there is no cross-entropy to report.
    """
    import time

    from mnistbench.data import Split
    from mnistbench.engine.loop import EvalResult

    check_sklearn_config(ctx.config)
    model, data = ctx.model, ctx.data
    started = time.perf_counter()
    model.fit_estimator(data.train.images, data.train.labels)
    fit_s = time.perf_counter() - started

    def score(split: Split) -> EvalResult:
        predictions = model.predict(split.images)
        accuracy = (predictions == split.labels).double().mean().item()
        return EvalResult(loss=1.0 - accuracy, accuracy=accuracy, predictions=predictions)

    eval_started = time.perf_counter()
    train = score(data.train)
    val = score(data.val) if data.val is not None else None
    test = score(data.test)
    record = EpochRecord(
        epoch=1,
        train_loss=train.loss,
        train_accuracy=train.accuracy,
        val_loss=val.loss if val else None,
        val_accuracy=val.accuracy if val else None,
        test_loss=test.loss,
        test_accuracy=test.accuracy,
        train_time_s=fit_s,
        eval_time_s=time.perf_counter() - eval_started,
        lr=0.0,  # no learning rate
    )
    ctx.on_epoch(record)
    ctx.record(fit_time_s=fit_s, train_images=len(data.train))
    if hasattr(model, "fit_summary"):
        ctx.record(**model.fit_summary())
    return FitResult(status="finished", epochs=[record], last_test=test)


# ---------------------------------------------------------------------------------------------
# greedy_probe (DBN): one contrastive-divergence stage per RBM, a linear probe, fine-tuning
# ---------------------------------------------------------------------------------------------

# Study A's DBN: CD-1 at lr 0.05 for 5 epochs per RBM (batch = the run's, 64), RBM 2 on RBM 1's
# hidden probabilities; then the probe every pretrained family shares (features extracted
# once); then the published "fine-tune all" with the run's optimizer (Adam 1e-3) for the run's
# epochs (--epochs, 10 by default), starting from the probed head.
GREEDY_PROBE_STAGES: tuple[Stage, ...] = (
    Stage("pretrain_rbm1", "contrastive_divergence", epochs=5, layer=0),
    Stage("pretrain_rbm2", "contrastive_divergence", epochs=5, layer=1),
    Stage("probe", "linear_probe", epochs=5, frozen="features", labels=True),
    Stage("finetune", "cross_entropy", frozen="none", labels=True),
)
CD_LEARNING_RATE = 0.05  # plain CD update, study A
CD_GIBBS_STEPS = 1  # CD-1


def _stage_metrics(log: _StageLog, stage: Stage) -> dict[str, object]:
    """Epoch count, total and median training seconds and final loss of one stage."""
    records = [r for r in log.records if r.stage == stage.name]
    times = [r.train_time_s for r in records]
    return {
        f"{stage.name}_epochs": len(records),
        f"{stage.name}_total_s": sum(times),
        f"{stage.name}_time_per_epoch_s": statistics.median(times) if times else None,
        f"{stage.name}_final_loss": records[-1].train_loss if records else None,
    }


def greedy_probe(ctx: RecipeContext, stages: tuple[Stage, ...] | None = None) -> FitResult:
    """Greedy layer-wise pretraining of `model.rbms` with CD-k, then probe, then fine-tune.

    Every stage runs through `engine.fit` and every epoch is stored, numbered across stages
    (StageEpochRecord: CD epochs carry the reconstruction error as train/val loss and no
    accuracy). Metrics keep the budget honest: per-stage seconds, `pretrain_total_s`,
    `probe_test_accuracy`, `finetune_total_s`; `total_train_time_s` (the engine's sum) covers
    every stage. The headline `time_per_epoch_s` is the median fine-tuning epoch.
    """
    from mnistbench.objectives.contrastive_divergence import ContrastiveDivergenceObjective
    from mnistbench.objectives.probe import fit_linear_probe, probe_config, timed_feature_data

    config, model, data = ctx.config, ctx.model, ctx.data
    log = _StageLog(ctx)
    result = FitResult(status="finished")
    metrics: dict[str, object] = {"cd_lr": CD_LEARNING_RATE, "cd_gibbs_steps": CD_GIBBS_STEPS}
    for stage in stages or GREEDY_PROBE_STAGES:
        if stage.objective == "contrastive_divergence":
            stage_config = with_overrides(
                config,
                epochs=stage.epochs or config.epochs,
                scheduler="none",  # the plain CD rule has a constant rate
                early_stopping_patience=None,  # no accuracy to stop on
            )
            objective = ContrastiveDivergenceObjective(
                model,
                stage.layer or 0,
                k=CD_GIBBS_STEPS,
                lr=CD_LEARNING_RATE,
                seed=config.seed + 10 * (stage.layer or 0),
            )
            fitted = fit(
                objective,
                data,
                stage_config,
                on_epoch=log.callback(stage, objective),
                progress=ctx.progress,
                test_every_epoch=False,
            )
            if fitted.status == "finished":
                _store_pictures(ctx, objective, held_out_images(data, 64)[0])
        elif stage.objective == "linear_probe":
            features, extract_s = timed_feature_data(model, data)
            metrics["feature_extraction_s"] = extract_s
            fitted = fit_linear_probe(
                model,
                features,
                probe_config(config, stage.epochs or 5),
                on_epoch=log.callback(stage),
                progress=ctx.progress,
            )
            if fitted.epochs:
                metrics["probe_test_accuracy"] = fitted.epochs[-1].test_accuracy
        elif stage.objective == "cross_entropy":
            stage_config = with_overrides(config, epochs=stage.epochs or config.epochs)
            objective = CrossEntropyObjective(
                model,
                autocast=autocast_factory(config.device, config.precision),
                grad_clip=config.grad_clip,
                label_smoothing=config.label_smoothing,
            )
            fitted = fit(
                objective,
                data,
                stage_config,
                on_epoch=log.callback(stage),
                progress=ctx.progress,
            )
        else:
            raise ConfigError(f"Unknown stage objective {stage.objective!r} in {stage}.")
        metrics.update(_stage_metrics(log, stage))
        result.last_test = fitted.last_test or result.last_test
        if fitted.status != "finished":
            result.status, result.message = fitted.status, fitted.message
            break

    result.epochs = list(log.records)
    pretrain = [r.train_time_s for r in log.records if r.stage.startswith("pretrain")]
    metrics["pretrain_total_s"] = sum(pretrain)
    finetune = [r.train_time_s for r in log.records if r.stage == "finetune"]
    metrics["time_per_epoch_s"] = statistics.median(finetune) if finetune else None
    ctx.record(**metrics)
    return result


# ---------------------------------------------------------------------------------------------
# supervised_spiking (SNN): cross-entropy training, then the network's spiking activity
# ---------------------------------------------------------------------------------------------

SPIKE_PROBE_IMAGES = 500  # held-out images whose spikes give the recorded firing rates


def supervised_spiking(ctx: RecipeContext) -> FitResult:
    """`supervised`, then the firing rate of each spiking layer on held-out images (metrics
    `spike_rate_<layer>`, spikes per neuron per time step) and a spike raster of one digit
    (PNG artefact `spike_raster`). The model offers `spike_trains(x)` -> per-layer (T, B, ...)
    spikes and `layer_names`."""
    result = supervised(ctx)
    if result.status != "finished":
        return result
    model = ctx.model
    images, labels = held_out_images(ctx.data, SPIKE_PROBE_IMAGES)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            spikes = model.spike_trains(images)
    finally:
        model.train(was_training)
    ctx.record(
        spike_time_steps=spikes[0].shape[0],
        **{
            f"spike_rate_{name}": float(layer.float().mean())
            for name, layer in zip(model.layer_names, spikes, strict=True)
        },
    )
    from mnistbench.report.raster import spike_raster_png

    label = int(labels[0])
    ctx.add_artefact(
        "spike_raster",
        "png",
        spike_raster_png(
            image=images[0] * ctx.data.std + ctx.data.mean,
            spikes={
                name: layer[:, 0] for name, layer in zip(model.layer_names, spikes, strict=True)
            },
            title=f"{ctx.config.model}: spikes for one held-out digit (label {label})",
        ),
    )
    return result


PROTOCOLS: dict[str, Callable[[RecipeContext], FitResult]] = {
    "supervised": supervised,
    "sklearn": sklearn_estimator,
    "pretrain_probe": pretrain_probe,
    "greedy_probe": greedy_probe,
    "supervised_spiking": supervised_spiking,
}


# Settings checks a protocol makes before a run starts (so bad input leaves no store row).
PROTOCOL_CONFIG_CHECKS: dict[str, Callable[[RunConfig], None]] = {
    "sklearn": check_sklearn_config,
}


def check_protocol_config(name: str, config: RunConfig) -> None:
    """Raise ConfigError when `config` asks for something protocol `name` cannot do."""
    check = PROTOCOL_CONFIG_CHECKS.get(name)
    if check is not None:
        check(config)


def run_protocol(name: str, ctx: RecipeContext) -> FitResult:
    """Run the protocol `name` on `ctx`."""
    if name not in PROTOCOLS:
        raise ConfigError(
            f"Unknown training protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}."
        )
    return PROTOCOLS[name](ctx)
