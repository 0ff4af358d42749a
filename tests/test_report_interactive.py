"""The interactive page: self-contained (opens from disk with the network off and requests
nothing outside itself), every figure rendered by plotly in headless Chromium, and a known
run's hover payload found; store text escaped on its way into the page."""

from __future__ import annotations

import html
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mnistbench.report import write_report
from mnistbench.report.collect import load
from mnistbench.report.interactive import figures, page
from mnistbench.store import Store
from test_report import _chromium, build_store

# Chromium without its own background traffic, and with every host unresolvable and every
# proxy connection refused: anything the page fetched from the network would fail (and still
# show up in its resource timing list, which the probe below reads).
OFFLINE = (
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--disable-background-networking", "--disable-component-update", "--no-pings",
)  # fmt: skip
# appended to a copy of the page: every resource it loaded, once plotly has drawn
PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var names = performance.getEntriesByType("resource").map(function (e) { return e.name; });
  document.body.setAttribute("data-resources", JSON.stringify(names));
}, 1000); });
</script>"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    root = tmp_path_factory.mktemp("interactive")
    store = Store(build_store(root / "results.sqlite"))
    write_report(store, root / "out")
    return root / "out", store


class _Links(HTMLParser):
    """Every src/href attribute of the page's tags (script text is not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found += [v or "" for k, v in attrs if k in ("src", "href")]


def _open(page_path: Path, tmp_path: Path, fragment: str = "") -> dict[str, str]:
    """Open a copy of the page (with the probe) offline; the <body> attributes it ends with."""
    probed = tmp_path / page_path.name
    probed.write_text(page_path.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    dom = subprocess.run(
        [
            _chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", *OFFLINE,
            "--dump-dom", probed.resolve().as_uri() + fragment,
        ],
        capture_output=True, text=True, timeout=180, check=True,
    ).stdout  # fmt: skip
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None
    attributes = {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', body.group(1))}
    return {**attributes, "dom": dom}


def test_the_page_links_nothing_outside_itself(built) -> None:
    out, _ = built
    parser = _Links()
    for name in ("interactive.html", "index.html"):
        parser.feed((out / name).read_text(encoding="utf-8"))
    # the static page's figures and the link to the interactive one: the check sees tags
    assert "interactive.html" in parser.found and "figures/accuracy_vs_params.png" in parser.found
    assert [u for u in parser.found if re.match(r"^([a-z][a-z0-9+.-]*:|//)", u, re.I)] == []


def test_figures_render_offline_with_the_hover_payload_of_a_known_run(built, tmp_path) -> None:
    out, store = built
    mlp = [r for r in store.list_runs(model="mlp", dataset="mnist") if r.status == "finished"]
    ids = sorted(r.run_id for r in mlp)
    body = _open(out / "interactive.html", tmp_path, f"#run={ids[0]}")
    expected = len(figures(load(store)))
    # published vs measured, params, time, energy, the learning curves of both datasets
    assert expected == 6
    assert body["data-plots-total"] == body["data-plots-rendered"] == str(expected)
    assert json.loads(body["data-resources"]) == []  # nothing fetched, not even from disk
    assert body["data-selected-run"] == str(ids[0])
    # #run=ID hovered the run's points: plotly drew its hover box with the run's payload
    hovers = re.findall(r'class="hovertext".*?data-unformatted="([^"]*)"', body["dom"])
    assert any(f"run ids: {ids}" in html.unescape(h) and "mlp" in h for h in hovers)
    shown = re.search(r'<pre id="selected-run">(.*?)</pre>', body["dom"], re.S)
    record = json.loads(html.unescape(shown.group(1)))
    assert record["run_ids"] == ids and record["model"] == "mlp"
    assert record["seeds"] == [0, 1, 2] and record["settings"] == "recipe"
    low, high = record["interval95"]
    assert low < sum(r.metrics["test_accuracy_at_best_val"] for r in mlp) / 3 < high


def test_the_probe_sees_a_request_to_the_network(built, tmp_path) -> None:
    """The resource check can fail: a page asking for a remote image is caught."""
    out, _ = built
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    text = (out / "interactive.html").read_text(encoding="utf-8")
    (leaky / "interactive.html").write_text(
        text.replace("<main>", '<main><img src="https://example.com/x.png">', 1),
        encoding="utf-8",
    )
    body = _open(leaky / "interactive.html", tmp_path)
    assert json.loads(body["data-resources"]) == ["https://example.com/x.png"]


def test_store_text_cannot_close_the_script_or_inject_markup(built) -> None:
    _, store = built
    data = load(store)
    group = data.groups[0]
    group.runs[0].config["model_options"] = [["x", "</script><img src=x onerror=alert(1)>"]]
    text = page(data, plotly_js="")
    assert "</script><img" not in text
    assert "<img src=x" not in text
