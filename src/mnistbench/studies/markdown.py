"""docs/studies.md, generated from the catalogue:
`python -m mnistbench.studies > docs/studies.md` (a test fails when the page is stale)."""

from __future__ import annotations

from collections.abc import Sequence

from mnistbench.studies.catalog import FIGURES, STUDIES
from mnistbench.studies.figure import _NAMES, PublishedFigure


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _time(figure: PublishedFigure) -> str:
    if figure.time_per_epoch_s is None:
        return "—"
    device = _NAMES.get(figure.time_device or "", figure.time_device or "")
    return f"{figure.time_per_epoch_s:,.1f} s per {figure.time_measures} ({device})"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def studies_markdown() -> str:
    """docs/studies.md: each study, what it measured, where it came from, and its figures."""
    lines = [
        "# The published studies",
        "",
        "mnistbench reproduces five published MNIST studies. Reports and `mnistbench list` say",
        '"study A" .. "study E"; this page says what each one is. It is generated from',
        "`src/mnistbench/studies/` (`python -m mnistbench.studies > docs/studies.md`); every",
        "figure below is one a study publishes, and a run's model card stores the ones that",
        "apply to it. Accuracies are test accuracies. A study whose protocol is the maximum",
        "test accuracy over epochs picked its figure with the test set, which is optimistic:",
        "mnistbench reports that figure beside the honest one (test accuracy at the epoch with",
        "the best validation accuracy).",
    ]
    for study in STUDIES.values():
        figures = [f for f in FIGURES if f.study == study.id]
        lines += [
            "",
            f'<a id="{study.anchor}"></a>',
            "",
            f"## Study {study.id}: {study.title}",
            "",
            study.description,
            "",
            f"- Source: {study.source}",
            f"- Recipe: {study.recipe}.",
            f"- Accuracy protocol: {study.protocol.replace('_', ' ')}.",
            f"- Time figures: {study.timing}.",
            "",
            _row(["Model", "Dataset", "Setting", "Test accuracy", "Time", "Params", "Note"]),
            _row(["---"] * 7),
        ]
        for f in figures:
            params = "—" if f.params is None else f"{f.params:,}"
            if f.params is not None and f.params_source != "study":
                params += f" ({f.params_source})"
            best = f" (epoch {f.best_epoch})" if f.best_epoch else ""
            lines.append(
                _row(
                    [
                        f"`{f.model}`",
                        f.dataset,
                        f.setting_text,
                        ("~" if f.approximate else "") + _percent(f.test_accuracy) + best,
                        _time(f),
                        params,
                        f.note,
                    ]
                )
            )
    return "\n".join(lines) + "\n"
