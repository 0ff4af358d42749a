"""Suites and sweeps as trials: a plan file (experiments/plan_format.py) expanded over its
entries, points, devices and seeds, with the command line's settings on top.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mnistbench.errors import ConfigError, MnistbenchError
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.plan import Trial, trial_tag
from mnistbench.experiments.plan_format import Entry, Sweep, load_sweep, parse_plan

__all__ = ["Sweep", "SweepPlan", "load_sweep", "parse_plan", "plan_sweep", "present_devices"]


@dataclass
class SweepPlan:
    """A plan's trials for one invocation, and what was left out and why."""

    sweep: Sweep
    trials: list[Trial] = field(default_factory=list)
    skipped_models: list[str] = field(default_factory=list)  # not registered (missing = skip)
    devices: list[str] = field(default_factory=list)


class _LabelFormatter(string.Formatter):
    """str.format for labels, where `{lr:e}` writes a number as 1e-3 (not 1.000000e-03)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "e" and isinstance(value, (int, float)):
            return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
        return super().format_field(value, format_spec)


def _label(plan: Sweep, entry: Entry, values: dict[str, Any], point: dict[str, Any]) -> str:
    template = entry.label if entry.label is not None else plan.label
    if template is None:
        return " ".join(f"{k}={v}" for k, v in point.items())
    try:
        return _LabelFormatter().format(template, **values)
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"{plan.path}: the label {template!r} cannot be written: {error!r} is not a setting "
            "of the trial (write {field} or {field:e} with RunConfig field names)."
        ) from None


def _registered(model: str) -> bool:
    # An outside model spec (file.py:fn, module:fn) is resolved, never skipped as missing.
    from mnistbench.models import list_models

    return ":" in model or model in {info.name for info in list_models()}


def present_devices() -> list[str]:
    """Every device type this machine's PyTorch can train on, CPU first."""
    from mnistbench.engine.device import resolve_device

    devices = ["cpu"]
    for kind in ("cuda", "mps"):
        try:
            devices.append(resolve_device(kind))
        except ConfigError:
            continue
    return devices


def plan_sweep(
    sweep: Sweep,
    *,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    seeds: int | None = None,
) -> SweepPlan:
    """The trials of a plan: every entry x point x device x seed, in that order.

    `overrides` (the command line's run settings; None values ignored) win over the file, so
    `--epochs 1` turns any plan into a quick look; `seeds` (default the plan's) runs each
    trial with seeds seed .. seed+N-1. Invalid values name the file and the trial. Trials
    that become identical (3 vs 5 epochs under --epochs 1) are merged by the driver.
    """
    from mnistbench.engine.device import resolve_device

    seeds = sweep.seeds if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"Invalid --seeds {seeds}: give 1 or more seeds.")
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    knobs = {k: v for k, v in extra.items() if k != "seed"}
    per_device = sweep.per_device and device == "auto"
    plan = SweepPlan(sweep, devices=present_devices() if per_device else [resolve_device(device)])
    for entry in sweep.entries:
        for point in sweep.points(entry):
            written = {**sweep.fixed, **entry.settings, **point}
            values = {**written, **extra}
            model = values.pop("model")
            if sweep.missing_models == "skip" and not _registered(model):
                plan.skipped_models += [] if model in plan.skipped_models else [model]
                continue
            # the label says what the trial runs: the command line's settings included
            label = _label(sweep, entry, {**written, **knobs}, point)
            tag_label = label
            first_seed = values.pop("seed", 0)
            for run_device in [values.pop("device")] if "device" in values else plan.devices:
                if sweep.per_device:  # the device tells its trials apart
                    label = " ".join(x for x in (tag_label, run_device) if x)
                for seed in range(first_seed, first_seed + seeds):
                    try:
                        config = make_config(
                            model, device=resolve_device(run_device), seed=seed, **values
                        )
                    except MnistbenchError as error:
                        trial = {**entry.settings, **point}
                        where = ", ".join(f"{k}={v!r}" for k, v in trial.items()) or "every trial"
                        raise ConfigError(
                            f"{sweep.path}: the trial with {where}: {error}"
                        ) from None
                    tag = _tag(sweep, point, tag_label, seed, knobs)
                    plan.trials.append(Trial(config, label, tag))
    return plan


def keep_models(plan: SweepPlan, models: Sequence[str]) -> SweepPlan:
    """A copy of the plan with the trials of `models` alone (e.g. the rows a table still misses,
    or the ones a GPU should train); a name the plan does not train is a ConfigError naming the
    ones it does. `plan` is left as it was."""
    planned = list(dict.fromkeys(t.config.model for t in plan.trials))
    unknown = [m for m in models if m not in planned]
    if unknown:
        raise ConfigError(
            f"Invalid --models {','.join(unknown)}: {plan.sweep.name} trains no such model. "
            f"Give a comma-separated list of its models: {', '.join(planned)}."
        )
    return replace(plan, trials=[t for t in plan.trials if t.config.model in models])


def _tag(sweep: Sweep, point: dict, label: str, seed: int, knobs: dict) -> tuple[str, str]:
    """The membership artefact, as each kind recorded it from its first version."""
    if sweep.kind == "suite":
        return trial_tag("suite", sweep.name, version=sweep.version, study=sweep.study,
                         label=label, seed=seed, knobs=knobs)  # fmt: skip
    return trial_tag("sweep", sweep.name, file=str(sweep.path), point=json.loads(json.dumps(point)))
