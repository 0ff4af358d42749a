"""A report as a list of sections of blocks, rendered to Markdown and to one static HTML page.

The page needs no server and no network: CSS and the image check are inline, figures are files
beside it referred to by relative paths.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mnistbench.escape import markdown_cell, markdown_inline, safe_url, terminal

T = TypeVar("T")

# [text](target): the one inline link syntax, the same in Markdown and (converted) in HTML
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


@dataclass
class Paragraph:
    text: str  # plain text; `backticks` mark code, [text](target) a link


@dataclass(frozen=True)
class Column(Generic[T]):
    """One table column: its title and how to get its cell from a row's item (airbench's
    `logging_columns_list` idea: a column is named once, next to how its value is found)."""

    title: str
    cell: Callable[[T], str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""

    @classmethod
    def of(cls, columns: Sequence[Column[T]], items: Iterable[T], caption: str = "") -> Table:
        """A table with one row per item and one cell per column."""
        return cls(
            [c.title for c in columns], [[c.cell(i) for c in columns] for i in items], caption
        )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; each cell escaped (escape.markdown_cell: newlines,
    `|`, tags, unsafe links), since cells carry names and notes from the store."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


@dataclass
class Figure:
    """A matplotlib figure saved as PNG (shown) and SVG (linked), paths relative to the page."""

    title: str
    png: str
    svg: str | None = None
    caption: str = ""


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Paragraph | Table | Figure] = field(default_factory=list)
    level: int = 2


@dataclass
class Document:
    title: str
    intro: list[Paragraph | Table | Figure]
    sections: list[Section]


# ----------------------------------------------------------------------------- Markdown


def to_markdown(document: Document, *, figures: bool = True) -> str:
    """Markdown of the document; without `figures`, figure blocks are left out (stdout)."""
    parts = [f"# {_md_line(document.title)}", ""]
    for block in document.intro:
        parts += _markdown_block(block, figures)
    for section in document.sections:
        blocks = [b for b in section.blocks if figures or not isinstance(b, Figure)]
        parts += ["#" * section.level + " " + _md_line(section.title), ""]
        for block in blocks:
            parts += _markdown_block(block, figures)
    return "\n".join(parts).rstrip("\n") + "\n"


def _md_line(text: str) -> str:
    """Text from data on one Markdown line: a newline in a name must not start a heading."""
    return markdown_inline(" ".join(text.splitlines()))


def _markdown_block(block: Paragraph | Table | Figure, figures: bool) -> list[str]:
    if isinstance(block, Paragraph):
        return [_md_line(block.text), ""]
    if isinstance(block, Table):
        caption = [f"*{_md_line(block.caption)}*", ""] if block.caption else []
        return [*caption, markdown_table(block.header, block.rows), ""]
    if not figures:
        return []
    svg = f" ([SVG]({block.svg}))" if block.svg else ""
    caption = f"*{_md_line(block.caption)}*{svg}" if block.caption else svg.strip()
    image = f"![{_md_line(block.title)}]({block.png})"
    return [image, "", caption, ""] if caption else [image, ""]


# --------------------------------------------------------------------------------- HTML

_CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --accent: #2f5fb3; --bg: #fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: #f4f6fa; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #c6cddb; }
header code { background: #2c3446; color: #e6ebf5; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid var(--line);
      position: sticky; top: 0; z-index: 1; font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; white-space: nowrap; }
main { padding: 8px 24px 48px; }
section { background: var(--bg); border: 1px solid var(--line); border-radius: 8px;
          padding: 4px 20px 16px; margin: 18px 0; }
h2 { font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 16px; }
p { max-width: 110ch; }
code { background: #eef1f6; padding: 1px 4px; border-radius: 3px; font-size: 90%; }
.scroll { overflow-x: auto; margin: 8px 0 14px; }
/* max-content: every column as wide as its content (long cells wrap at 18em); the wrapper
   scrolls sideways rather than squeezing the numbers into narrow columns */
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums;
        width: max-content; }
caption { text-align: left; color: var(--muted); padding: 4px 0; font-style: italic; }
th, td { border: 1px solid var(--line); padding: 3px 7px; text-align: left; vertical-align: top;
         max-width: 18em; }
td { white-space: normal; }
th { background: #eef1f6; max-width: 8.5em; vertical-align: bottom; cursor: pointer; }
th[data-sorted="up"]::after { content: " ▲"; } th[data-sorted="down"]::after { content: " ▼"; }
tbody tr:nth-child(even) { background: #f8f9fc; }
/* inline-table + table-caption: the caption wraps at the image's width, so figures sit side
   by side instead of each stretching to its caption's length */
figure { display: inline-table; margin: 10px 10px 10px 0; vertical-align: top; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
             border-radius: 4px; background: #fff; }
figcaption { display: table-caption; caption-side: bottom; color: var(--muted); font-size: 13px;
             padding-top: 4px; }
.status-broken { outline: 3px solid #c0392b; }
"""

