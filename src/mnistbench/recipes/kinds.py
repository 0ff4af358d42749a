"""Stage kinds: what each kind of recipe stage does, registered by name.

A kind is a function `run(StageRun) -> FitResult` plus what the runner must know about it:
whether it reads labels (the test policy applies to the last such stage), which
`--model-option`s it reads, what it needs of the model, and which settings it cannot honour.
The built-in kinds live in train_stages, probe_stages, sklearn_stage and spiking_stage; a new
kind is one `register_stage_kind(StageKind(...))` in any module the model's file imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from mnistbench.config import RunConfig
from mnistbench.data import DeviceData
from mnistbench.engine import FitResult, autocast_factory, final_test, fit
from mnistbench.errors import ConfigError
from mnistbench.objectives.base import Objective, StageInputs
from mnistbench.options import OptionValue, StageOption
from mnistbench.recipes.log import StageLog
from mnistbench.recipes.spec import Recipe, Stage

EVAL_BATCH_SIZE = 1000  # images per evaluation batch (no gradients, so larger than training)
TEST_POLICIES = ("every_epoch", "final_only")  # stored as the run's `test_protocol` metric


@dataclass
class RecipeContext:
    """Everything a recipe's stages share: the model, the data, the run's settings and where
    rows, artefacts and metrics go."""

    model: torch.nn.Module
    data: DeviceData
    config: RunConfig
    on_epoch: Callable[[Any], None]  # EpochRecord -> the listener
    add_artefact: Callable[[str, str, bytes | str], None]  # (name, kind, content)
    progress: bool = True
    # "final_only" for records (mnistbench speedrun): the test split is sealed; the last
    # labelled stage scores the finished model on it once (engine.final_test).
    test_policy: str = "every_epoch"
    options: Mapping[str, OptionValue] = field(default_factory=dict)  # the stages' options
    metrics: dict[str, object] = field(default_factory=dict)  # figures for the run's metrics
    shared: dict[str, Any] = field(default_factory=dict)  # what stages pass on (features)

    def record(self, **metrics: object) -> None:
        """Add figures to the run's stored metrics."""
        self.metrics.update(metrics)


@dataclass
class StageRun:
    """One stage being run: its settings, options, test policy and the run's log."""

    stage: Stage
    ctx: RecipeContext
    config: RunConfig  # the run's settings, with the stage's epochs
    options: dict[str, OptionValue]  # the options this stage's kind and objective read
    test: str  # "every_epoch", "final" (score the sealed test once, at the end) or "none"
    log: StageLog
    labelled: bool

    @property
    def model(self) -> torch.nn.Module:
        return self.ctx.model

    @property
    def data(self) -> DeviceData:
        return self.ctx.data

    def record(self, **metrics: object) -> None:
        self.ctx.record(**metrics)

    def inputs(self, config: RunConfig | None = None) -> StageInputs:
        """What an objective is told about the run (precision, clipping, seed, scaling)."""
        return stage_inputs(config or self.config, self.data)

    def fit(
        self, objective: Objective, data: DeviceData | None = None, config: RunConfig | None = None
    ) -> FitResult:
        """`engine.fit` with this stage's test policy: every epoch, none, or (sealed) one
        final score written into the last row."""
        data, config = data or self.data, config or self.config
        result = fit(
            objective,
            data,
            config,
            on_epoch=self.log.callback(self.stage.name, self.labelled, objective.epoch_figures),
            progress=self.ctx.progress,
            eval_batch_size=EVAL_BATCH_SIZE,
            test_every_epoch=self.test == "every_epoch",
        )
        if self.test == "final" and result.status == "finished" and result.epochs:
            final_test(objective, data, result, eval_batch_size=EVAL_BATCH_SIZE)
            self.log.rescore(result.epochs[-1])
        return result


