"""Build the report from every benchmark's store at once and screenshot it for docs/.

Merges benchmarks/results/*.sqlite (the stores the benchmark scripts filled; the suites store
is left out because its 2,000-image quick-look runs would sit beside the full runs) into one
store, writes the report, and renders the HTML page in headless Chromium:

    python benchmarks/showcase_report.py    # -> report-showcase/ and docs/report-screenshot.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mnistbench.cli import main as mnistbench

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SKIPPED = {"suites.sqlite", "showcase.sqlite"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "report-showcase")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    parser.add_argument("--window", default="1500,2600", help="browser window WIDTH,HEIGHT")
    args = parser.parse_args()
    store = RESULTS / "showcase.sqlite"
    store.unlink(missing_ok=True)
    # "*.suspect-*" stores keep runs recorded before a bug fix, for the record only
    stores = [p for p in RESULTS.glob("*.sqlite") if p.name not in SKIPPED]
    sources = sorted(str(p) for p in stores if "suspect" not in p.name)
    if not sources:
        print("no benchmark stores in benchmarks/results/: run the benchmarks first")
        return 1
    if mnistbench(["merge", *sources, "--store", str(store)]) != 0:
        return 1
    if mnistbench(["report", "--store", str(store), "--out", str(args.out)]) != 0:
        return 1
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if browser is None:
        print("no chromium on PATH: report written, no screenshot taken")
        return 1
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={args.window}",
             f"--screenshot={args.screenshot.resolve()}", "--virtual-time-budget=10000",
             (args.out / "index.html").resolve().as_uri()],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    print(f"wrote {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
