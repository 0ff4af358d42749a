"""Energy per configuration, in Wh, saying for every figure whether it was measured or estimated.

Where no power counter exists (a VM), CodeCarbon's figure is a power model times the run's
duration: the accuracy-vs-energy front is then the accuracy-vs-run-time front, and the section
says so instead of presenting it as a second finding.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mnistbench.report import energy, uncertainty
from mnistbench.report import figures as figs
from mnistbench.report import format as fmt
from mnistbench.report.collect import (
    ReportData,
    RunGroup,
    full_data_groups,
    group_labels,
    pareto_front,
)
from mnistbench.report.document import Column, Paragraph, Section, Table
from mnistbench.report.format import Stat
from mnistbench.report.sections.tradeoffs import POINTS_CAPTION, points


def _to_target_wh(group: RunGroup) -> Stat | None:
    """Energy up to the first epoch reaching the target, pro rata of training time."""
    values = []
    for run in group.runs:
        m = run.metrics
        kwh, total = m.get("energy_kwh"), m.get("total_train_time_s")
        seconds = m.get("seconds_to_target")
        if all(isinstance(v, (int, float)) for v in (kwh, seconds, total)) and total > 0:
            values.append(energy.WH_PER_KWH * kwh * seconds / total)
    return Stat.of(values)


def _wh_times_error(group: RunGroup) -> str:
    spent, accuracy = energy.energy_wh(group.runs), group.accuracy()
    if spent is None or accuracy is None:
        return "—"
    value = fmt.number(spent.mean * 100 * (1 - accuracy.mean))
    return value if energy.all_measured(group.runs) else f"≈ {value} (estimated)"


def _intro(data: ReportData) -> Paragraph:
    with_energy = [r for r in data.finished if energy.has_energy(r)]
    estimated = [r for r in with_energy if not energy.is_measured(r)]
    methods = Counter(str(r.metrics.get("energy_method", "not recorded")) for r in with_energy)
    scopes = Counter(energy.scope(r) for r in with_energy)
    notes = sorted({str(n) for r in data.finished if (n := r.metrics.get("energy_note"))})
    text = (
        f"Energy is in {energy.UNIT} throughout. Measured by CodeCarbon (offline mode); what it "
        f"covers, as the runs recorded it: {_counts(scopes)}. Methods: {_counts(methods)}. "
    )
    if with_energy and len(estimated) == len(with_energy):
        text += (
            "No run here had a power counter (RAPL or NVML): every energy figure is estimated "
            "(CodeCarbon's power model × the run's duration), so it ranks runs as their run "
            "time does and says nothing time does not. Cells marked '≈ … (estimated)'."
        )
    elif estimated:
        text += (
            f"{len(estimated)} of {len(with_energy)} runs had no power counter: their energy is "
            "estimated (power model × time), marked '≈ … (estimated)', and drawn as open "
            "markers; the others were measured."
        )
    elif with_energy:
        text += "Every energy figure here was measured by a power counter (RAPL or NVML)."
    return Paragraph(text + (f" Notes: {'; '.join(notes)}." if notes else ""))


def _counts(counts: Counter) -> str:
    return "; ".join(f"{name} ({n} runs)" for name, n in sorted(counts.items())) or "none"


def section(data: ReportData, out: Path | None) -> list[Section]:
    if not data.finished:
        return []
    found = Section("energy", "Energy", [_intro(data)])
    # like the trade-off plots: a --subset run's accuracy is on a trimmed test set
    groups = [g for g in full_data_groups(data.groups) if energy.energy_wh(g.runs) is not None]
    if not groups:
        found.blocks.append(Paragraph("No finished run recorded an energy figure."))
        return [found]
    all_estimated = not any(energy.is_measured(r) for g in groups for r in g.runs)
    if out is not None:
        figure = figs.accuracy_vs_cost(
            points(data, lambda g: energy.energy_wh(g.runs),
                   hollow=lambda g: not energy.all_measured(g.runs)),
            out,
            name="accuracy_vs_energy",
            title="Accuracy vs energy" + (" (estimated)" if all_estimated else ""),
            xlabel=f"energy per run, {energy.UNIT} (log"
            + (f"; {energy.ESTIMATED})" if all_estimated else ")"),
            caption=POINTS_CAPTION
            + " "
            + (
                "Every energy figure in this plot is estimated (power model × the run's "
                "duration), so its Pareto front is the accuracy-vs-run-time front in another "
                "unit, not an independent measurement of efficiency."
                if all_estimated
                else "Energy of the run against honest test accuracy; open markers are "
                "estimated (power model × time), filled ones measured; the dashed line is the "
                "Pareto front."
            ),
            hollow_meaning="estimated energy\n(power model × time)",
        )  # fmt: skip
        if figure is not None:
            found.blocks.append(figure)
    found.blocks.append(_table(groups, all_estimated))
    return [found]


def _table(groups: list[RunGroup], all_estimated: bool) -> Table:
    labels = group_labels(groups)
    front: set[str] = set()
    for dataset in {g.dataset for g in groups}:
        here = [g for g in groups if g.dataset == dataset and g.accuracy() is not None]
        costs = [(energy.energy_wh(g.runs).mean, g.accuracy().mean) for g in here]  # type: ignore[union-attr]
        front |= {here[i].key for i in pareto_front(costs)}
    on_front = "yes (estimated energy: the run-time front)" if all_estimated else "yes"
    table_columns: list[Column[RunGroup]] = [
        Column("Configuration", lambda g: labels[g.key]),
        Column("Dataset", lambda g: g.dataset),
        Column("Device", lambda g: g.device),
        Column("Seeds", lambda g: str(len(g.runs))),
        Column(f"Test acc @ best val {uncertainty.CI_HEADER}", uncertainty.honest_cell),
        Column(f"Energy ({energy.UNIT})", lambda g: energy.cell(g.runs)),
        Column(
            f"{energy.UNIT} to target",
            lambda g: energy.text(_to_target_wh(g), energy.all_measured(g.runs)),
        ),
        Column(f"{energy.UNIT} × error %", _wh_times_error),
        Column("Pareto-optimal", lambda g: on_front if g.key in front else ""),
    ]
    ordered = sorted(groups, key=lambda g: (g.dataset, energy.energy_wh(g.runs).mean))  # type: ignore[union-attr]
    return Table.of(
        table_columns,
        ordered,
        caption="Configurations on the whole data set, sorted by energy (runs on a --subset are "
        f"in the all-runs table). '{energy.UNIT} to target' prorates the run's energy by the "
        "training time up to the first epoch whose validation accuracy reached the run's target; "
        f"'{energy.UNIT} × error %' is lower for runs that are both frugal and accurate.",
    )
