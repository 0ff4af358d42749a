"""The data sets mnistbench knows: file names, content checksums, mirrors and normalisation.

Adding a data set in the same four-file IDX layout means adding one `DatasetSpec` to `DATASETS`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from mnistbench.errors import ConfigError

# The four files every data set consists of, in the order they are reported to the user.
ROLES: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")

# The standard IDX file names; MNIST and Fashion-MNIST share them.
STANDARD_FILES: Mapping[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, fetch, verify and normalise one data set."""

    name: str  # registry key and folder name under a data root, e.g. "mnist"
    mean: float  # pixel mean of the training set after x/255, used by "standard" scaling
    std: float  # pixel std of the training set after x/255
    class_names: tuple[str, ...]  # index i is the name of label i
    files: Mapping[str, str]  # role -> file name as published (gzip, ends in .gz)
    # role -> SHA-256 of the *decompressed* content: the gzip wrappers differ between copies
    # (mirror vs. Debian vs. re-compressed), the IDX content does not.
    sha256: Mapping[str, str]
    mirrors: tuple[str, ...]  # base URLs tried in order; a file's URL is base + file name
    system_dirs: tuple[str, ...] = ()  # folders a distribution package installs the files to
    n_train_images: int = (
        60_000  # images in the published training split (both data sets); config checks
    )

    @property
    def num_classes(self) -> int:
        """Number of label classes."""
        return len(self.class_names)

    @property
    def display_name(self) -> str:
        """Human-readable name for messages."""
        return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(self.name, self.name)


MNIST = DatasetSpec(
    name="mnist",
    # Statistics of the 60k training images, as used by pytorch/examples.
    mean=0.1307,
    std=0.3081,
    class_names=tuple(str(d) for d in range(10)),
    files=STANDARD_FILES,
    sha256={
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    # yann.lecun.com no longer serves the files reliably; these are the mirrors torchvision uses.
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    mean=0.2860,
    std=0.3530,
    # Label order from Xiao, Rasul & Vollgraf (2017), arXiv:1708.07747, Table 1.
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    files=STANDARD_FILES,
    sha256={
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    mirrors=(
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    # Debian's dataset-fashion-mnist package installs the four .gz files here.
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def get_dataset_spec(name: str) -> DatasetSpec:
    """Return the spec registered under `name`; unknown names raise ConfigError."""
    spec = DATASETS.get(name)
    if spec is not None:
        return spec
    known = sorted(DATASETS)
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(
        f"Unknown dataset '{name}'.{hint} Known datasets: {', '.join(known)}. "
        "Pass one of these names (they are case-sensitive)."
    )
