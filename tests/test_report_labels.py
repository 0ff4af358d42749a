"""Every static figure of the report built from the committed results: no drawn label overlaps
another or leaves the figure (boxes from matplotlib's renderer, as the PNG was saved)."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure as MplFigure
from matplotlib.text import Text

from mnistbench.report import write_report
from mnistbench.report.figures.common import collecting, new
from mnistbench.report.figures.labels import label_problems
from mnistbench.report.rebuild import committed_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def committed_figures(tmp_path_factory) -> list[tuple[str, MplFigure]]:
    if not list((ROOT / "results").glob("*.jsonl")):
        pytest.skip("no committed results in this checkout")
    out = tmp_path_factory.mktemp("committed-report")
    with committed_store(ROOT) as store, collecting() as drawn:
        write_report(store, out)
    return drawn


def test_every_committed_figure_is_checked(committed_figures) -> None:
    names = {name for name, _ in committed_figures}
    # the committed results hold CPU and GPU runs of both datasets: every kind of figure is drawn
    assert {
        "accuracy_vs_params",
        "accuracy_vs_time",
        "accuracy_vs_energy",
        "published_vs_measured",
        "learning_curves_mnist",
        "confusion_matrices_mnist",
        "cpu_vs_gpu",
    } <= names


def test_no_label_overlaps_another_or_leaves_the_figure(committed_figures) -> None:
    problems = {name: p for name, fig in committed_figures if (p := label_problems(fig))}
    assert problems == {}


def _two_labels(x2: float, y2: float) -> MplFigure:
    fig, axes = new(3, 2)
    axes[0][0].set_axis_off()
    fig.text(0.4, 0.5, "first label")
    fig.text(x2, y2, "second label")
    fig.canvas.draw()
    return fig


def test_the_check_sees_an_overlap_and_a_label_off_the_figure() -> None:
    assert label_problems(_two_labels(0.4, 0.2)) == []
    assert label_problems(_two_labels(0.45, 0.5)) == ["'first label' overlaps 'second label'"]
    assert label_problems(_two_labels(0.9, 0.2)) == ["'second label' leaves the figure"]
    hidden = _two_labels(0.45, 0.5)
    next(t for t in hidden.findobj(Text) if t.get_text() == "second label").set_visible(False)
    assert label_problems(hidden) == []
