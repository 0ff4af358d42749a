"""The full report: published tables rebuilt beside measured ones, figures, and the HTML page.

`report_markdown(store)` gives the tables alone (what `mnistbench report` prints);
`write_report(store, out_dir)` writes report.md, index.html, figures/ and artefacts/.
Everything comes from the store (runs and their model cards), so a report can be rebuilt at any
time without training, on any machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from mnistbench.report.collect import ReportData, load
from mnistbench.report.document import Document, Figure, Paragraph, Table, to_html, to_markdown
from mnistbench.report.interactive import PAGE, write_interactive
from mnistbench.report.sections import SECTIONS
from mnistbench.report.sections.overview import intro
from mnistbench.store import Store

INTERACTIVE_NOTE = (
    f"Interactive figures: [{PAGE}]({PAGE}) (every configuration, with hover for its settings, "
    "seeds, interval and run ids, legend toggles and zoom; it opens from disk with no network)."
    " The figures below are the static ones, for papers."
)
DOCS = "docs"  # study links (model cards) point into the repository's docs/ folder
STUDIES_PAGE = "studies.md"


@dataclass
class ReportFiles:
    """What write_report produced."""

    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    interactive: Path | None = None


def build_document(data: ReportData, out: Path | None) -> Document:
    """The whole report; figures are drawn into `out` (left out when `out` is None)."""
    sections = [s for builder in SECTIONS for s in builder(data, out)]
    return Document("mnistbench results", intro(data), [s for s in sections if s.blocks])


def report_markdown(store: Store) -> str:
    """The report's tables as Markdown, without figures (nothing is written)."""
    return to_markdown(build_document(load(store), None), figures=False)


def write_report(store: Store, out_dir: str | Path) -> ReportFiles:
    """Write report.md, index.html, figures/*.png|svg and artefacts/ into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load(store)
    document = rebase_doc_links(build_document(data, out), out)
    interactive = write_interactive(data, out) if data.finished else None
    if interactive is not None:
        document.intro.insert(1, Paragraph(INTERACTIVE_NOTE))
    markdown = out / "report.md"
    page = out / "index.html"
    markdown.write_text(to_markdown(document), encoding="utf-8")
    page.write_text(to_html(document, subtitle=_subtitle(data)), encoding="utf-8")
    shown = [b for s in document.sections for b in s.blocks if isinstance(b, Figure)]
    return ReportFiles(
        markdown=markdown,
        html=page,
        figures=[out / b.png for b in shown if b.png.startswith("figures/")],
        images=[out / b.png for b in shown if b.png.startswith("artefacts/")],
        interactive=interactive,
    )


def _subtitle(data: ReportData) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Built from `{data.store_path}` on {stamp}: {len(data.runs)} runs."


def rebase_doc_links(document: Document, out: Path) -> Document:
    """Links into docs/ made relative to `out` when it lies inside a checkout that has
    docs/studies.md, so the page's study links open; elsewhere they stay repository-relative."""
    here = out.resolve()
    root = next((p for p in (here, *here.parents) if (p / DOCS / STUDIES_PAGE).is_file()), None)
    if root is None:
        return document
    prefix = Path(os.path.relpath(root, here)).as_posix()
    if prefix == ".":
        return document
    link = re.compile(rf"\]\({DOCS}/")

    def rebased(text: str) -> str:
        return link.sub(f"]({prefix}/{DOCS}/", text)

    def block(b):
        if isinstance(b, Paragraph):
            return Paragraph(rebased(b.text))
        if isinstance(b, Table):
            return Table(b.header, [[rebased(c) for c in row] for row in b.rows], b.caption)
        return b

    sections = [replace(s, blocks=[block(b) for b in s.blocks]) for s in document.sections]
    return Document(document.title, [block(b) for b in document.intro], sections)
