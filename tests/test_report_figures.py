"""The scatter plots people look at: labels that never overlap, a legend that hides nothing, and
each published figure tied to its model. Checked on the canvas the PNG is drawn from."""

from __future__ import annotations

import logging

import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.legend import Legend

from mnistbench.report.figures import labels
from mnistbench.report.figures.scatter import MIN_SPAN_PT, Point, Published, draw, split_outliers
from report_store import MNIST

# Published (params, accuracy, study) of the models that cluster: study A's top row and the
# sub-20k CNNs of studies D and E (two of them share 17,938 parameters).
PUBLISHED = {
    "microresnet": (174_970, 0.9931, "A"),
    "cnn": (206_922, 0.9882, "A"),
    "snn": (206_922, 0.9856, "A"),
    "dbn": (671_002, 0.9844, "A"),
    "mlp": (535_818, 0.9781, "A"),
    "vit": (540_170, 0.9697, "A"),
    "small_cnn_bn": (18_278, 0.9955, "D"),
    "small_cnn_v2": (17_938, 0.9938, "D"),
    "small_cnn_v1": (17_938, 0.9936, "D"),
    "diet_4": (7_904, 0.994, "E"),
    "diet_3": (10_970, 0.990, "E"),
    "diet_2": (10_790, 0.983, "E"),
}


def clustered_points(cost: str) -> list[Point]:
    """Every model of report_store.MNIST, and a Fashion-MNIST panel of the small CNNs."""
    points = []
    for model, (params, time_s, honest, _, _) in MNIST.items():
        published = None
        if model in PUBLISHED and cost == "params":
            p_params, p_acc, study = PUBLISHED[model]
            published = Published(float(p_params), p_acc, f"study {study}")
        spent = float(params if cost == "params" else time_s)
        family = model.split("_")[0]
        interval = (honest - 0.002, honest + 0.002)
        points.append(Point(model, family, "mnist", spent, honest, interval, False, published))
        if model.startswith("small_cnn"):
            points.append(Point(model, family, "fashion-mnist", spent, honest - 0.08))
    return points


def _check_labels(fig) -> int:
    """Asserts no two labels overlap, each stays inside its panel, none meets the legend;
    returns how many labels were checked."""
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.findobj(Legend)
    legend_box = legend.get_window_extent(renderer)
    checked = 0
    for ax in fig.axes:
        texts = [t for t in ax.texts if t.get_text()]
        found = labels.boxes(texts, renderer)
        overlaps = [(texts[i].get_text(), texts[j].get_text())
                    for i, j in labels.overlapping_pairs(found)]  # fmt: skip
        assert overlaps == []
        area = ax.get_window_extent(renderer)
        for text, box in zip(texts, found, strict=True):
            assert area.x0 <= box.x0 and box.x1 <= area.x1, text.get_text()
            assert area.y0 <= box.y0 and box.y1 <= area.y1, text.get_text()
            assert not labels.overlapping_pairs([box, legend_box]), text.get_text()
        checked += len(texts)
    # the legend sits outside every panel, so it hides no point
    for ax in fig.axes:
        assert not labels.overlapping_pairs([ax.get_window_extent(renderer), legend_box])
    return checked


def test_clustered_labels_never_overlap_each_other_or_the_legend() -> None:
    for cost in ("params", "time"):
        fig = draw(clustered_points(cost), title="Accuracy vs cost", xlabel=cost)
        assert fig is not None
        fig.canvas.draw()
        expected = len(MNIST) + 3  # a published figure is tied to its point, not labelled
        assert _check_labels(fig) == expected


def test_the_overlap_check_catches_overlapping_labels() -> None:
    """The check above can fail: two labels drawn at one spot are caught."""
    fig = draw(clustered_points("time")[:2], title="t", xlabel="x")
    ax = fig.axes[0]
    ax.text(1.0, 99.0, "same spot")
    ax.text(1.0, 99.0, "same spot")
    fig.canvas.draw()
    twins = [t for t in ax.texts if t.get_text() == "same spot"]
    found = labels.boxes(twins, fig.canvas.get_renderer())
    assert labels.overlapping_pairs(found) == [(0, 1)]


