"""Speed and efficiency records (`mnistbench speedrun`): time-to-accuracy and parameter budget.

A speedrun is a plan of N seeds of the track's recipe with the final-score-only test policy:
each seed is a normal stored run (experiments/batch.py) whose test split stays sealed until its
one final score. The rules of docs/speedrun.md are enforced here: every requested seed counts
(a seed that failed, diverged or never ran is a miss at 0% accuracy), the machine identity
includes SIMD level and native bf16, the budget counts every number the model stores, and each
run records how its recipe was chosen. Presentation (summary lines, the records table) is the
CLI's (cli/speedrun.py): training code never imports the report package.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from mnistbench.config import RunConfig
from mnistbench.errors import ConfigError, MnistbenchError
from mnistbench.experiments.batch import Session, run_trials
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.machine import machine_of
from mnistbench.experiments.plan import Trial
from mnistbench.experiments.speedrun_recipes import (
    Recipe,
    check_budget,
    model_parameters,
    native_precision,
    pick_params_recipe,
    pick_time_recipe,
)

if TYPE_CHECKING:
    from mnistbench.store import Store

TRACKS = ("time", "params")
DEFAULT_PARAMS_BUDGET = 5_000  # the parameter track's published goal: <= 5,000 numbers
DEFAULT_TARGETS = {"time": 0.99, "params": 0.994}  # fractions of the test set
MISS_ACCURACY = 0.0  # what a seed that did not finish counts as (rule: every seed counts)


@dataclass
class SeedResult:
    """One seed of a speedrun: a stored run, scored once on test at the end."""

    seed: int
    run_id: int | None
    status: str  # finished | diverged | failed | interrupted | not run
    test_accuracy: float | None  # None unless the seed finished
    train_time_s: float | None  # sum of the epochs' training time (device synchronised)
    compile_time_s: float | None  # torch.compile warm-up, not part of training time
    eval_time_s: float | None  # validation passes and the one test pass
    data_prepare_s: float | None  # split, scale, move to the device (per run)
    epochs: int | None
    machine: str
    error: str | None = None

    @property
    def counted_accuracy(self) -> float:
        """What the seed counts as in the record: its final score, or a miss at 0%."""
        finished = self.status == "finished" and self.test_accuracy is not None
        return self.test_accuracy if finished else MISS_ACCURACY  # type: ignore[return-value]


@dataclass
class SpeedrunResult:
    """A track's outcome over every requested seed, with the one-time costs kept apart."""

    track: str
    dataset: str
    target: float
    model: str
    params: int  # every parameter and persistent buffer (`model_parameters`)
    budget: int | None
    config: RunConfig  # seed 0's; seeds differ only in `seed`
    dataset_load_s: float  # reading and verifying the IDX files, once for all seeds
    seeds: list[SeedResult]
    chosen_on: str = ""

    @property
    def machine(self) -> str:
        return same_machine([s.machine for s in self.seeds if s.run_id is not None])

    def accuracies(self) -> list[float]:
        """Every requested seed's counted accuracy (a miss is 0%)."""
        return [s.counted_accuracy for s in self.seeds]

    def train_times(self) -> list[float]:
        """Training times of the seeds that finished."""
        return [s.train_time_s for s in self.seeds if s.status == "finished" and s.train_time_s]

    def misses(self) -> list[SeedResult]:
        return [s for s in self.seeds if s.status != "finished"]

    @property
    def reached(self) -> int:
        return sum(a >= self.target for a in self.accuracies())

    @property
    def success_rate(self) -> float:
        """Seeds at or above the target / seeds requested (a miss counts as a failure)."""
        return self.reached / len(self.seeds) if self.seeds else 0.0

    def success_ci95(self) -> tuple[float, float] | None:
        """The success rate's 95% Wilson interval (3 of 3 seeds is 44-100%, not 100%)."""
        from mnistbench.statistics import wilson_interval  # scipy: loaded when a record is read

        return wilson_interval(self.reached, len(self.seeds)) if self.seeds else None

    def times_to_target(self) -> list[float]:
        """Training times of the seeds that finished at or above the target."""
        return [
            s.train_time_s
            for s in self.seeds
            if s.status == "finished" and s.train_time_s and s.counted_accuracy >= self.target
        ]

    @property
    def target_met(self) -> bool:
        """The record's criterion: mean final test accuracy over all seeds >= target."""
        return statistics.fmean(self.accuracies()) >= self.target

    def to_dict(self) -> dict[str, object]:
        """The figures as plain JSON values (`mnistbench speedrun --json`, the benchmark)."""
        from mnistbench.statistics import time_to_target_figures

        acc, times = self.accuracies(), self.train_times()
        compile_s = [s.compile_time_s for s in self.seeds if s.compile_time_s is not None]
        return {
            "track": self.track,
            "dataset": self.dataset,
            "target": self.target,
            "model": self.model,
            "params": self.params,
            "budget": self.budget,
            "config": self.config.to_dict(),
            "chosen_on": self.chosen_on,
            "machine": self.machine,
            "seeds": len(self.seeds),
            "misses": len(self.misses()),
            "reached": self.reached,
            "target_met": self.target_met,
            "accuracy_mean": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else None,
            "train_time_mean_s": statistics.fmean(times) if times else None,
            "train_time_std_s": statistics.stdev(times) if len(times) > 1 else None,
            "success_rate": self.success_rate,
            "success_rate_ci95": (lambda ci: list(ci) if ci else None)(self.success_ci95()),
            **time_to_target_figures(self.times_to_target()),  # median and IQR beside the mean
            "compile_time_mean_s": statistics.fmean(compile_s) if compile_s else None,
            "dataset_load_s": self.dataset_load_s,
            "trials": [asdict(s) for s in self.seeds],
        }


