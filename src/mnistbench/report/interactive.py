"""The report's interactive page: the same figures with hover, legend toggles and zoom.

Built with plotly rather than altair: plotly's wheel ships its whole JavaScript bundle
(`plotly.offline.get_plotlyjs()`), so the page inlines it and opens from disk with no network
and no further package; altair needs vl-convert-python (a 100 MB+ native wheel) or a vendored
copy of vega, vega-lite and vega-embed to do the same. Plotly renders hover text as a small
subset of HTML, so every text from the store is `html.escape`d before it goes into a trace, and
each figure goes into the page as `json.dumps` output with `</` escaped (no `</script>` can
close the script early). Nothing from the store becomes a link.

`interactive.html#run=ID` opens with that run's point hovered in every figure and its full
record (configuration, seeds, interval, run ids) shown under "Selected run".
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnistbench.report import cards, energy, uncertainty
from mnistbench.report.collect import ReportData, RunGroup, full_data_groups, group_labels
from mnistbench.report.document import SORT_SCRIPT, Column, Table, html_block
from mnistbench.report.figures.bars import VERDICT_COLORS
from mnistbench.report.figures.common import PALETTE, colors_for, datasets_in, slug
from mnistbench.report.figures.panels import _mean_curve, stages
from mnistbench.report.format import Stat
from mnistbench.report.sections.published import forest_rows
from mnistbench.report.sections.tradeoffs import hover, published_params

PAGE = "interactive.html"
ZERO_LINE = {
    "type": "line",
    "x0": 0,
    "x1": 0,
    "yref": "paper",
    "y0": 0,
    "y1": 1,
    "line": {"color": "#333333", "width": 1},
}
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False}

# After every figure has drawn, the page says how many did (data-plots-rendered), and with
# #run=ID it hovers that run's points and shows the run's record (textContent: never markup).
_PAGE_SCRIPT = """
function mnistbenchShowRun() {
  var match = /run=(\\d+)/.exec(window.location.hash);
  if (!match) { return; }
  var runId = Number(match[1]), shown = null;
  document.querySelectorAll(".plot").forEach(function (gd) {
    (gd.data || []).forEach(function (trace, curve) {
      (trace.customdata || []).forEach(function (payload, point) {
        var record = JSON.parse(payload);
        if ((record.run_ids || []).indexOf(runId) >= 0) {
          Plotly.Fx.hover(gd, [{curveNumber: curve, pointNumber: point}]);
          if (shown === null) { shown = record; }
        }
      });
    });
  });
  var panel = document.getElementById("selected-run");
  panel.textContent = shown === null ? "No point of run " + runId + " in these figures."
                                     : JSON.stringify(shown, null, 2);
  document.body.setAttribute("data-selected-run", shown === null ? "none" : String(runId));
}
window.addEventListener("load", function () {
  var plots = Array.prototype.slice.call(document.querySelectorAll(".plot"));
  Promise.all(plots.map(function (gd) {
    var spec = JSON.parse(document.getElementById(gd.id + "-spec").textContent);
    return Plotly.newPlot(gd, spec.data, spec.layout, PLOT_CONFIG);
  })).then(function () {
    var drawn = plots.filter(function (gd) { return gd.querySelector(".main-svg"); });
    document.body.setAttribute("data-plots-total", String(plots.length));
    document.body.setAttribute("data-plots-rendered", String(drawn.length));
    mnistbenchShowRun();
  });
});
window.addEventListener("hashchange", mnistbenchShowRun);
"""

_CSS = """
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: #1d2330; background: #f4f6fa; }
header { background: #1d2330; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #c6cddb; }
main { padding: 8px 24px 40px; }
section { background: #fff; border: 1px solid #d9dee7; border-radius: 8px; padding: 4px 18px 14px;
          margin: 16px 0; }
.plot { width: 100%; min-height: 460px; }
pre { background: #eef1f6; padding: 8px; border-radius: 4px; font-size: 12px; overflow: auto;
      max-height: 14em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d9dee7; padding: 3px 7px; text-align: left; }
th { background: #eef1f6; cursor: pointer; }
"""


def _escaped(value: Any) -> Any:
    """Every string inside `value` HTML-escaped (plotly renders hover text as HTML)."""
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, dict):
        return {html.escape(str(k)): _escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escaped(v) for v in value]
    return value


def _hover_text(payload: dict[str, Any]) -> str:
    """The hover box: model, settings, seeds, interval, run ids (escaped: plotly reads HTML)."""
    interval = payload.get("interval95")
    shown = "—" if not interval else f"{100 * interval[0]:.2f}–{100 * interval[1]:.2f}%"
    lines = [
        f"<b>{html.escape(str(payload['model']))}</b> · {html.escape(str(payload['dataset']))}",
        f"settings: {html.escape(str(payload['settings']))}",
        f"device: {html.escape(str(payload['device']))}",
        f"seeds: {html.escape(json.dumps(payload['seeds']))}",
        f"95% interval: {shown}",
        f"run ids: {html.escape(json.dumps(payload['run_ids']))}",
    ]
    return "<br>".join(lines)


def _payload(group: RunGroup) -> str:
    """The point's full record, as JSON text in the trace's customdata (read by #run=ID)."""
    return json.dumps(_escaped(hover(group)), sort_keys=True, default=str)


def _scatter_figure(
    data: ReportData,
    cost: Callable[[RunGroup], Stat | None],
    *,
    title: str,
    xlabel: str,
    published: Callable[[RunGroup], Any] = lambda g: None,
) -> dict[str, Any] | None:
    """Every full-data configuration (variants included): one trace per family and dataset
    (the legend toggles families), log x; published figures as their own toggleable trace."""
    groups = [g for g in full_data_groups(data.groups) if g.accuracy() and cost(g)]
    if not groups:
        return None
    labels = group_labels(groups)
    colors = colors_for([cards.family(g.card) for g in groups])
    datasets = datasets_in([g.dataset for g in groups])
    traces: list[dict[str, Any]] = []
    for column, dataset in enumerate(datasets, start=1):
        axis = "" if column == 1 else str(column)
        here = [g for g in groups if g.dataset == dataset]
        for family in sorted({cards.family(g.card) for g in here}):
            members = [g for g in here if cards.family(g.card) == family]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": html.escape(family),
                    "legendgroup": html.escape(family),
                    "showlegend": column == 1,
                    "x": [cost(g).mean for g in members],  # type: ignore[union-attr]
                    "y": [100 * g.accuracy().mean for g in members],  # type: ignore[union-attr]
                    "error_y": _error_bars(members),
                    "marker": {"color": colors[family], "size": 9},
                    "text": [html.escape(labels[g.key]) for g in members],
                    "hovertext": [_hover_text(hover(g)) for g in members],
                    "hoverinfo": "text",
                    "customdata": [_payload(g) for g in members],
                    "xaxis": f"x{axis}",
                    "yaxis": f"y{axis}",
                }
            )
        marked = [(g, p) for g in here if (p := published(g)) is not None]
        if marked:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": "published figure",
                    "legendgroup": "published",
                    "showlegend": column == 1,
                    "x": [p.cost for _, p in marked],
                    "y": [100 * p.accuracy for _, p in marked],
                    "marker": {"symbol": "diamond-open", "size": 10, "color": "#555555"},
                    "hovertext": [
                        f"{html.escape(g.model)}: {html.escape(p.label)}, {100 * p.accuracy:.2f}%"
                        for g, p in marked
                    ],
                    "hoverinfo": "text",
                    "xaxis": f"x{axis}",
                    "yaxis": f"y{axis}",
                }
            )
    layout: dict[str, Any] = {
        "title": {"text": title},
        "height": 520,
        "hovermode": "closest",
        "legend": {"title": {"text": "family (click to hide)"}},
        "grid": {"rows": 1, "columns": len(datasets), "pattern": "independent"},
        "annotations": [],
    }
    for column, dataset in enumerate(datasets, start=1):
        axis = "" if column == 1 else str(column)
        layout[f"xaxis{axis}"] = {"type": "log", "title": {"text": f"{xlabel} — {dataset}"}}
        layout[f"yaxis{axis}"] = {"title": {"text": "test accuracy (%)"}}
    return {"data": traces, "layout": layout}


