"""Copy the committed benchmark tables into README.md, so its figures are never typed by hand.

python benchmarks/readme_results.py          # rewrite the block between the markers
python benchmarks/readme_results.py --check  # exit 1 if README.md is out of date (tests)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = (
    "epoch_time.md",
    "foundation_accuracy.md",
    "architecture_showdown.md",
    "zoo_speed.md",
    "speedrun.md",
)  # benchmarks/results/
START, END = "<!-- results:start -->", "<!-- results:end -->"
STOP = "<!-- readme:stop -->"  # a result file's lines from here on stay out of README (raw logs)


def results_block(results_dir: Path) -> str:
    """Each result file's tables and their one-paragraph preamble, under its own heading."""
    parts = [START]
    for name in RESULTS:
        lines = (results_dir / name).read_text().strip().splitlines()
        lines = lines[: lines.index(STOP)] if STOP in lines else lines
        title = lines[0].lstrip("# ").strip()
        body = "\n".join(line for line in lines[1:] if not line.startswith("Command:"))
        parts += ["", f"### {title}", "", f"From `benchmarks/results/{name}`.", body.strip()]
    return "\n".join([*parts, "", END])


def updated_readme(readme: str, block: str) -> str:
    start, end = readme.index(START), readme.index(END) + len(END)
    return readme[:start] + block + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README is current")
    args = parser.parse_args()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    new = updated_readme(readme, results_block(ROOT / "benchmarks" / "results"))
    if args.check:
        if new != readme:
            print("README.md's results block is stale: run benchmarks/readme_results.py")
            return 1
        return 0
    readme_path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
