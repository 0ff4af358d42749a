"""Sweeps from TOML files: a grid or a seeded random search over RunConfig fields.

    [sweep]
    name = "lr-search"        # recorded with every trial (artefact "sweep:NAME")
    method = "random"         # "grid" (every combination) or "random"
    trials = 8                # random only: configurations to draw
    seed = 0                  # random only: seed of the draw (training seeds are a field)

    [fixed]                   # RunConfig fields shared by every trial
    model = "mlp"
    epochs = 3

    [space]                   # grid: lists; random: lists (uniform choice) or distributions
    lr = { log_uniform = [1e-4, 1e-1] }
    batch_size = [64, 128]

Every trial's config is make_config(model, **fixed, **point, **command-line overrides); trials
are keyed by config hash, so a rerun skips what finished and an interrupted sweep resumes.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mnistbench.config import RunConfig, make_config
from mnistbench.engine.device import resolve_device
from mnistbench.errors import ConfigError, MnistbenchError
from mnistbench.experiments.executors import Trial, trial_tag
from mnistbench.models.registry import closest_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

SWEEP_KEYS = ("name", "description", "method", "trials", "seed")
TABLES = ("sweep", "fixed", "space")
METHODS = ("grid", "random")
DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int_uniform")
MAX_TRIALS = 10_000  # a grid larger than this is almost certainly a typo

# The kind of TOML value each RunConfig field takes ("model_options" is a table).
_FIELD_KINDS: dict[str, str] = {}
for _f in fields(RunConfig):
    _type = str(_f.type)
    _FIELD_KINDS[_f.name] = (
        "table"
        if _f.name == "model_options"
        else "bool"
        if _type == "bool"
        else "int"
        if _type.startswith("int")
        else "float"
        if _type.startswith("float")
        else "str"
    )


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file."""

    name: str
    path: Path
    method: str
    fixed: dict[str, Any]
    space: dict[str, Any]  # field -> list of values, or (random) {distribution: [a, b]}
    trials: int | None = None
    seed: int = 0
    description: str = ""

    def points(self) -> list[dict[str, Any]]:
        """The varying part of each trial, in order: grid combinations or random draws."""
        if self.method == "grid":
            keys = list(self.space)
            return [
                dict(zip(keys, values, strict=True))
                for values in itertools.product(*(self.space[k] for k in keys))
            ]
        rng = random.Random(self.seed)
        assert self.trials is not None
        return [
            {key: _draw(rng, spec) for key, spec in self.space.items()} for _ in range(self.trials)
        ]


@dataclass
class SweepPlan:
    sweep: Sweep
    trials: list[Trial] = field(default_factory=list)


def _where(path: Path, table: str, key: str | None = None) -> str:
    return f"{path}: [{table}]" + (f" {key}" if key else "")


def _check_keys(path: Path, table: str, values: Mapping[str, Any], known: tuple[str, ...]):
    for key in values:
        if key not in known:
            close = closest_names(key, list(known))
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"{_where(path, table, key)}: unknown key {key!r}.{hint} Allowed in "
                f"[{table}]: {', '.join(known)}."
            )


def _check_value(path: Path, table: str, key: str, value: Any) -> Any:
    """`value` if it has the TOML type RunConfig field `key` takes, else a ConfigError."""
    kind = _FIELD_KINDS[key]
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "table": isinstance(value, dict),
    }[kind]
    if not ok:
        example = {"bool": "true", "int": "5", "float": "1e-3", "str": '"adam"',
                   "table": "{ in_channels = 1 }"}[kind]  # fmt: skip
        raise ConfigError(
            f"{_where(path, table, key)}: {value!r} is not a valid {key}; it takes a "
            f"{'TOML table' if kind == 'table' else kind}, e.g. {key} = {example}."
        )
    return float(value) if kind == "float" else value


def _parse_distribution(path: Path, key: str, spec: Any, method: str) -> Any:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{_where(path, 'space', key)}: the list of values is empty.")
        return [_check_value(path, "space", key, v) for v in spec]
    if method == "grid":
        raise ConfigError(
            f"{_where(path, 'space', key)}: a grid takes a list of values, e.g. "
            f"{key} = [1e-3, 1e-4]; distributions such as {{ log_uniform = [a, b] }} are for "
            'method = "random".'
        )
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"{_where(path, 'space', key)}: {spec!r} is neither a list of values nor one "
            f"distribution; write one of {', '.join(f'{{ {d} = [...] }}' for d in DISTRIBUTIONS)}."
        )
    ((kind, bounds),) = spec.items()
    if kind == "choice":
        return _parse_distribution(path, key, bounds, method)
    numeric = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds or [])
    if not isinstance(bounds, list) or len(bounds) != 2 or not numeric or bounds[0] > bounds[1]:
        raise ConfigError(
            f"{_where(path, 'space', key)}: {kind} takes [low, high] with low <= high, "
            f"got {bounds!r}."
        )
    field_kind = _FIELD_KINDS[key]
    if kind == "int_uniform" and field_kind != "int":
        raise ConfigError(f"{_where(path, 'space', key)}: int_uniform is for integer fields.")
    if kind in ("uniform", "log_uniform") and field_kind != "float":
        raise ConfigError(
            f"{_where(path, 'space', key)}: {kind} draws real numbers, but {key} is "
            f"{'an ' + field_kind if field_kind == 'int' else 'a ' + field_kind}; use "
            "int_uniform or a list."
        )
    if kind == "log_uniform" and bounds[0] <= 0:
        raise ConfigError(f"{_where(path, 'space', key)}: log_uniform needs low > 0.")
    return {kind: [bounds[0], bounds[1]]}