def _error_bars(groups: Sequence[RunGroup]) -> dict[str, Any]:
    """95% interval of each point's mean (seeds and test images) as asymmetric error bars."""
    plus, minus = [], []
    for group in groups:
        interval = uncertainty.interval(group, group.accuracy_protocol())
        mean = group.accuracy()
        if interval is None or mean is None:
            plus.append(0.0)
            minus.append(0.0)
            continue
        plus.append(max(0.0, 100 * (interval.high - mean.mean)))
        minus.append(max(0.0, 100 * (mean.mean - interval.low)))
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


def _curves_figure(data: ReportData, dataset: str) -> dict[str, Any] | None:
    """Test accuracy per epoch of every configuration of `dataset` (legend groups by family,
    a dashed line where a stage starts)."""
    groups = [
        g for g in data.groups if g.dataset == dataset and _mean_curve(data, g, "test_accuracy")[0]
    ]
    if not groups:
        return None
    labels = group_labels(groups)
    traces, shapes = [], []
    for index, group in enumerate(groups):
        epochs, values = _mean_curve(data, group, "test_accuracy")
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": html.escape(labels[group.key]),
                "legendgroup": html.escape(cards.family(group.card)),
                "x": epochs,
                "y": [100 * v for v in values],
                "line": {"color": PALETTE[index % len(PALETTE)]},
                "hovertext": [_hover_text(hover(group))] * len(epochs),
                "hoverinfo": "text+y",
                "customdata": [_payload(group)] * len(epochs),
            }
        )
        for start, name in stages(data, group):
            shapes.append(
                {"type": "line", "x0": start - 0.5, "x1": start - 0.5, "yref": "paper",
                 "y0": 0, "y1": 1, "line": {"dash": "dot", "width": 1, "color": "#999999"},
                 "name": html.escape(name)}
            )  # fmt: skip
    layout = {
        "title": {"text": f"Test accuracy per epoch — {dataset} (dotted: a stage starts)"},
        "height": 560,
        "xaxis": {"title": {"text": "epoch"}},
        "yaxis": {"title": {"text": "test accuracy (%)"}},
        "shapes": shapes,
        "legend": {"font": {"size": 10}},
    }
    return {"data": traces, "layout": layout}