def same_machine(machines: Sequence[str]) -> str:
    """The one machine of a set of figures; MnistbenchError when they come from several."""
    distinct = sorted(set(machines))
    if len(distinct) > 1:
        raise MnistbenchError(
            "These speedrun figures come from different machines and cannot be compared in "
            f"one table: {'; '.join(distinct)}. Rerun them on one machine (the rules ask for "
            "the same machine for every compared figure), or report them in separate tables."
        )
    return distinct[0] if distinct else "?"


def build_config(
    track: str,
    dataset: str,
    target: float | None,
    device: str,
    budget: int | None,
    model: str | None = None,
    settings: dict[str, object] | None = None,
    recipe_of: str | None = None,
) -> tuple[RunConfig, float, int | None, Recipe]:
    """(seed-0 config, target, budget, recipe) for a track; ConfigError on bad input or over
    budget. `model` and `settings` replace the listed recipe (exploring a new one)."""
    if track not in TRACKS:
        raise ConfigError(f"Unknown --track {track!r}; choose one of {', '.join(TRACKS)}.")
    target = DEFAULT_TARGETS[track] if target is None else target
    if not 0 < target <= 1:
        raise ConfigError(f"Invalid --target {target!r}: a fraction in (0, 1], e.g. 0.99.")
    exploring = "exploring: --model/--set given on the command line"
    if track == "time":
        recipe = Recipe(model, {}, exploring) if model else pick_time_recipe(dataset, target)[1]
        recipe = native_precision(recipe, device)
        budget = None
    else:
        budget = DEFAULT_PARAMS_BUDGET if budget is None else budget
        if budget < 1:
            raise ConfigError(f"Invalid --budget-params {budget}: a positive parameter count.")
        listed = None if model else pick_params_recipe(dataset, budget)
        recipe = listed or Recipe(model or "", {"val_size": 5000}, exploring)  # type: ignore[arg-type]
    if settings and recipe.chosen_on != exploring:
        recipe = replace(recipe, chosen_on=f"{exploring} (over: {recipe.chosen_on})")
    config = make_config(
        recipe.model, device=device, recipe_of=recipe_of, dataset=dataset,
        target_accuracy=target, seed=0, test_policy="final_only",
        **{**recipe.settings, **(settings or {})},
    )  # fmt: skip
    if budget is not None:
        check_budget(config, budget)
    return config, target, budget, recipe


