"""Escaping what mnistbench did not write (names, errors, notes from the store or a merged
file) at each output boundary: HTML, Markdown, the terminal and CSV. One function per boundary,
each pure and dependency-free, so the CLI and the report share them.

Written here rather than taken from a library: the standard library's ``html.escape`` does the
HTML part and is used; what remains (which URLs may become links, a Markdown table cell, a
terminal's escape sequences, OWASP's CSV rule) is a few lines each with no well-kept package
covering all four (bleach is deprecated; markupsafe escapes HTML only).
"""

from __future__ import annotations

import html
import re
from typing import Any

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-character ESC sequences, then
# any C0/C1 control character left (tab and newline are kept where text may have lines).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Unicode bidirectional overrides and isolates reorder what a reader sees ("Trojan Source").
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_SAFE_SCHEMES = ("http", "https")
# OWASP CSV injection: a cell starting with one of these is read as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def terminal(text: Any, *, keep_newlines: bool = True) -> str:
    """Text safe to print: escape sequences (colours, cursor moves, window titles) and control
    characters removed, bidirectional overrides too; newlines and tabs kept unless told."""
    cleaned = _ANSI.sub("", str(text))
    cleaned = (_CONTROL if keep_newlines else _CONTROL_ALL).sub("", cleaned)
    return _BIDI.sub("", cleaned)


def safe_url(url: str) -> str | None:
    """``url`` when it may become a link: http(s), or relative (a path, an #anchor, a query);
    None for any other scheme (javascript:, data:, vbscript:, file:, ...). Browsers drop tabs,
    newlines and leading spaces or controls before reading the scheme, so the check does too."""
    probe = re.sub(r"[\x00-\x20\x7f]", "", url)
    match = _SCHEME.match(probe)
    if match is None:
        return url if ":" not in probe.split("/")[0] else None
    return url if match.group(1).lower() in _SAFE_SCHEMES else None


def html_text(text: Any) -> str:
    """Text for HTML element content or a quoted attribute (quotes escaped too)."""
    return html.escape(terminal(text), quote=True)


def markdown_cell(text: Any) -> str:
    """One cell of a Markdown table: newlines become spaces (a newline would end the row and let
    the rest start a heading), pipes are escaped, tags are shown, not run."""
    flat = re.sub(r"[\r\n]+", " ", terminal(text))
    return markdown_inline(flat).replace("|", "\\|")


def markdown_inline(text: Any) -> str:
    """Markdown text where ``<`` and ``>`` stay text (no raw HTML such as <script>) and a link
    to anything but http(s) or a relative target is shown as text, not made clickable."""
    cleaned = terminal(text).replace("<", "&lt;").replace(">", "&gt;")
    return unsafe_links_as_text(cleaned)


_LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def unsafe_links_as_text(text: str) -> str:
    """``[label](target)`` with an unsafe target becomes ``label (target)`` written as code."""

    def replace(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if safe_url(target.strip()) is not None:
            return match.group(0)
        return f"{label} (`{target.replace('`', '')}`)"

    return _LINK.sub(replace, text)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with =, +, -, @, tab or a line break
    gets a leading apostrophe (OWASP's advice); numbers stay numbers."""
    if isinstance(value, str):
        value = terminal(value)
        if value.startswith(_FORMULA_START):
            return "'" + value
    return value