def _forest_figure(data: ReportData) -> dict[str, Any] | None:
    """The static forest plot with hover: ours minus published per study row, the one-run
    95% prediction interval, one trace per verdict (the legend toggles them)."""
    rows = forest_rows(data)
    if not rows:
        return None
    names = [html.escape(f"Study {r.study} · {r.label}") for r, _ in rows]
    traces = []
    for verdict in sorted({r.verdict for r, _ in rows}):
        chosen = [
            (name, r, g) for name, (r, g) in zip(names, rows, strict=True) if r.verdict == verdict
        ]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": html.escape(verdict),
                "x": [r.gap_pt for _, r, _ in chosen],
                "y": [name for name, _, _ in chosen],
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [r.high_pt - r.gap_pt for _, r, _ in chosen],
                    "arrayminus": [r.gap_pt - r.low_pt for _, r, _ in chosen],
                },
                "marker": {"color": VERDICT_COLORS.get(verdict, "#555555"), "size": 8},
                "hovertext": [
                    f"{_hover_text(hover(g))}<br>ours − published: {r.gap_pt:+.2f} pt "
                    f"[{r.low_pt:+.2f}, {r.high_pt:+.2f}]<br>verdict: {html.escape(verdict)}"
                    for _, r, g in chosen
                ],
                "hoverinfo": "text",
                "customdata": [_payload(g) for _, _, g in chosen],
            }
        )
    layout = {
        "title": {"text": "Published vs measured: ours minus published (95% one-run PI)"},
        "height": 200 + 22 * len(rows),
        "hovermode": "closest",
        "xaxis": {"title": {"text": "ours − published (percentage points)"}, "zeroline": True},
        "yaxis": {"categoryorder": "array", "categoryarray": names[::-1], "automargin": True},
        "shapes": [ZERO_LINE],
    }
    return {"data": traces, "layout": layout}