@dataclass(frozen=True)
class StageKind:
    """A kind of stage, as the runner sees it."""

    name: str
    run: Callable[[StageRun], FitResult]
    labelled: bool  # reads labels: its epochs have accuracies; the test policy applies
    records_epochs: bool = True  # False: an analysis after training (spike activity)
    options: tuple[StageOption, ...] = ()  # the --model-options it reads
    uses_features: bool = False  # reads the features shared by probe stages
    supports_compile: bool = False  # honours --compile
    fits_before_forward: bool = False  # the model answers forward() only once fitted
    requires: tuple[str, ...] = ()  # attributes the model must have (e.g. "head")
    # Settings it cannot honour, checked before a run's row exists (raises ConfigError).
    check: Callable[[RunConfig], None] | None = None


STAGE_KINDS: dict[str, StageKind] = {}


def register_stage_kind(kind: StageKind) -> StageKind:
    """Make `kind` available to recipes under `kind.name`; a name registered twice raises."""
    if kind.name in STAGE_KINDS:
        raise ValueError(f"stage kind {kind.name!r} is registered twice")
    STAGE_KINDS[kind.name] = kind
    return kind


def get_stage_kind(name: str) -> StageKind:
    if name not in STAGE_KINDS:
        raise ConfigError(f"Unknown stage kind {name!r}; known: {', '.join(sorted(STAGE_KINDS))}.")
    return STAGE_KINDS[name]


def stage_options(stage: Stage) -> tuple[StageOption, ...]:
    """The options a stage reads: its kind's, plus its objective's when it names one."""
    objective = stage.params.get("objective")
    return get_stage_kind(stage.kind).options + tuple(getattr(objective, "options", ()))


def stage_requirements(stage: Stage) -> tuple[str, ...]:
    """Attributes the model needs for a stage: its kind's, plus its objective's."""
    objective = stage.params.get("objective")
    return get_stage_kind(stage.kind).requires + tuple(getattr(objective, "requires", ()))


def recipe_options(recipe: Recipe) -> dict[str, StageOption]:
    """Every option a recipe's stages (in any variant) declare, by name."""
    declared: dict[str, StageOption] = {}
    if recipe.variant is not None:
        declared[recipe.variant.name] = recipe.variant
    for stages in (recipe.stages, *recipe.variants.values()):
        for stage in stages:
            for option in stage_options(stage):
                if declared.setdefault(option.name, option) != option:
                    raise ValueError(f"two stages declare option {option.name!r} differently")
    return declared


def check_recipe(recipe: Recipe) -> None:
    """Raise ValueError (at registration) for unknown stage kinds or no labelled stage."""
    recipe_options(recipe)  # unknown kinds raise here
    for stages in (recipe.stages, *recipe.variants.values()):
        if not any(get_stage_kind(s.kind).labelled for s in stages):
            raise ValueError(f"recipe {[s.name for s in stages]} has no stage that reads labels")


def stage_inputs(config: RunConfig, data: DeviceData) -> StageInputs:
    """What an objective is told about its run: precision (fp16 scales its gradients),
    clipping, seed, batch size and the data's size and scaling."""
    return StageInputs(
        autocast=autocast_factory(config.device, config.precision),
        grad_clip=config.grad_clip,
        scale_gradients=config.precision == "fp16",
        seed=config.seed,
        batch_size=config.batch_size,
        train_size=len(data.train),
        mean=data.mean,
        std=data.std,
    )


def options_for(stage: Stage, options: Mapping[str, OptionValue]) -> dict[str, OptionValue]:
    """The values of the options `stage` reads, from a run's `options` or their defaults."""
    return {
        o.name: o.validate(options[o.name], f"stage {stage.name}")
        if o.name in options
        else o.default
        for o in stage_options(stage)
    }


def stage_config(config: RunConfig, stage: Stage, **changes: Any) -> RunConfig:
    """The run's settings for one stage: its own epochs (None: the run's) and `changes`.

    Not validated again: the run's config was, and stages change it only to fixed values.
    """
    return replace(config, epochs=stage.epochs or config.epochs, **changes)


def held_out_images(data: DeviceData, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the first `count` validation images, for pictures and activity
    figures; the training split when there is no validation. Never the test split, which a
    speed record keeps sealed until its one final score."""
    split = data.val if data.val is not None else data.train
    return split.images[:count], split.labels[:count]