def _draw(rng: random.Random, spec: Any) -> Any:
    if isinstance(spec, list):
        return rng.choice(spec)
    ((kind, (low, high)),) = spec.items()
    if kind == "int_uniform":
        return rng.randint(int(low), int(high))
    if kind == "uniform":
        value = rng.uniform(low, high)
    else:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return float(f"{value:.4g}")  # 4 significant digits: readable configs and hashes


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file; any mistake is a ConfigError naming the file and key."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"No sweep file at {path}. Pass the path of a .toml file, e.g. sweeps/resnet-grid.toml."
        ) from None
    except OSError as error:
        raise ConfigError(f"Cannot read the sweep file {path}: {error.strerror}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}.") from None
    _check_keys(path, "top level", document, TABLES)
    for table in TABLES:
        if table in document and not isinstance(document[table], dict):
            raise ConfigError(f"{path}: {table} must be a table, written [{table}].")
    head = document.get("sweep", {})
    _check_keys(path, "sweep", head, SWEEP_KEYS)
    fixed = dict(document.get("fixed", {}))
    space = dict(document.get("space", {}))
    run_fields = tuple(_FIELD_KINDS)
    _check_keys(path, "fixed", fixed, run_fields)
    _check_keys(path, "space", space, run_fields)

    method = head.get("method", "grid")
    if method not in METHODS:
        raise ConfigError(
            f"{_where(path, 'sweep', 'method')}: {method!r} is not a method; use "
            f'method = "grid" or method = "random".'
        )
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{_where(path, 'sweep', 'name')}: give the sweep a non-empty name.")
    seed = head.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{_where(path, 'sweep', 'seed')}: the seed is an integer.")
    trials = head.get("trials")
    if method == "random":
        if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= MAX_TRIALS:
            raise ConfigError(
                f"{_where(path, 'sweep', 'trials')}: a random sweep needs trials = N "
                f"(1 to {MAX_TRIALS}), the number of configurations to draw."
            )
    elif trials is not None:
        raise ConfigError(
            f'{_where(path, "sweep", "trials")}: trials is for method = "random"; a grid '
            "runs every combination of [space]."
        )
    overlap = sorted(set(fixed) & set(space))
    if overlap:
        raise ConfigError(
            f"{path}: {', '.join(overlap)} is both in [fixed] and in [space]; keep it in one."
        )
    if "model" not in fixed and "model" not in space:
        raise ConfigError(
            f'{path}: no model. Add model = "mlp" to [fixed], or model = ["mlp", "cnn"] to '
            "[space] (see `mnistbench list`)."
        )
    for key, value in fixed.items():
        _check_value(path, "fixed", key, value)
    space = {key: _parse_distribution(path, key, spec, method) for key, spec in space.items()}
    if method == "grid":
        size = math.prod(len(values) for values in space.values())
        if size > MAX_TRIALS:
            raise ConfigError(
                f"{path}: the grid has {size:,} combinations, more than {MAX_TRIALS:,}; "
                'shrink [space] or use method = "random".'
            )
    return Sweep(
        name=name,
        path=path,
        method=method,
        fixed=fixed,
        space=space,
        trials=trials,
        seed=seed,
        description=str(head.get("description", "")),
    )


def plan_sweep(
    sweep: Sweep, *, device: str = "auto", overrides: Mapping[str, Any] | None = None
) -> SweepPlan:
    """One trial per point: make_config(model, **fixed, **point, **overrides).

    `overrides` (the command line's run options; None values ignored) win over the file, so
    `--epochs 1` turns any sweep into a quick look. Invalid values name the file and point.
    """
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    default_device = resolve_device(device)
    plan = SweepPlan(sweep)
    for point in sweep.points():
        values = {**sweep.fixed, **point, **extra}
        model = values.pop("model")
        run_device = values.pop("device", None)
        try:
            run_device = resolve_device(run_device) if run_device else default_device
            config = make_config(model, device=run_device, **values)
        except MnistbenchError as error:
            described = ", ".join(f"{k}={v!r}" for k, v in point.items()) or "every trial"
            raise ConfigError(f"{sweep.path}: the trial with {described}: {error}") from None
        label = " ".join(f"{k}={v}" for k, v in point.items())
        tag = trial_tag(
            "sweep", sweep.name, file=str(sweep.path), point=json.loads(json.dumps(point))
        )
        plan.trials.append(Trial(config, label, tag))
    return plan
