"""Plan files: the one TOML format of suites and sweeps, parsed and checked.

    [sweep]                   # or [suite]: the header (sweep files, the named suites)
    name = "lr-search"        # recorded with every trial (artefact "sweep:NAME" or "suite:NAME")
    method = "random"         # "grid" (every combination, the default) or "random"
    trials = 8                # random only: configurations to draw
    seed = 0                  # random only: seed of the draw (training seeds are a setting)
    seeds = 1                 # runs per trial, training seeds seed .. seed+N-1 (--seeds wins)
    label = "{optimizer} lr={lr:e}"   # a trial's label; default "key=value ..." of its point;
                              # {x:e} writes a number as 1e-3
    missing_models = "error"  # "skip": trials of models not registered here are skipped, named
    per_device = false        # with --device auto, every trial on each device present
    # and, for suites: version, study, title, description (recorded with each run)

    [fixed]                   # run settings every trial shares (RunConfig fields)
    model = "mlp"             # a registered name, or an outside model "my_nets.py:tiny"
    epochs = 3                # (its path is relative to where mnistbench runs)

    [space]                   # grid: lists; random: lists (uniform choice) or distributions
    lr = { log_uniform = [1e-4, 1e-1] }
    batch_size = [64, 128]

    [[entries]]               # optional parts, each with its own settings, label and axes,
    model = "svm_rbf"         # crossed with [space]
    label = "SVC"
    space = { dataset = ["mnist", "fashion-mnist"] }

A trial's config is make_config(model, **fixed, **entry, **point, **command-line overrides);
trials are keyed by config hash, so a rerun skips what finished and an interrupted plan resumes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistbench.config import settings
from mnistbench.errors import ConfigError
from mnistbench.settings import value_kind

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

HEADERS = ("sweep", "suite")
HEADER_KEYS = ("name", "description", "method", "trials", "seed", "seeds", "label",
               "missing_models", "per_device", "version", "study", "title",
               "evaluate")  # fmt: skip
# what `evaluate = [...]` may name: experiments/evaluate.py's EVALUATIONS (kept here as text so
# parsing a plan imports no torch)
PLAN_EVALUATIONS = ("corruptions", "calibration", "adversarial")
TABLES = (*HEADERS, "fixed", "space", "entries")
METHODS = ("grid", "random")
DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int_uniform")
MAX_TRIALS = 10_000  # a grid larger than this is almost certainly a typo
# The kind of TOML value each run setting takes, from its declaration in RunConfig.
_FIELD_KINDS: dict[str, str] = {f.name: value_kind(f) for f in settings()}
_ENTRY_KEYS = (*_FIELD_KINDS, "label", "space")


@dataclass(frozen=True)
class Entry:
    """One part of a plan: settings over [fixed], its own axes, its own label template."""

    settings: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    label: str | None = None


@dataclass(frozen=True)
class Sweep:
    """A parsed plan file (a sweep or a suite: one format)."""

    name: str
    path: Path
    method: str
    fixed: dict[str, Any]
    space: dict[str, Any]  # field -> list of values, or (random) {distribution: [a, b]}
    trials: int | None = None
    seed: int = 0
    description: str = ""
    kind: str = "sweep"  # which header it has: "sweep" or "suite" (its runs' artefact name)
    entries: tuple[Entry, ...] = (Entry(),)
    seeds: int = 1
    label: str | None = None
    missing_models: str = "error"
    per_device: bool = False
    version: str = ""
    study: str = ""
    title: str = ""
    # evaluations run on each finished run after the batch (`mnistbench evaluate`); weights kept
    evaluate: tuple[str, ...] = ()

    def points(self, entry: Entry | None = None) -> list[dict[str, Any]]:
        """The varying part of each trial of `entry` (default: the first), in order: grid
        combinations or random draws over the entry's axes and the plan's."""
        space = {**(entry or self.entries[0]).space, **self.space}
        if self.method == "grid":
            keys = list(space)
            return [
                dict(zip(keys, values, strict=True))
                for values in itertools.product(*(space[k] for k in keys))
            ]
        rng = random.Random(self.seed)
        assert self.trials is not None
        return [{key: _draw(rng, spec) for key, spec in space.items()} for _ in range(self.trials)]

    @property
    def models(self) -> list[str]:
        """Every model the plan names, in order of appearance."""
        names: list[str] = []
        for entry in self.entries:
            values = {**self.fixed, **entry.settings}
            names += [values["model"]] if "model" in values else []
            for space in (entry.space, self.space):
                names += list(space.get("model", []))
        return list(dict.fromkeys(names))

    def size(self) -> int:
        """Configurations per seed and device."""
        return sum(len(self.points(entry)) for entry in self.entries)


# ------------------------------------------------------------------------------ parsing


def _where(path: Path, table: str, key: str | None = None) -> str:
    return f"{path}: [{table}]" + (f" {key}" if key else "")


def _check_keys(path: Path, table: str, values: Mapping[str, Any], known: tuple[str, ...]):
    for key in values:
        if key not in known:
            from mnistbench.models.registry import closest_names  # imports torch: errors only

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


def _parse_distribution(path: Path, table: str, key: str, spec: Any, method: str) -> Any:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{_where(path, table, key)}: the list of values is empty.")
        return [_check_value(path, table, key, v) for v in spec]
    if method == "grid":
        raise ConfigError(
            f"{_where(path, table, key)}: a grid takes a list of values, e.g. "
            f"{key} = [1e-3, 1e-4]; distributions such as {{ log_uniform = [a, b] }} are for "
            'method = "random".'
        )
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"{_where(path, table, key)}: {spec!r} is neither a list of values nor one "
            f"distribution; write one of {', '.join(f'{{ {d} = [...] }}' for d in DISTRIBUTIONS)}."
        )
    ((kind, bounds),) = spec.items()
    if kind == "choice":
        return _parse_distribution(path, table, key, bounds, method)
    numeric = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds or [])
    if not isinstance(bounds, list) or len(bounds) != 2 or not numeric or bounds[0] > bounds[1]:
        raise ConfigError(
            f"{_where(path, table, key)}: {kind} takes [low, high] with low <= high, "
            f"got {bounds!r}."
        )
    field_kind = _FIELD_KINDS[key]
    if kind == "int_uniform" and field_kind != "int":
        raise ConfigError(f"{_where(path, table, key)}: int_uniform is for integer fields.")
    if kind in ("uniform", "log_uniform") and field_kind != "float":
        raise ConfigError(
            f"{_where(path, table, key)}: {kind} draws real numbers, but {key} is "
            f"{'an ' + field_kind if field_kind == 'int' else 'a ' + field_kind}; use "
            "int_uniform or a list."
        )
    if kind == "log_uniform" and bounds[0] <= 0:
        raise ConfigError(f"{_where(path, table, key)}: log_uniform needs low > 0.")
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


def _parse_space(path: Path, table: str, space: Any, method: str) -> dict[str, Any]:
    if not isinstance(space, dict):
        raise ConfigError(f"{_where(path, table)}: the space is a table of axes, e.g. lr = [...]")
    _check_keys(path, table, space, tuple(_FIELD_KINDS))
    return {key: _parse_distribution(path, table, key, spec, method) for key, spec in space.items()}


def _parse_entry(path: Path, index: int, raw: Any, method: str) -> Entry:
    table = f"entries {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: each [[entries]] is a table of settings.")
    _check_keys(path, table, raw, _ENTRY_KEYS)
    values = {k: v for k, v in raw.items() if k not in ("label", "space")}
    for key, value in values.items():
        _check_value(path, table, key, value)
    space = _parse_space(path, f"{table} space", raw.get("space", {}), method)
    label = raw.get("label")
    if label is not None and not isinstance(label, str):
        raise ConfigError(f"{_where(path, table, 'label')}: a label is text.")
    return Entry(values, space, label)


def _whole_number(path: Path, kind: str, head: dict, key: str, default: int) -> int:
    value = head.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{_where(path, kind, key)}: the {key} is a whole number.")
    return value


def parse_plan(document: dict[str, Any], path: Path) -> Sweep:
    """Check a plan (a TOML document as a dict); any mistake is a ConfigError naming the file
    and key. The named suites and sweep files both go through here."""
    _check_keys(path, "top level", document, TABLES)
    for table in TABLES:
        if table in document and not isinstance(document[table], (dict, list)):
            raise ConfigError(f"{path}: {table} must be a table, written [{table}].")
    kinds = [h for h in HEADERS if h in document]
    if len(kinds) > 1:
        raise ConfigError(f"{path}: a plan has one header, [sweep] or [suite], not both.")
    kind = kinds[0] if kinds else "sweep"
    head = document.get(kind, {})
    _check_keys(path, kind, head, HEADER_KEYS)
    method = head.get("method", "grid")
    if method not in METHODS:
        raise ConfigError(
            f"{_where(path, kind, 'method')}: {method!r} is not a method; use "
            f'method = "grid" or method = "random".'
        )
    name = head.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{_where(path, kind, 'name')}: give the plan a non-empty name.")
    seed = _whole_number(path, kind, head, "seed", 0)
    seeds = _whole_number(path, kind, head, "seeds", 1)
    if seeds < 1:
        raise ConfigError(f"{_where(path, kind, 'seeds')}: give 1 or more runs per trial.")
    trials = head.get("trials")
    if method == "random":
        if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= MAX_TRIALS:
            raise ConfigError(
                f"{_where(path, kind, 'trials')}: a random sweep needs trials = N "
                f"(1 to {MAX_TRIALS}), the number of configurations to draw."
            )
    elif trials is not None:
        raise ConfigError(
            f'{_where(path, kind, "trials")}: trials is for method = "random"; a grid '
            "runs every combination of [space]."
        )
    missing = head.get("missing_models", "error")
    if missing not in ("error", "skip"):
        raise ConfigError(f'{_where(path, kind, "missing_models")}: write "error" or "skip".')
    texts = {k: head.get(k, "") for k in ("description", "version", "study", "title")}
    for key, value in {**texts, "label": head.get("label", "")}.items():
        if not isinstance(value, str):
            raise ConfigError(f"{_where(path, kind, key)}: {value!r} is not text; quote it.")
    evaluate = head.get("evaluate", [])
    if not isinstance(evaluate, list) or any(e not in PLAN_EVALUATIONS for e in evaluate):
        raise ConfigError(
            f"{_where(path, kind, 'evaluate')}: write a list of evaluations from "
            f'{", ".join(PLAN_EVALUATIONS)}, e.g. evaluate = ["corruptions", "calibration"].'
        )
    if not isinstance(head.get("per_device", False), bool):
        raise ConfigError(f"{_where(path, kind, 'per_device')}: write true or false.")

    fixed = dict(document.get("fixed", {}))
    _check_keys(path, "fixed", fixed, tuple(_FIELD_KINDS))
    for key, value in fixed.items():
        _check_value(path, "fixed", key, value)
    space = _parse_space(path, "space", document.get("space", {}), method)
    raw_entries = document.get("entries", [{}])
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ConfigError(f"{path}: entries are written as [[entries]] tables.")
    entries = tuple(_parse_entry(path, i, e, method) for i, e in enumerate(raw_entries))
    for entry in entries:
        overlap = sorted((set(fixed) | set(entry.settings)) & (set(space) | set(entry.space)))
        if overlap:
            raise ConfigError(
                f"{path}: {', '.join(overlap)} is both in [fixed] and in [space] (or in an "
                "entry and its space); keep it in one."
            )
        if "model" not in {*fixed, *entry.settings, *space, *entry.space}:
            raise ConfigError(
                f'{path}: no model. Add model = "mlp" to [fixed], or model = ["mlp", "cnn"] to '
                "[space] (see `mnistbench list`)."
            )
    plan = Sweep(
        name=name, path=path, method=method, fixed=fixed, space=space, trials=trials, seed=seed,
        kind=kind, entries=entries, seeds=seeds, label=head.get("label"), missing_models=missing,
        per_device=bool(head.get("per_device", False)), evaluate=tuple(evaluate), **texts,
    )  # fmt: skip
    if method == "grid" and plan.size() > MAX_TRIALS:
        raise ConfigError(
            f"{path}: the grid has {plan.size():,} combinations, more than {MAX_TRIALS:,}; "
            'shrink [space] or use method = "random".'
        )
    return plan


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a plan file; any mistake is a ConfigError naming the file and key."""
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
    return parse_plan(document, path)
