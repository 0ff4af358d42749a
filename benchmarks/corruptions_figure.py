"""The picture of MNIST-C's 15 corruptions in docs/robustness.md: the same test images, clean and
under each corruption, from the real MNIST and Fashion-MNIST test sets.

    MNISTBENCH_DATA=/path/to/data python benchmarks/corruptions_figure.py [OUT.png]
    MNISTBENCH_DATA=/path/to/data python benchmarks/corruptions_figure.py --time

`--time` instead times each corruption on the whole MNIST test set (10,000 images, seed 0; wall
clock, one run each, torch and numpy at their default thread counts): run it on a quiet machine.

Each corruption is applied with seed 0 to the shown images alone (the draws of an image depend
on its position in the batch, so the full test set's copies differ in their random parts).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mnistbench.data import load_dataset
from mnistbench.data.corruptions import CORRUPTION_NAMES, corrupt

OUT = Path(__file__).resolve().parent.parent / "docs" / "robustness-corruptions.png"
SHOWN = {"mnist": (0, 1, 2, 3, 4), "fashion-mnist": (0, 1, 2)}  # test-set indices per data set
SEED = 0
CELL_IN = 0.62  # inches per image


def main(out: Path = OUT) -> None:
    """Draw the grid (rows: images, columns: clean then the 15) and write it to `out`."""
    rows = []
    for dataset, indices in SHOWN.items():
        images = load_dataset(dataset, progress=False).test_images[list(indices)]
        columns = [images] + [corrupt(images, name, SEED) for name in CORRUPTION_NAMES]
        rows += [(dataset, i, [c[k] for c in columns]) for k, i in enumerate(indices)]
    titles = ["clean", *CORRUPTION_NAMES]
    fig, axes = plt.subplots(
        len(rows),
        len(titles),
        figsize=(CELL_IN * len(titles), CELL_IN * len(rows) + 0.5),
        gridspec_kw={"wspace": 0.04, "hspace": 0.04},
    )
    for r, (dataset, index, cells) in enumerate(rows):
        for c, image in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c].replace("_", "\n"), fontsize=7)
            if c == 0:
                ax.set_ylabel(f"{dataset}\n#{index}", fontsize=6)
    fig.savefig(out, dpi=72, bbox_inches="tight")
    print(f"wrote {out}")


def time_all() -> None:
    """Print the wall-clock seconds each corruption takes on the 10,000 MNIST test images."""
    images = load_dataset("mnist", progress=False).test_images
    for name in CORRUPTION_NAMES:
        start = time.perf_counter()
        corrupt(images, name, SEED)
        print(f"{name:14s} {time.perf_counter() - start:6.2f} s for {len(images):,} images")


if __name__ == "__main__":
    if sys.argv[1:] == ["--time"]:
        time_all()
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