@dataclass(frozen=True)
class SpeedrunPlan:
    """A track's seeds as trials: the recipe's config with seeds 0..N-1, test sealed."""

    track: str
    dataset: str
    target: float
    budget: int | None
    recipe: Recipe
    config: RunConfig  # seed 0's
    trials: tuple[Trial, ...]


def plan_speedrun(
    *,
    track: str = "time",
    dataset: str = "mnist",
    target: float | None = None,
    seeds: int = 5,
    device: str = "cpu",
    budget: int | None = None,
    model: str | None = None,
    settings: dict[str, object] | None = None,
    recipe_of: str | None = None,
) -> SpeedrunPlan:
    """The trials of a speedrun; ConfigError on bad input or a model over budget, before
    anything is loaded or recorded. Each trial records how its recipe was chosen."""
    if seeds < 1:
        raise ConfigError(f"Invalid --seeds {seeds}: at least 1.")
    config, target, budget, recipe = build_config(
        track, dataset, target, device, budget, model=model, settings=settings, recipe_of=recipe_of
    )
    choice = {"track": track, "target": target, "budget": budget, "model": recipe.model,
              "settings": recipe.settings, "chosen_on": recipe.chosen_on}  # fmt: skip
    trials = tuple(
        Trial(replace(config, seed=seed), f"seed {seed}", ("speedrun", json.dumps(choice)))
        for seed in range(seeds)
    )
    return SpeedrunPlan(track, dataset, target, budget, recipe, config, trials)


def run_speedrun(
    plan: SpeedrunPlan, store: Store, session: Session | None = None
) -> SpeedrunResult:
    """Train every seed of `plan`, each a fresh stored run scored once on test at the end
    (always trained again: a record is a new measurement on this machine), and return the
    figures over every requested seed."""
    from mnistbench.data import load_dataset

    session = session or Session(progress=False)
    started = time.perf_counter()
    raw = load_dataset(
        plan.dataset, data_dir=session.data_dir, download=session.download,
        progress=session.progress,
    )  # fmt: skip
    dataset_load_s = time.perf_counter() - started
    summary = run_trials(
        plan.trials,
        store,
        replace(session, measure_energy=False),  # CodeCarbon's sampling thread shares the cores
        force=True,
        raws={plan.dataset: raw},
        desc=f"speedrun {plan.track}",
    )
    by_seed = {r.trial.config.seed: r for r in summary.results}
    config = plan.config
    return SpeedrunResult(
        track=plan.track,
        dataset=plan.dataset,
        target=plan.target,
        model=config.model,
        params=model_parameters(config.model, **config.options()),
        budget=plan.budget,
        config=config,
        dataset_load_s=dataset_load_s,
        seeds=[_seed_result(t.config.seed, by_seed.get(t.config.seed)) for t in plan.trials],
        chosen_on=plan.recipe.chosen_on,
    )


def _seed_result(seed: int, result) -> SeedResult:
    if result is None or result.record is None:
        return SeedResult(seed, None, "not run", None, None, None, None, None, None, "?")
    record, m = result.record, result.record.metrics
    return SeedResult(
        seed=seed,
        run_id=record.run_id,
        status=record.status,
        test_accuracy=m.get("test_accuracy") if record.status == "finished" else None,
        train_time_s=m.get("total_train_time_s"),
        compile_time_s=m.get("compile_time_s"),
        eval_time_s=m.get("total_eval_time_s"),
        data_prepare_s=m.get("data_load_s"),
        epochs=m.get("epochs_completed"),
        machine=machine_of(record.environment),
        error=record.error,
    )
