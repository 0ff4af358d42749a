"""Point labels that never overlap one another, stay inside their axes and keep off the points.

adjustText (the library people use for this) moves the labels apart; it stops after a fixed
number of iterations, so a dense cluster can keep an overlap. A deterministic pass then moves
any label still overlapping to the nearest free spot on rings around its point.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from adjustText import adjust_text
from matplotlib.axis import XTick, YTick
from matplotlib.text import Text
from matplotlib.transforms import Bbox

# adjustText stops at zero overlap or after this many steps; an iteration limit (not its default
# time limit) keeps the result the same on a fast and a busy machine.
ITERATIONS = 150
PAD_PX = 2.0  # space kept between two labels, in pixels
RINGS = 24  # rings of candidate spots of the fallback placer, 6 px apart
SPOTS_PER_RING = 16
LEADER_MIN_PX = 8.0  # a label farther than this from its point gets a line to it
# adjustText re-draws through `ax.figure.draw_without_rendering()`, which a SubFigure (the
# scatter's panels) lacks; it then falls back to `canvas.draw()`, the same layout, after
# logging "you are using an old matplotlib version" once per call (wrong: matplotlib is 3.11)
_ADJUST_TEXT_LOG = logging.getLogger("adjustText")


def boxes(texts: Sequence[Text], renderer, pad: float = 0.0) -> list[Bbox]:
    """Each text's box on the canvas (pixels), grown by `pad` on every side."""
    return [t.get_window_extent(renderer).padded(pad) for t in texts]


def overlapping_pairs(found: Sequence[Bbox]) -> list[tuple[int, int]]:
    """Index pairs of boxes that intersect (touching edges do not count)."""
    return [
        (i, j)
        for i in range(len(found))
        for j in range(i + 1, len(found))
        if _intersect(found[i], found[j])
    ]