def figures(data: ReportData) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, title, plotly figure as plain JSON-able dicts) of every interactive figure."""
    found = [
        ("published", "Published vs measured", _forest_figure(data)),
        (
            "params",
            "Accuracy vs parameters",
            _scatter_figure(
                data,
                lambda g: g.stat("params"),
                title="Accuracy vs parameters (every configuration)",
                xlabel="trainable parameters",
                published=published_params(data),
            ),
        ),
        (
            "time",
            "Accuracy vs time per epoch",
            _scatter_figure(
                data,
                lambda g: g.stat("time_per_epoch_s"),
                title="Accuracy vs training time per epoch (every configuration)",
                xlabel="training time per epoch, s",
            ),
        ),
        (
            "energy",
            "Accuracy vs energy",
            _scatter_figure(
                data,
                lambda g: energy.energy_wh(g.runs),
                title="Accuracy vs energy per run (every configuration)",
                xlabel=f"energy per run, {energy.UNIT}",
            ),
        ),
    ]
    for dataset in datasets_in([g.dataset for g in data.groups]):
        found.append(
            (
                f"curves-{slug(dataset)}",
                f"Learning curves — {dataset}",
                _curves_figure(data, dataset),
            )
        )
    return [(key, title, figure) for key, title, figure in found if figure is not None]


CONFIG_COLUMNS: list[Column[RunGroup]] = [
    Column("Model", lambda g: g.model),
    Column("Dataset", lambda g: g.dataset),
    Column("Settings", lambda g: str(hover(g)["settings"])),
    Column("Device", lambda g: g.device),
    Column("Seeds", lambda g: str(len(g.runs))),
    Column("Test acc (%)", lambda g: f"{100 * a.mean:.2f}" if (a := g.accuracy()) else "—"),
    Column("Run ids", lambda g: ", ".join(str(r.run_id) for r in g.runs)),
]


def _finite(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither; JSON.parse would fail on the page)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _spec_script(key: str, figure: dict[str, Any]) -> str:
    """The figure as JSON in a non-executed script element; `</` escaped so no text in it
    can end the element."""
    text = json.dumps(_finite(figure), default=str, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="plot-{key}-spec">{text}</script>'


def page(data: ReportData, plotly_js: str) -> str:
    """The whole interactive page (plotly's JavaScript inlined)."""
    sections = []
    for key, title, figure in figures(data):
        sections.append(
            f"<section><h2>{html.escape(title)}</h2>"
            f'<div class="plot" id="plot-{key}" data-figure="{key}"></div>'
            f"{_spec_script(key, figure)}</section>"
        )
    table = Table.of(CONFIG_COLUMNS, data.groups, caption="Click a header to sort.")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        "<title>mnistbench results — interactive</title>"
        f"<style>{_CSS}</style>"
        f"<script>{plotly_js}</script>"
        f"<script>var PLOT_CONFIG = {json.dumps(PLOT_CONFIG)};{_PAGE_SCRIPT}</script>"
        f"<script>{SORT_SCRIPT}</script></head>\n"
        '<body data-plots-rendered="0"><header><h1>mnistbench results — interactive</h1>'
        f"<p>{len(data.runs)} runs. Hover a point for its configuration, seeds, interval and "
        "run ids; click a legend entry to hide it; drag to zoom, double-click to reset. "
        "Open with <code>#run=ID</code> to pick out one run.</p></header><main>"
        '<section><h2>Selected run</h2><pre id="selected-run">Open this page with '
        "#run=ID (a run id from the tables) to show one run here.</pre></section>"
        + "".join(sections)
        + f"<section><h2>Configurations</h2>{html_block(table)}</section>"
        + "</main></body></html>\n"
    )


def write_interactive(data: ReportData, out: Path) -> Path:
    """Write out/interactive.html (self-contained: opens from disk with no network)."""
    from plotly.offline import get_plotlyjs

    path = out / PAGE
    path.write_text(page(data, get_plotlyjs()), encoding="utf-8")
    return path
