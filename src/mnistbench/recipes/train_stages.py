"""Stage kinds that train the model through the engine: cross-entropy, a pretext objective,
contrastive divergence for one RBM."""

from __future__ import annotations

import torch

from mnistbench.artefacts import image_grid_png
from mnistbench.config import RunConfig
from mnistbench.data import DeviceData
from mnistbench.engine import FitResult, autocast_factory
from mnistbench.engine.compile import (
    batch_input_shape,
    batch_sizes,
    compile_for_training,
    compile_wrapper,
)
from mnistbench.objectives import CrossEntropyObjective, Objective
from mnistbench.objectives.contrastive_divergence import ContrastiveDivergenceObjective
from mnistbench.recipes.kinds import (
    EVAL_BATCH_SIZE,
    StageKind,
    StageRun,
    held_out_images,
    options_for,
    register_stage_kind,
    stage_config,
    stage_inputs,
)
from mnistbench.recipes.spec import Stage

PICTURE_IMAGES = 64  # held-out images an objective may draw its pictures from


def store_pictures(run: StageRun, objective: Objective) -> None:
    """The objective's pictures of held-out images, as grey PNG artefacts."""
    for name, grid in objective.pictures(held_out_images(run.data, PICTURE_IMAGES)[0]).items():
        run.ctx.add_artefact(name, "png", image_grid_png(grid))


def _cross_entropy(run: StageRun) -> FitResult:
    """The whole model trained on labels with the run's optimizer, schedule and precision."""
    config, data = run.config, run.data
    objective = CrossEntropyObjective(
        run.model, label_smoothing=config.label_smoothing, **run.inputs().precision_kwargs()
    )
    if config.compile:
        # every batch shape compiled here, timed apart, so no epoch pays for compilation
        objective.model, compile_s = compile_for_training(
            run.model,
            batch_input_shape(data.train),
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
        run.record(compile_time_s=compile_s, compile_wrapper=compile_wrapper(config.device))
    return run.fit(objective)


def pretext_objective(
    stage: Stage, model: torch.nn.Module, data: DeviceData, config: RunConfig
) -> Objective:
    """The objective a pretext stage trains with: its class's `for_stage`, told about the run
    and given the stage's options from `config.model_options` (or their defaults)."""
    return stage.params["objective"].for_stage(
        model, stage_inputs(config, data), **options_for(stage, config.options())
    )


def _pretext(run: StageRun) -> FitResult:
    """Label-free training with the stage's objective (its options from --model-option);
    pictures of what it learned once it finished."""
    config = stage_config(run.ctx.config, run.stage, early_stopping_patience=None)  # no accuracy
    objective = pretext_objective(run.stage, run.model, run.data, config)
    fitted = run.fit(objective, config=config)
    run.record(**{f"{run.stage.name}_objective": objective.name})
    if fitted.status == "finished":
        store_pictures(run, objective)
    return fitted


def _contrastive_divergence(run: StageRun) -> FitResult:
    """CD-k on one RBM (its plain rule: constant rate, no accuracy to stop on)."""
    layer, lr, k = (run.stage.params[key] for key in ("layer", "lr", "k"))
    sample_visible = bool(run.stage.params.get("sample_visible", True))
    config = stage_config(run.ctx.config, run.stage, scheduler="none", early_stopping_patience=None)
    objective = ContrastiveDivergenceObjective(
        run.model, layer, k=k, lr=lr, seed=config.seed + 10 * layer, sample_visible=sample_visible
    )
    fitted = run.fit(objective, config=config)
    run.record(cd_lr=lr, cd_gibbs_steps=k, cd_sample_visible=sample_visible)
    if fitted.status == "finished":
        store_pictures(run, objective)
    return fitted


register_stage_kind(
    StageKind("cross_entropy", _cross_entropy, labelled=True, supports_compile=True)
)
register_stage_kind(
    StageKind("pretext", _pretext, labelled=False, requires=("head", "forward_features"))
)
register_stage_kind(
    StageKind(
        "contrastive_divergence",
        _contrastive_divergence,
        labelled=False,
        requires=("rbms", "visible_input"),
    )
)
