"""Recipes as data: an ordered tuple of stages plus the run settings they default to.

A model's registration declares its recipe (`register_model(recipe=Recipe(...))`); the stage
runner (`recipes.runner.run_recipe`) interprets it through the stage kinds registered in
`recipes.kinds`. A plain dict of settings is the one-stage supervised recipe with those
defaults. Nothing here trains; model files import this module to declare their recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mnistbench.options import OptionValue, StageOption

if TYPE_CHECKING:
    from mnistbench.objectives.base import Objective


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe: a kind of training (`recipes.kinds.STAGE_KINDS`) and its budget.

    `params` are fixed by the recipe (the pretext objective, the RBM layer, the probe's
    learning rate); `--model-option`s the stage's kind or objective declares come on top.
    """

    name: str  # recorded with each of the stage's epochs: "pretrain", "probe", "finetune"
    kind: str  # "cross_entropy", "pretext", "linear_probe", ...
    epochs: int | None = None  # None: the run config's epochs (what --epochs sets)
    params: Mapping[str, Any] = field(default_factory=dict)

    def card(self, options: Mapping[str, OptionValue]) -> dict[str, Any]:
        """JSON-ready description for the model card (objective classes by name)."""
        values = {
            k: getattr(v, "name", v) if isinstance(v, type) else v for k, v in self.params.items()
        }
        return {
            "name": self.name,
            "kind": self.kind,
            "epochs": self.epochs,
            "options": {**values, **options},
        }


def cross_entropy(name: str = "train", epochs: int | None = None) -> Stage:
    """Supervised training of the whole model with the run's optimizer and schedule."""
    return Stage(name, "cross_entropy", epochs)


def pretext(objective: type[Objective], name: str = "pretrain", epochs: int | None = None) -> Stage:
    """Label-free training of everything but the probe head with `objective` (a PretextObjective
    or any Objective class; its `options` become the stage's `--model-option`s)."""
    return Stage(name, "pretext", epochs, {"objective": objective})


def contrastive_divergence(
    layer: int, name: str, epochs: int, lr: float, gibbs_steps: int, sample_visible: bool = True
) -> Stage:
    """CD-k on RBM `layer` of a DBN-like model (objectives.contrastive_divergence); the visible
    reconstruction binary (`sample_visible`) or its probabilities."""
    params = {"layer": layer, "lr": lr, "k": gibbs_steps, "sample_visible": sample_visible}
    return Stage(name, "contrastive_divergence", epochs, params)


def linear_probe(name: str = "probe", epochs: int = 10, grad_clip: float | None = None) -> Stage:
    """`model.head` trained on features extracted once from the frozen model; study A's probes
    do not clip gradients (`grad_clip` None, recorded in the model card's stages)."""
    return Stage(name, "linear_probe", epochs, {"grad_clip": grad_clip})


def lightgbm_probe(name: str = "probe") -> Stage:
    """LightGBM fitted on the extracted features (the published SimSiam probe)."""
    return Stage(name, "lightgbm_probe")


def sklearn_fit(name: str = "fit") -> Stage:
    """The model's scikit-learn estimator fitted once and scored like one epoch."""
    return Stage(name, "sklearn_fit")


def spike_activity(name: str = "spike_activity") -> Stage:
    """Firing rates per layer and a spike raster of the trained spiking model."""
    return Stage(name, "spike_activity")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: stages in order, plus the RunConfig values they default to.

    `headline` names the stage whose median epoch is the run's `time_per_epoch_s` and whose
    epochs are its `epochs_completed` (default: the first stage whose epochs follow --epochs).
    `variant` is an option choosing among alternative stage tuples: `variants[value]`, or
    `stages` for its default (SimSiam's probe=linear drops the LightGBM stage).
    """

    stages: tuple[Stage, ...] = (cross_entropy(),)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # RunConfig field -> value
    headline: str | None = None
    variant: StageOption | None = None
    variants: Mapping[OptionValue, tuple[Stage, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stages in (self.stages, *self.variants.values()):
            names = [s.name for s in stages]
            if len(set(names)) != len(names):
                raise ValueError(f"recipe stage names repeat: {names}")
            headline = self.headline_of(stages)
            if headline not in names:
                raise ValueError(f"recipe headline stage {headline!r} is not one of {names}")
        if bool(self.variants) != (self.variant is not None):
            raise ValueError("a recipe's variants need a variant option, and the reverse")

    def headline_of(self, stages: tuple[Stage, ...]) -> str:
        if self.headline is not None:
            return self.headline
        follows = [s.name for s in stages if s.epochs is None]
        return follows[0] if follows else stages[-1].name

    def stages_for(self, options: Mapping[str, OptionValue]) -> tuple[Stage, ...]:
        """The stages this run runs: the variant its options pick, else `stages`."""
        if self.variant is None:
            return self.stages
        return self.variants.get(options.get(self.variant.name, self.variant.default), self.stages)

    def with_defaults(self, defaults: Mapping[str, Any]) -> Recipe:
        return Recipe(self.stages, dict(defaults), self.headline, self.variant, self.variants)


SUPERVISED = Recipe()  # one cross-entropy stage "train" and the RunConfig defaults


def as_recipe(recipe: Recipe | Mapping[str, Any] | None) -> Recipe:
    """A registration's `recipe=`: a Recipe, or a dict of defaults for the supervised one."""
    if isinstance(recipe, Recipe):
        return recipe
    return SUPERVISED.with_defaults(recipe or {})
