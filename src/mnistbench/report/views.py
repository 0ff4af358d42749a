"""Named report views: one results table each (which runs, which named columns), built from the
store alone, with the machines and software the runs recorded (never the machine building it).

A view is data. `mnistbench report --view NAME` prints one; the benchmarks' results tables are
views, so a committed table can be rebuilt from committed runs on any machine, byte for byte
(nothing in a view depends on when or where it is built).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mnistbench.errors import ConfigError
from mnistbench.report import (
    cards,
    columns,
    reproduction,
    reproduction_notes,
    robustness,
    uncertainty,
)
from mnistbench.report.collect import ReportData, RunGroup, load
from mnistbench.report.document import Document, Paragraph, Section, Table, to_markdown
from mnistbench.report.sections.overview import (
    ACCURACY_NOTE,
    SEEDS_NOTE,
    STUDY_TABLE_PROTOCOLS,
    commands,
    protocols_for,
    provenance,
)
from mnistbench.store import Store


@dataclass(frozen=True)
class View:
    """One table: its title, which configurations (seeds pooled) it shows, and its columns."""

    name: str
    title: str
    description: str
    columns: tuple[str, ...]  # names in columns.COLUMNS, in order
    studies: tuple[str, ...] = ()  # models with a published figure in these studies...
    models: tuple[str, ...] = ()  # ...and these models; both empty: every model
    datasets: tuple[str, ...] = ()  # only these datasets; empty: every dataset
    comparable_only: bool = False  # leave out runs smaller than their recipe (quick looks)
    rows: str = "groups"  # a row per configuration; "reproduction"/"improved": reproduction.py;
    # "robustness": report/robustness.py

    def shows(self, group: RunGroup) -> bool:
        if self.datasets and group.dataset not in self.datasets:
            return False
        if self.comparable_only and not group.comparison.comparable:
            return False
        if not self.studies and not self.models:
            return True
        return group.model in self.models or bool(_studies_of(group) & set(self.studies))


def _studies_of(group: RunGroup) -> set[str]:
    return {str(f.get("study")) for f in cards.figures(group.card)} | set(
        group.card.get("studies") or {}
    )


_ACCURACIES = ("acc_final", "acc_best_val", "acc_max")
VIEWS: dict[str, View] = {
    view.name: view
    for view in (
        View(
            "reproduction",
            "The studies reproduced, over seeds",
            "One row per figure the studies publish (studies A-E, each dataset), against the "
            "configuration run at that setting (the model's recipe otherwise, full data; "
            "`mnistbench suite reproduction`), seeds pooled; where the recipe the runs recorded "
            "has a stage the study's pipeline lacks, a note under the table says so. Ours is "
            "shown under the "
            "study's own protocol and the honest one. " + reproduction.RULES,
            (),
            studies=("A", "B", "C", "D", "E"),
            rows="reproduction",
        ),
        View(
            "improved",
            "Other recipes at the same architectures",
            "Full-scale configurations of the studies' models whose recipe differs from the "
            "published one (other than speed settings), set against the published figure "
            "closest to them: better recipes (`mnistbench suite improved`) and the studies' own "
            "data split, all 60,000 training images with no validation "
            "(`mnistbench suite study-a-60k`; no honest figure then). " + reproduction.RULES,
            (),
            studies=("A", "B", "C", "D", "E"),
            rows="improved",
        ),
        View(
            "studies",
            "The published studies reproduced",
            "Every configuration of a study model at full scale, set against the published "
            "figure of its dataset and closest setting, and the verdict under the study's own "
            "protocol. " + uncertainty.VERDICT_RULE,
            ("model", "study", "dataset", "settings", "seeds", "epochs", *_ACCURACIES,
             "published", "met", "time_epoch_threads", "device"),
            studies=("A", "B", "C", "D", "E"),
            comparable_only=True,
        ),
        View(
            "zoo-small",
            "Studies B, D and E: the small supervised models",
            "Each small model at its study's recipe; per-seed epochs and the epochs the "
            "validation and test picks chose. " + uncertainty.VERDICT_RULE,
            ("model", "dataset", "params", "settings", "seed_list", "epochs", "acc_final",
             "acc_best_val", "best_val_epoch", "acc_max", "best_test_epoch", "epochs_to_target",
             "published", "met", "time_epoch_threads", "device"),
            studies=("B", "D", "E"),
        ),
        View(
            "zoo-large",
            "Large zoo models: SVMs and ResNet-18/50 (study C), ViT (study A)",
            "The large models' full runs. FLOPs are per sample, as each run measured them. "
            + uncertainty.VERDICT_RULE,
            ("model", "dataset", "settings", "acc_final", "acc_best_val", "published", "met",
             "time_epoch_threads", "eval_time", "wall", "flops", "device"),
            studies=("C",),
            models=("vit",),
        ),
        View(
            "zoo-speed",
            "Time per epoch of every study model, against the studies' times",
            "Full-data MNIST runs of every study model: training time per epoch with the "
            "threads it ran on, the accuracy it kept, and the study's own time (taken on other "
            "hardware).",
            ("model", "study", "settings", "time_epoch_threads", "acc_final", "time_published",
             "device"),
            studies=("A", "B", "C", "D", "E"),
            datasets=("mnist",),
            comparable_only=True,
        ),
        View(
            "robustness",
            "Beyond clean accuracy: corruptions, calibration and attacks",
            "Every evaluated configuration (`mnistbench evaluate`, e.g. after `mnistbench suite "
            "robustness`): clean accuracy, MNIST-C's 15 corruptions (mean and worst), "
            "calibration and L-inf attacks (docs/robustness.md).",
            (),
            rows="robustness",
        ),
        View(
            "architecture-showdown",
            "Study A's ten architectures at their recipes",
            "The architecture-showdown suite: every study A model at its recipe. "
            + uncertainty.VERDICT_RULE,
            ("model", "status", "epochs", *_ACCURACIES, "published", "met", "time_epoch",
             "wall", "device"),
            studies=("A",),
        ),
    )
}  # fmt: skip


def get_view(name: str) -> View:
    try:
        return VIEWS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(VIEWS), n=2, cutoff=0.4)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown report view {name!r}.{hint} The views are: {', '.join(VIEWS)}. "
            "Run `mnistbench report --view NAME` with one of them."
        ) from None


def _order(group: RunGroup) -> tuple:
    studies = sorted(_studies_of(group)) or ["~"]  # models of no study last
    return (group.dataset != "mnist", group.dataset, studies[0], group.model, group.key)


def build_view(store: Store, name: str) -> Document:
    """The view `name` over the runs in `store`, as a Document (Markdown or HTML)."""
    view = get_view(name)
    data = load(store)
    groups = sorted((g for g in data.groups if view.shows(g)), key=_order)
    blocks: list = []
    if view.rows == "reproduction":
        rows = reproduction.reproduction_rows(groups)
        groups = [r.group for r in rows if r.group is not None]
        blocks.append(Table(reproduction.ROW_HEADER, [reproduction.row_cells(r) for r in rows]))
        notes = (
            reproduction_notes.notes(rows, data.groups, data.epochs)
            + reproduction_notes.pipeline_notes(rows)
            + reproduction_notes.sampling_notes(rows, data.groups)
        )
        blocks += [Paragraph(note) for note in notes]
    elif view.rows == "improved":
        groups = reproduction.improved_groups(groups)
        if groups:
            cells = [reproduction.improved_cells(g) for g in groups]
            blocks.append(Table(reproduction.IMPROVED_HEADER, cells))
    elif view.rows == "robustness":
        groups = [r.group for r in robustness.robustness_rows(groups, data.artefacts)]
        blocks += robustness.robustness_blocks(groups, data)
    elif groups:
        blocks.append(Table.of(columns.pick(*view.columns), groups))
    if not groups and view.rows != "robustness":
        blocks.append(Paragraph("No finished run in the store belongs to this view yet."))
    missing = _not_run(view, groups) if view.rows == "groups" else ""
    if missing:
        blocks.append(Paragraph(f"Not run yet (no finished run in the store): {missing}."))
    intro = [
        Paragraph(view.description),
        Paragraph(view_protocols(view)),
        *_runs_table(groups, data),
    ]
    return Document(view.title, intro, [Section(view.name, "Results", blocks)])


def view_protocols(view: View) -> str:
    """What the view's columns mean: only the columns its table has."""
    if view.rows == "robustness":  # its columns are explained in its own intro and docs
        return f"{ACCURACY_NOTE} {SEEDS_NOTE}"
    return STUDY_TABLE_PROTOCOLS if view.rows != "groups" else protocols_for(view.columns)


def _runs_table(groups: list[RunGroup], data: ReportData) -> list:
    """The provenance of the runs a view shows (their stored environments, never the machine
    building the view) and the commands that trained them."""
    runs = [r for g in groups for r in g.runs]
    if not runs:
        return []
    blocks: list = [Table(["Runs in this view", ""], [["Configurations", str(len(groups))],
                                                      ["Runs", str(len(runs))],
                                                      *provenance(runs)])]  # fmt: skip
    trained_by = commands(runs, data.artefacts)
    if trained_by:
        blocks.append(Paragraph("Trained by: " + "; ".join(f"`{c}`" for c in trained_by) + "."))
    return blocks


def _not_run(view: View, groups: list[RunGroup]) -> str:
    """The view's study models with no configuration in it (from mnistbench.studies)."""
    wanted = [m for s, models in sorted(cards.study_models().items()) if s in view.studies
              for m in models] + list(view.models)  # fmt: skip
    seen = {g.model for g in groups}
    return ", ".join(dict.fromkeys(m for m in wanted if m not in seen))


def view_markdown(store: Store, name: str) -> str:
    """The view as Markdown (what `mnistbench report --view NAME` prints or writes)."""
    return to_markdown(build_view(store, name), figures=False)