# Sets data attributes on <body> once every image has loaded, so a headless browser (and the
# tests) can tell a page whose figures render from one with broken links.
_IMAGE_CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  images.forEach(function (i) { if (ok.indexOf(i) < 0) { i.className += " status-broken"; } });
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(ok.length));
  document.body.setAttribute("data-report-ready", ok.length === images.length ? "yes" : "broken");
});
"""


# Click a table header to sort its rows by that column (numbers by value: "98.76% ± 0.1" sorts
# as 98.76; a second click reverses). Cells keep their escaped content: rows are only moved.
SORT_SCRIPT = """
document.addEventListener("click", function (event) {
  var th = event.target.closest ? event.target.closest("th") : null;
  if (!th || !th.closest("thead")) { return; }
  var table = th.closest("table"), body = table.tBodies[0];
  var column = Array.prototype.indexOf.call(th.parentNode.children, th);
  var down = th.getAttribute("data-sorted") !== "up";
  Array.prototype.forEach.call(th.parentNode.children, function (h) {
    h.removeAttribute("data-sorted");
  });
  th.setAttribute("data-sorted", down ? "up" : "down");
  function key(row) {
    var text = (row.children[column] || {}).textContent || "";
    var plain = text.replace(/,/g, "").replace(/\\u2212/g, "-");
    var number = parseFloat(plain);
    return isNaN(number) ? text.toLowerCase() : number;
  }
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = key(a), y = key(b);
    if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
    return (x < y ? -1 : x > y ? 1 : 0) * (down ? 1 : -1);
  });
  rows.forEach(function (row) { body.appendChild(row); });
});
"""


def _inline(text: str) -> str:
    """Escape text for HTML; `backticks` become <code>, **text** <strong>, [text](target) a
    link when the target is http(s) or relative (escape.safe_url), else the text stays text."""
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(terminal(text), quote=False))
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
    return _LINK.sub(_html_link, escaped)


def _html_link(match: re.Match[str]) -> str:
    label, target = match.group(1), html.unescape(match.group(2))
    if safe_url(target) is None:
        return f"{label} ({html.escape(target)})"
    return f'<a href="{html.escape(target)}">{label}</a>'


def _html_block(block: Paragraph | Table | Figure) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        caption = f"<caption>{_inline(block.caption)}</caption>" if block.caption else ""
        head = "".join(f"<th>{_inline(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows
        )
        return (
            f'<div class="scroll"><table>{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
    svg = f' <a href="{html.escape(block.svg)}">SVG</a>' if block.svg else ""
    return (
        f'<figure><img src="{html.escape(block.png)}" alt="{html.escape(block.title)}">'
        f"<figcaption><strong>{_inline(block.title)}</strong>"
        f"{'. ' + _inline(block.caption) if block.caption else ''}{svg}</figcaption></figure>"
    )


def html_block(block: Paragraph | Table | Figure) -> str:
    """One block as HTML, escaped as every block of the report is (other pages reuse it)."""
    return _html_block(block)


def to_html(document: Document, *, subtitle: str = "") -> str:
    """One self-contained HTML page (inline CSS and script; images by relative path)."""
    nav = "".join(
        f'<a href="#{s.anchor}">{html.escape(s.title)}</a>'
        for s in document.sections
        if s.level == 2
    )
    body: list[str] = []
    open_section = False
    for section in document.sections:
        if section.level == 2:
            if open_section:
                body.append("</section>")
            body.append(f'<section id="{section.anchor}">')
            open_section = True
        tag = f"h{min(section.level, 6)}"
        anchor = f' id="{section.anchor}"' if section.level > 2 else ""
        body.append(f"<{tag}{anchor}>{html.escape(section.title)}</{tag}>")
        body += [_html_block(b) for b in section.blocks]
    if open_section:
        body.append("</section>")
    intro = "".join(_html_block(b) for b in document.intro)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(document.title)}</title><style>{_CSS}</style>"
        f"<script>{_IMAGE_CHECK}</script><script>{SORT_SCRIPT}</script></head>\n"
        f'<body data-report-ready="no"><header><h1>{html.escape(document.title)}</h1>'
        f"<p>{_inline(subtitle)}</p></header><nav>{nav}</nav>\n<main>"
        f'<section id="about">{intro}</section>\n' + "\n".join(body) + "</main></body></html>\n"
    )