def _intersect(a: Bbox, b: Bbox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def place(
    ax,
    texts: list[Text],
    anchors: Sequence[tuple[float, float]],
    obstacles: Sequence[tuple[float, float]] = (),
) -> None:
    """Move `texts` so that no two overlap, inside `ax`, off the points; each label is tied to
    its anchor (data units, one per text) by a thin leader line in its colour when moved away.

    `obstacles` are further points (data units) labels keep off. Call it once the figure's
    layout is final: the boxes are measured on its canvas.
    """
    if not texts:
        return
    ax.set_autoscale_on(False)  # the limits are final: leader lines must not move them
    renderer = ax.figure.canvas.get_renderer()
    points = [*anchors, *obstacles]
    with _adjust_text_warnings_off():
        adjust_text(
            texts,
            x=[x for x, _ in points],
            y=[y for _, y in points],
            target_x=[x for x, _ in anchors],
            target_y=[y for _, y in anchors],
            ax=ax,
            iter_lim=ITERATIONS,
            ensure_inside_axes=True,
            expand=(1.08, 1.3),
            prevent_crossings=False,  # a third of its time; leader lines crossing is cosmetic
        )
    _separate(ax, texts, renderer)
    for text, anchor in zip(texts, anchors, strict=True):
        _leader(ax, text, anchor, renderer)


@contextmanager
def _adjust_text_warnings_off() -> Iterator[None]:
    level = _ADJUST_TEXT_LOG.level
    _ADJUST_TEXT_LOG.setLevel(logging.ERROR)
    try:
        yield
    finally:
        _ADJUST_TEXT_LOG.setLevel(level)


def _leader(ax, text: Text, anchor: tuple[float, float], renderer) -> None:
    """A thin line from the anchor point to the nearest point of the label's box, when the label
    is not right next to its point."""
    box = text.get_window_extent(renderer)
    x, y = ax.transData.transform(anchor)
    near = (min(max(x, box.x0), box.x1), min(max(y, box.y0), box.y1))
    if math.dist((x, y), near) < LEADER_MIN_PX:
        return
    end = ax.transData.inverted().transform(near)
    ax.plot(
        [anchor[0], end[0]],
        [anchor[1], end[1]],
        color=text.get_color(),
        lw=0.5,
        alpha=0.6,
        zorder=1,
    )


def _separate(ax, texts: list[Text], renderer) -> None:
    """Deterministic last pass: any label that still overlaps an earlier one, or sticks out of
    the axes, goes to the nearest spot on rings around where it is where it fits."""
    area = ax.get_window_extent(renderer)
    placed: list[Bbox] = []
    for text in texts:
        box = text.get_window_extent(renderer).padded(PAD_PX)
        if _fits(box, placed, area):
            placed.append(box)
            continue
        to_pixels = ax.transData
        x, y = to_pixels.transform(text.get_position())
        spot = _free_spot(box, x, y, placed, area)
        if spot is not None:
            dx, dy = spot
            text.set_position(to_pixels.inverted().transform((x + dx, y + dy)))
            box = text.get_window_extent(renderer).padded(PAD_PX)
        placed.append(box)


def _fits(box: Bbox, placed: Sequence[Bbox], area: Bbox) -> bool:
    inside = area.x0 <= box.x0 and box.x1 <= area.x1 and area.y0 <= box.y0 and box.y1 <= area.y1
    return inside and not any(_intersect(box, other) for other in placed)


def _free_spot(
    box: Bbox, x: float, y: float, placed: Sequence[Bbox], area: Bbox
) -> tuple[float, float] | None:
    """The smallest shift (pixels) on the candidate rings that makes `box` fit."""
    for ring in range(1, RINGS + 1):
        radius = 6.0 * ring
        for k in range(SPOTS_PER_RING):
            angle = 2 * math.pi * k / SPOTS_PER_RING
            dx, dy = radius * math.cos(angle), radius * math.sin(angle)
            if _fits(box.translated(dx, dy), placed, area):
                return dx, dy
    return None


def label_problems(fig) -> list[str]:
    """Every visible, non-empty text of a drawn figure that overlaps another or sticks out of
    the figure, as sentences (empty: the figure is clean). Boxes are measured on the figure's
    own canvas, as it was saved."""
    fig.canvas.draw()  # as the PNG was drawn (saving the SVG draws at another dpi)
    renderer = fig.canvas.get_renderer()
    area = fig.bbox
    texts = [t for t in drawn_texts(fig) if t.get_text().strip()]
    found = [t.get_window_extent(renderer) for t in texts]
    problems = [
        f"{texts[i].get_text()!r} overlaps {texts[j].get_text()!r}"
        for i, j in overlapping_pairs(found)
    ]
    tolerance = 0.5  # pixels: antialiasing and rounding at the edge
    problems += [
        f"{t.get_text()!r} leaves the figure"
        for t, b in zip(texts, found, strict=True)
        if b.x0 < area.x0 - tolerance
        or b.y0 < area.y0 - tolerance
        or b.x1 > area.x1 + tolerance
        or b.y1 > area.y1 + tolerance
    ]
    return problems


def drawn_texts(fig) -> list[Text]:
    """The texts a figure draws: its visible texts outside axes ticks, plus the tick labels of
    the ticks inside each visible axes' view (matplotlib keeps spare ticks it does not draw)."""
    ticks = {id(t) for t in fig.findobj(XTick) + fig.findobj(YTick)}
    tick_texts = {
        id(x) for t in fig.findobj(lambda a: id(a) in ticks) for x in (t.label1, t.label2)
    }
    found = [
        t for t in fig.findobj(Text) if id(t) not in tick_texts and t.get_visible() and _shown(t)
    ]
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():
                continue
            for tick in axis._update_ticks():  # the ticks it draws (private, stable since 3.1)
                found += [x for x in (tick.label1, tick.label2) if x.get_visible()]
    return found


def _shown(text: Text) -> bool:
    """False for a text of an invisible axes (an unused panel of a grid)."""
    axes = text.axes
    return axes is None or axes.get_visible()
