"""The one stage runner: runs a recipe's stages in order and applies what the recipe declares.

For every recipe the runner decides the same things the same way: which stages this run's
options pick, the test policy of each stage (every epoch, or, for records, a sealed test that
only the last labelled stage opens, once), per-stage figures, and the headline (the declared
stage's median epoch is the run's time per epoch, its epochs the run's epochs).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import torch

from mnistbench.config import RunConfig
from mnistbench.engine import FitResult
from mnistbench.engine.loop import EpochRecord
from mnistbench.errors import ConfigError
from mnistbench.options import OptionValue
from mnistbench.recipes.kinds import (
    TEST_POLICIES,
    RecipeContext,
    StageKind,
    StageRun,
    get_stage_kind,
    options_for,
    recipe_options,
    stage_config,
    stage_requirements,
)
from mnistbench.recipes.log import StageLog
from mnistbench.recipes.spec import Recipe, Stage


def resolve_options(
    recipe: Recipe, options: Mapping[str, OptionValue], owner: str
) -> dict[str, OptionValue]:
    """Every option the recipe declares, valued from `options` or its default, each checked
    (wrong type, unknown choice, out of range: ConfigError naming the option)."""
    declared = recipe_options(recipe)
    return {
        name: option.validate(options[name], owner) if name in options else option.default
        for name, option in declared.items()
    }


def stages_of(recipe: Recipe, config: RunConfig) -> tuple[Stage, ...]:
    """The stages `config` runs: the recipe's, or the variant its options pick."""
    return recipe.stages_for(resolve_options(recipe, config.options(), config.model))


def check_model_for_recipe(recipe: Recipe, config: RunConfig, model: torch.nn.Module) -> None:
    """Raise ConfigError, before a run's row exists, when the model lacks what a stage of its
    recipe uses (the probe's `head`, a VAE objective's `encode`, an SVM's `fit_estimator`)."""
    for stage in stages_of(recipe, config):
        missing = [name for name in stage_requirements(stage) if not hasattr(model, name)]
        if missing:
            raise ConfigError(
                f"Model {config.model} cannot run its recipe's {stage.name!r} stage "
                f"({stage.kind}): the stage needs the model to have {', '.join(missing)}. "
                "Give the model those, or use another recipe (--recipe-of NAME)."
            )


def check_recipe_config(recipe: Recipe, config: RunConfig) -> None:
    """Raise ConfigError, before a run's row exists, for settings the recipe's stages cannot
    honour (an SVM trained for several epochs, --compile of a pretext objective)."""
    kinds = [get_stage_kind(stage.kind) for stage in stages_of(recipe, config)]
    for kind in kinds:
        if kind.check is not None:
            kind.check(config)
    if config.compile and not all(kind.supports_compile for kind in kinds):
        unsupported = ", ".join(sorted({k.name for k in kinds if not k.supports_compile}))
        raise ConfigError(
            f"--compile is not supported for {config.model}: its recipe runs stages "
            f"({unsupported}) that train other parts of the model than one compiled forward "
            "pass. Run it without --compile."
        )


def _test_of(policy: str, kind: StageKind, final: bool) -> str:
    if not kind.labelled:
        return "none"
    if policy == "every_epoch":
        return "every_epoch"
    return "final" if final else "none"  # earlier labelled stages never see a sealed test


def stage_metrics(stage: Stage, kind: StageKind, log: StageLog) -> dict[str, object]:
    """Epochs, total and median training seconds, final loss (and, for a labelled stage, the
    final test accuracy) of one stage: `<stage>_epochs`, `<stage>_total_s`, ..."""
    records = log.of(stage.name)
    times = [r.train_time_s for r in records]
    metrics: dict[str, object] = {
        f"{stage.name}_epochs": len(records),
        f"{stage.name}_total_s": sum(times),
        f"{stage.name}_time_per_epoch_s": statistics.median(times) if times else None,
        f"{stage.name}_final_loss": records[-1].train_loss if records else None,
    }
    if kind.labelled:
        metrics[f"{stage.name}_test_accuracy"] = records[-1].test_accuracy if records else None
    return metrics


def headline_metrics(
    headline: Sequence[EpochRecord], label_free: Sequence[EpochRecord], train_size: int
) -> dict[str, object]:
    """The run's time per epoch, epochs and throughput from its headline stage alone (the
    engine's summary over every row would mix stages), and the label-free stages' seconds."""
    total_s = sum(r.train_time_s for r in headline)
    metrics: dict[str, object] = {
        "time_per_epoch_s": statistics.median(r.train_time_s for r in headline)
        if headline
        else None,
        # "epochs" of a run are what --epochs sets: the headline stage's
        "epochs_completed": len(headline),
        "train_images_per_s": train_size * len(headline) / total_s if total_s else None,
    }
    if label_free:
        metrics["pretrain_total_s"] = sum(r.train_time_s for r in label_free)
    return metrics


def run_recipe(ctx: RecipeContext, recipe: Recipe) -> FitResult:
    """Run `recipe`'s stages on `ctx`; rows go to `ctx.on_epoch` as they land, figures to
    `ctx.metrics`. Stops at the first stage that does not finish (diverged), with its status.
    """
    if ctx.test_policy not in TEST_POLICIES:
        raise ValueError(f"test_policy must be one of {TEST_POLICIES}, got {ctx.test_policy!r}")
    options = resolve_options(recipe, ctx.options, ctx.config.model)
    stages = recipe.stages_for(options)
    kinds = [get_stage_kind(stage.kind) for stage in stages]
    staged = sum(kind.records_epochs for kind in kinds) > 1
    log = StageLog(ctx.on_epoch, staged)
    final = max(i for i, kind in enumerate(kinds) if kind.labelled)
    headline = recipe.headline_of(stages)
    result = FitResult(status="finished")
    for index, (stage, kind) in enumerate(zip(stages, kinds, strict=True)):
        if not kind.uses_features:
            ctx.shared.pop("features", None)  # features are of the model as it was
        run = StageRun(
            stage=stage,
            ctx=ctx,
            config=stage_config(ctx.config, stage),
            options=options_for(stage, options),
            test=_test_of(ctx.test_policy, kind, index == final),
            log=log,
            labelled=kind.labelled,
        )
        fitted = kind.run(run)
        if staged and kind.records_epochs:
            ctx.record(**stage_metrics(stage, kind, log))
        result.last_test = fitted.last_test or result.last_test
        improved = fitted.best_val_accuracy > result.best_val_accuracy
        if kind.labelled and fitted.best_val_test is not None and improved:
            result.best_val_test = fitted.best_val_test
            result.best_val_accuracy = fitted.best_val_accuracy
        result.train_cpu_s += fitted.train_cpu_s
        if stage.name == headline:
            result.stopped_early = fitted.stopped_early
        if fitted.status != "finished":
            result.status, result.message = fitted.status, fitted.message
            break
    result.epochs = list(log.records)
    if staged:
        label_free = [
            r for s, k in zip(stages, kinds, strict=True) if not k.labelled for r in log.of(s.name)
        ]
        ctx.record(
            **headline_metrics(log.of(headline), label_free, len(ctx.data.train)),
            stage_epochs_recorded=len(log.records),
        )
    return result
