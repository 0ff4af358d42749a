"""Generated records (Hypothesis) against the JSON-lines reader, merge and the report: any JSON
value in any field, huge and non-finite numbers, odd Unicode, deep nesting. None of them may
cause a traceback, a half-merged file, a store that fails to report afterwards, or a live link.

Example counts are bounded (``max_examples``) so CI stays fast; ``deadline=None`` because a
merge and a report take tens of milliseconds on a busy 2-core runner.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistbench.errors import StoreError
from mnistbench.escape import csv_cell, markdown_cell, safe_url, terminal
from mnistbench.report.build import build_document
from mnistbench.report.collect import load
from mnistbench.report.document import Document, Paragraph, Section, Table, to_html, to_markdown
from mnistbench.store import Store, export_jsonl, read_jsonl, read_runs
from run_configs import real_config

EXAMPLES = 40  # per property; five properties, 200 generated cases in all
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text with every kind of character, lone surrogates and controls included.
ANY_TEXT = st.text(
    st.characters(codec=None, categories=["L", "N", "P", "S", "Z", "Cc", "Cf", "Cs"]), max_size=40
)
HOSTILE_TEXT = st.one_of(
    ANY_TEXT,
    st.sampled_from(
        [
            "[x](javascript:alert(1))",
            "<script>alert(1)</script>",
            "a\n# h\n|x|",
            "=1+1",
            "\x1b]0;t\x07",
            "[y](data:text/html,x)",
            "\u202e",
            "[z]( JAVASCRIPT:1)",
        ]
    ),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    # no subnormals: the CLI tests flush them to zero in this process (engine.device)
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | HOSTILE_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


def _base_line(tmp: Path) -> dict:
    path = tmp / "base.sqlite"
    if not path.exists():
        with Store(path, card_builder=lambda c: {"card_version": 1, "model": c["model"]}) as s:
            config, config_hash = real_config("mlp")
            run_id = s.start_run(config, config_hash, {"device": "cpu"})
            s.log_epoch(run_id, 1, {"train_loss": 0.5, "test_accuracy": 0.9})
            s.finish_run(run_id, "finished", {"test_accuracy": 0.9})
    with Store(path, read_only=True) as store:
        return json.loads(next(export_jsonl(store)))


# Where a generated value goes: a top-level field, or a key inside a nested object.
PLACES = st.sampled_from([
    ("model",), ("dataset",), ("hostname",), ("error",), ("started_at",), ("status",),
    ("config_hash",), ("fingerprint",), ("config",), ("metrics",), ("model_card",),
    ("epochs",), ("artefacts",), ("config", "epochs"), ("config", "model"), ("config", "lr"),
    ("config", "model_options"), ("config", "dataset"), ("metrics", "test_accuracy"),
    ("metrics", "x"), ("metrics", "test_accuracy_ci95"), ("model_card", "recipe"),
    ("model_card", "published"), ("model_card", "studies"), ("model_card", "tags"),
    ("environment", "device_name"), ("format_version",),
])  # fmt: skip


def _place(line: dict, where: tuple[str, ...], value: object) -> dict:
    edited = copy.deepcopy(line)
    target = edited
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    return edited


def _live_links(html: str) -> list[str]:
    return [
        href
        for href in re.findall(r'href="([^"]*)"', html)
        if safe_url(href.replace("&amp;", "&")) is None
    ]


@SETTINGS
@given(where=PLACES, value=JSON_VALUES)
def test_a_generated_record_merges_whole_or_not_at_all_and_the_store_still_reports(
    tmp_path_factory, where: tuple[str, ...], value: object
) -> None:
    tmp = tmp_path_factory.mktemp("merge")
    base = _base_line(tmp_path_factory.getbasetemp())
    first = _place(base, ("started_at",), "2026-01-01T00:00:00.000+00:00")
    export = tmp / "runs.jsonl"
    text = json.dumps(_place(base, where, value), allow_nan=True)  # NaN and surrogates too
    export.write_text(json.dumps(first) + "\n" + text + "\n", encoding="utf-8")
    with Store(tmp / "t.sqlite") as store:
        try:
            counts = store.import_runs(read_runs(export))
        except StoreError:
            assert store.list_runs() == []  # refused: nothing of the file, not even line 1
        else:
            assert counts.copied + counts.present == 2 and not counts.invalid
        data = load(store)
        html = to_html(build_document(data, None))
        to_markdown(build_document(data, None), figures=False)
    assert _live_links(html) == []


@SETTINGS
@given(lines=st.lists(st.binary(max_size=200) | JSON_VALUES.map(json.dumps), max_size=5))
def test_the_reader_answers_any_bytes_line_by_line(tmp_path_factory, lines: list) -> None:
    export = tmp_path_factory.mktemp("read") / "runs.jsonl"
    export.write_bytes(
        b"\n".join(x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass") for x in lines)
    )
    for record in read_jsonl(export):  # no exception: each line a run or an InvalidRecord
        assert hasattr(record, "problem") or hasattr(record, "run")


@SETTINGS
@given(cells=st.lists(st.lists(HOSTILE_TEXT, min_size=2, max_size=2), min_size=1, max_size=4))
def test_the_report_renders_hostile_text_inert(cells: list[list[str]]) -> None:
    table = Table(["a", "b"], cells, caption=cells[0][0])
    document = Document(
        cells[0][1], [Paragraph(c[0]) for c in cells], [Section("s", cells[0][0], [table])]
    )
    html = to_html(document)
    # the page's own scripts (the sortable tables) and no more: the same count as a page of
    # harmless text
    plain = Document("t", [Paragraph("x")], [Section("s", "c", [Table(["a", "b"], [["x", "y"]])])])
    own_scripts = to_html(plain).lower().count("<script")
    assert _live_links(html) == [] and html.lower().count("<script") == own_scripts
    markdown = to_markdown(document)
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(cells)  # no cell broke its row
    assert "<script" not in markdown.lower() and "\x1b" not in markdown


@SETTINGS
@given(text=HOSTILE_TEXT)
def test_escape_functions_hold_for_any_text(text: str) -> None:
    cell = markdown_cell(text)
    assert "\n" not in cell and "\r" not in cell and "<" not in cell
    assert re.search(r"(?<!\\)\|", cell) is None  # every pipe escaped
    cleaned = terminal(text)
    assert re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", cleaned) is None
    value = csv_cell(text)
    assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))


@SETTINGS
@given(url=st.one_of(ANY_TEXT, st.sampled_from(["javascript:x", " JavaScript:x", "data:x"])))
def test_only_http_and_relative_urls_are_links(url: str) -> None:
    kept = safe_url(url)
    if kept is not None:
        probe = re.sub(r"[\x00-\x20\x7f]", "", url).lower()
        assert probe.startswith(("http:", "https:")) or not re.match(r"^[a-z][a-z0-9+.\-]*:", probe)
