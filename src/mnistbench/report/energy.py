"""Energy as a report shows it: in one unit (Wh) and always saying whether it was measured.

Runs store `energy_kwh` (contract 5). Where no power counter exists, CodeCarbon's figure is a
power model times the run's duration, so it carries no information that time does not: every
cell and axis then says "estimated".
"""

from __future__ import annotations

from collections.abc import Iterable

from mnistbench.report import cards
from mnistbench.report import format as fmt
from mnistbench.report.format import Stat
from mnistbench.store import RunRecord

UNIT = "Wh"
WH_PER_KWH = 1000.0
ESTIMATED = "estimated: power model × time"
# Words of CodeCarbon's hardware descriptions (`energy_method`) for runs recorded before
# `energy_measured` existed: a power model anywhere makes the total an estimate (its RAM figure
# is always a model), a hardware counter alone makes it a measurement.
_MODEL_WORDS = ("cpu load", "tdp", "[generic]", " > ", "estimate", "constant", "ram(")
_COUNTER_WORDS = ("rapl", "power gadget", "nvml", "gpu(", "powermetrics", "emi")
# What CodeCarbon's window covered before runs stated their `energy_scope` (measurement v1,
# commit 5ae60b7: experiments/runner.py starts the meter after data loading and stops it before
# the latency measurement; on a GPU, NVML reads the whole device).
_V1_SCOPE = (
    "training, per-epoch evaluation and the recipe's probes (from after data loading and model "
    "building to before the latency measurement); on a CPU the process's share of the machine's "
    "load, on a GPU the whole device"
)


def has_energy(run: RunRecord) -> bool:
    return isinstance(run.metrics.get("energy_kwh"), (int, float))


def is_measured(run: RunRecord) -> bool:
    """Whether the run's energy came from a power counter (RAPL, NVML), not from a model."""
    flag = run.metrics.get("energy_measured")
    if isinstance(flag, bool):
        return flag
    method = str(run.metrics.get("energy_method") or "").lower()
    if any(word in method for word in _MODEL_WORDS):
        return False
    return any(word in method for word in _COUNTER_WORDS)


def all_measured(runs: Iterable[RunRecord]) -> bool:
    with_energy = [r for r in runs if has_energy(r)]
    return bool(with_energy) and all(is_measured(r) for r in with_energy)


def energy_wh(runs: Iterable[RunRecord]) -> Stat | None:
    """Mean ± std of the runs' energy, in Wh."""
    stat = Stat.of(r.metrics.get("energy_kwh") for r in runs)
    return None if stat is None else stat.scaled(WH_PER_KWH)


def text(stat_wh: Stat | None, measured: bool) -> str:
    """A cell: '0.52 Wh (measured)' or '≈ 0.52 Wh (estimated)'."""
    if stat_wh is None:
        return "—"
    value = f"{fmt.number_stat(stat_wh)} {UNIT}"
    return f"{value} (measured)" if measured else f"≈ {value} (estimated)"


def cell(runs: list[RunRecord]) -> str:
    return text(energy_wh(runs), all_measured(runs))


def scope(run: RunRecord) -> str:
    """What the run's energy figure covers, as the run recorded it."""
    stated = run.metrics.get("energy_scope")
    if stated:
        return str(stated)
    method = cards.measurement_method(cards.card_of(run), "energy_kwh")
    return str(method) if method else _V1_SCOPE
