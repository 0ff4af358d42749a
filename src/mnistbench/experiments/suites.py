"""Named, versioned suites: each published study (A-E, docs/studies.md) as a plan file.

A suite is a TOML file in `mnistbench/suites/`, in the one plan format of sweep files
(experiments/plan_format.py) with a [suite] header: its models, data sets, grid axes, labels
and per-entry settings. `plan_suite` expands it into trials, one per seed (defaults < the
model's recipe < the entry's settings < the user's). Models not registered yet are skipped
and named, so a suite runs with whatever the registry holds. Bump a suite's version when its
trials change: the version is recorded with each run (artefact "suite:NAME"), so a report can
tell old rows from new ones. `mnistbench suite FILE.toml` runs a suite of your own.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from mnistbench.errors import ConfigError
from mnistbench.experiments.plan_format import Sweep, load_sweep, parse_plan, tomllib
from mnistbench.experiments.sweeps import SweepPlan, plan_sweep, present_devices
from mnistbench.store import RunRecord, Store

Suite = Sweep  # a plan with a [suite] header
SuitePlan = SweepPlan

__all__ = ["SUITES", "Suite", "SuitePlan", "get_suite", "list_suites", "plan_suite",
           "present_devices", "suite_runs"]  # fmt: skip


def _builtin_suites() -> dict[str, Suite]:
    """The suites shipped in mnistbench/suites/*.toml, in study order."""
    folder = resources.files("mnistbench").joinpath("suites")
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".toml"):
            path = Path(str(item))
            found.append(parse_plan(tomllib.loads(item.read_text(encoding="utf-8")), path))
    return {suite.name: suite for suite in sorted(found, key=lambda s: (s.study, s.name))}


SUITES: dict[str, Suite] = _builtin_suites()


def list_suites() -> list[Suite]:
    return list(SUITES.values())


def get_suite(name: str) -> Suite:
    """The suite called `name`, or the plan file at `name` (*.toml); unknown names raise
    ConfigError with the closest ones."""
    if name.endswith(".toml"):
        return load_sweep(name)
    try:
        return SUITES[name]
    except KeyError:
        from mnistbench.models.registry import closest_names

        close = closest_names(name, list(SUITES))
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown suite {name!r}.{hint} Known suites: {', '.join(SUITES)} "
            "(`mnistbench suite --list` describes them), or pass a suite file, NAME.toml."
        ) from None


def plan_suite(
    suite: Suite,
    *,
    seeds: int | None = None,
    first_seed: int | None = None,
    epochs: int | None = None,
    subset: int | None = None,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> SuitePlan:
    """The trials of `suite`: every registered entry x seeds first_seed .. first_seed+seeds-1.

    `epochs` and `subset` are the quick-look knobs (every run trains that many epochs on that
    many images; `subset` also trims the test set, see `prepare_device_data`). `overrides`
    are further RunConfig fields applied to every entry (None values ignored). Entries that
    become identical (e.g. 3 vs 5 epochs under --epochs 1) are merged by the driver.
    """
    knobs = {"epochs": epochs, "subset": subset, **(overrides or {}), "seed": first_seed}
    return plan_sweep(suite, device=device, overrides=knobs, seeds=seeds)


def suite_runs(store: Store, name: str) -> list[RunRecord]:
    """The stored runs that a suite called `name` ran or reused (any version), by run id."""
    return [
        run
        for run in store.list_runs()
        if any(a.name == f"suite:{name}" for a in store.artefacts(run.run_id))
    ]
