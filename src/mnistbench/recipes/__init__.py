"""Recipes: how a model is trained, declared as data and run by one stage runner.

A recipe (`spec.Recipe`) is an ordered tuple of stages plus the run settings it defaults to;
each stage names a kind (`kinds.STAGE_KINDS`) the runner (`runner.run_recipe`) dispatches to.
Importing this package registers the built-in stage kinds.
"""

from mnistbench.recipes import (  # noqa: F401  (registration side effect: the built-in kinds)
    probe_stages,
    sklearn_stage,
    spiking_stage,
    train_stages,
)
from mnistbench.recipes.kinds import (
    STAGE_KINDS,
    RecipeContext,
    StageKind,
    StageRun,
    get_stage_kind,
    held_out_images,
    recipe_options,
    register_stage_kind,
)
from mnistbench.recipes.log import StageEpochRecord, StageLog
from mnistbench.recipes.runner import (
    check_model_for_recipe,
    check_recipe_config,
    resolve_options,
    run_recipe,
    stage_metrics,
    stages_of,
)
from mnistbench.recipes.spec import (
    SUPERVISED,
    Recipe,
    Stage,
    as_recipe,
    contrastive_divergence,
    cross_entropy,
    lightgbm_probe,
    linear_probe,
    pretext,
    sklearn_fit,
    spike_activity,
)

__all__ = [
    "STAGE_KINDS",
    "SUPERVISED",
    "Recipe",
    "RecipeContext",
    "Stage",
    "StageEpochRecord",
    "StageKind",
    "StageLog",
    "StageRun",
    "as_recipe",
    "check_model_for_recipe",
    "check_recipe_config",
    "contrastive_divergence",
    "cross_entropy",
    "get_stage_kind",
    "held_out_images",
    "lightgbm_probe",
    "linear_probe",
    "pretext",
    "recipe_options",
    "register_stage_kind",
    "resolve_options",
    "run_recipe",
    "sklearn_fit",
    "spike_activity",
    "stage_metrics",
    "stages_of",
]