def test_each_published_diamond_is_tied_to_its_point_in_its_colour() -> None:
    points = clustered_points("params")
    fig = draw(points, title="Accuracy vs parameters", xlabel="params")
    fig.canvas.draw()
    ax = fig.axes[0]  # MNIST
    diamonds = [
        c for c in ax.collections
        if isinstance(c, PathCollection) and len(c.get_offsets()) == 1
        and c.get_sizes()[0] < 100  # the Pareto rings are larger
    ]  # fmt: skip
    assert len(diamonds) == len(PUBLISHED)
    lines = {
        (tuple(line.get_xdata()), tuple(line.get_ydata())): to_hex(line.get_color())
        for line in ax.lines
        if line.get_linestyle() == "-" and len(line.get_xdata()) == 2
    }
    for point in (p for p in points if p.published and p.dataset == "mnist"):
        (x, y), = [tuple(d.get_offsets()[0]) for d in diamonds
                   if tuple(d.get_offsets()[0]) == (point.published.cost,
                                                    100 * point.published.accuracy)]  # fmt: skip
        color = next(
            to_hex(d.get_edgecolor()[0]) for d in diamonds if tuple(d.get_offsets()[0]) == (x, y)
        )
        # a line from the diamond to the measured point, in the diamond's colour
        link = ((x, point.cost), (y, 100 * point.accuracy))
        assert lines.get(link) == color, point.label
        # the point is labelled with its model's name in that colour
        texts = {(t.get_text(), to_hex(t.get_color())) for t in ax.texts}
        assert (point.label, color) in texts


def test_labels_land_in_the_same_place_every_time() -> None:
    """A fixed iteration budget, no clock: the same store gives the same figure (and SVG)."""
    positions = []
    for _ in range(2):
        fig = draw(clustered_points("params"), title="t", xlabel="x")
        positions.append([t.get_position() for ax in fig.axes for t in ax.texts])
    assert positions[0] == positions[1]


def test_labels_of_points_on_one_spot_still_come_apart() -> None:
    """Twenty configurations at one (cost, accuracy): more than adjustText's budget resolves,
    so the deterministic last pass has to find each label a free spot."""
    same = [Point(f"config_{i}", "cnn", "mnist", 1000.0, 0.99) for i in range(20)]
    fig = draw([*same, *clustered_points("time")[:3]], title="t", xlabel="x")
    fig.canvas.draw()
    assert _check_labels(fig) == 23


def test_a_model_far_below_the_rest_gets_a_panel_of_its_own() -> None:
    """beta_vae at 88% beside CNNs at 99%: a broken axis, the main panel keeps its range."""
    points = [
        Point("cnn", "cnn", "mnist", 2e5, 0.991, (0.989, 0.993)),
        Point("mlp", "mlp", "mnist", 5e5, 0.978, (0.975, 0.981)),
        Point("beta_vae", "vae", "mnist", 6e5, 0.881, (0.873, 0.888)),
    ]
    assert split_outliers([99.1, 97.8, 88.1]) == pytest.approx((97.8 + 88.1) / 2)
    assert split_outliers([99.1, 97.8, 95.0]) is None
    fig = draw(points, title="t", xlabel="x")
    top, bottom = (ax for ax in fig.axes if ax.get_visible())
    assert [t.get_text() for t in top.texts] == ["cnn", "mlp"]
    assert [t.get_text() for t in bottom.texts] == ["beta_vae"]
    low, high = top.get_ylim()
    assert 97.0 < low < 97.5 and 99.3 < high < 100.0  # the interval ends inside, 88% is not


def test_one_point_gets_a_span_of_at_least_one_point() -> None:
    """A lone 91.55% (the Fashion-MNIST ResNet) is not drawn on a 91.540-91.550 axis."""
    fig = draw([Point("resnet18", "resnet", "fashion-mnist", 1.1e7, 0.9155)], title="t", xlabel="x")
    low, high = fig.axes[0].get_ylim()
    assert high - low >= MIN_SPAN_PT


def test_labels_on_a_subfigure_log_no_false_matplotlib_warning(caplog) -> None:
    """adjustText falls back to `canvas.draw()` on a SubFigure (the scatter's panels) and logs
    "an old matplotlib version" each time; the fallback is right and the warning is not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 3))
    ax = fig.subfigures(1, 2)[0].subplots()
    ax.plot([0, 1, 2], [0, 1, 2], "o")
    texts = [ax.text(x, x, f"point {x}") for x in (0, 1, 2)]
    fig.canvas.draw()
    with caplog.at_level(logging.WARNING):
        labels.place(ax, texts, [(0, 0), (1, 1), (2, 2)])
    assert not [r for r in caplog.records if r.name.startswith("adjustText")]
    assert logging.getLogger("adjustText").level == logging.NOTSET  # put back as it was
    plt.close(fig)
