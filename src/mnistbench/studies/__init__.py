"""The five published studies mnistbench reproduces, and every figure each one publishes.

The one place published figures live: per study, model, dataset and setting (study C publishes
five settings per dataset). Run records carry the figures that apply to them in their model
card, so reports never read this module; `docs/studies.md` is generated from it
(`python -m mnistbench.studies > docs/studies.md`, a test fails when the page is stale).
Figures were transcribed from the studies' own READMEs and tables; where a study states no
figure, the field is None, never a guess.
"""

from mnistbench.studies.catalog import FIGURES, STUDIES
from mnistbench.studies.figure import PROTOCOLS, PublishedFigure, Study, setting_text
from mnistbench.studies.lookup import (
    closest_figure,
    published_figures,
    recipe_figure,
    same_setting,
    setting_differences,
    studies_of,
)
from mnistbench.studies.markdown import studies_markdown

__all__ = [
    "FIGURES",
    "PROTOCOLS",
    "STUDIES",
    "PublishedFigure",
    "Study",
    "closest_figure",
    "published_figures",
    "recipe_figure",
    "same_setting",
    "setting_differences",
    "setting_text",
    "studies_markdown",
    "studies_of",
]
