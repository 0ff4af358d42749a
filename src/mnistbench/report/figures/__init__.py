"""The report's matplotlib figures, each saved as PNG and SVG under DIR/figures/."""

from mnistbench.report.figures.bars import ForestRow, TimeBar, published_vs_measured, speedup
from mnistbench.report.figures.common import slug
from mnistbench.report.figures.panels import confusion_matrices, learning_curves, sensitivity
from mnistbench.report.figures.scatter import Point, Published, accuracy_vs_cost

__all__ = [
    "ForestRow",
    "Point",
    "Published",
    "TimeBar",
    "accuracy_vs_cost",
    "confusion_matrices",
    "learning_curves",
    "published_vs_measured",
    "sensitivity",
    "slug",
    "speedup",
]
