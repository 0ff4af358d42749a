"""A test split that cannot be read until the run's one final score.

Records (`mnistbench speedrun`) may use the test set only to score the finished model, once:
no early stopping, model selection or peeking on test. Wrapping `DeviceData.test` in a
`SealedSplit` turns that rule into an error instead of a convention.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from mnistbench.data.device import DeviceData, Split
from mnistbench.errors import SealedTestSetError


class SealedSplit:
    """Stands in for a `Split`; its images and labels raise `SealedTestSetError` until
    `unseal()`, which may be called once. Only its size can be read while sealed (it tells
    nothing about the labels, and compile warm-up needs the last batch's shape)."""

    def __init__(self, split: Split, purpose: str = "this run"):
        self._split = split
        self._purpose = purpose
        self._sealed = True

    @property
    def sealed(self) -> bool:
        return self._sealed

    def __len__(self) -> int:
        return len(self._split)

    def _open(self) -> Split:
        if self._sealed:
            raise SealedTestSetError(
                f"The test set was read before the final score of {self._purpose}. Its rules "
                "allow the test set only to score the finished model, once: select and stop on "
                "the validation split instead (val_size > 0), and let the engine's "
                "`final_test` score the model at the end."
            )
        return self._split

    @property
    def images(self) -> torch.Tensor:
        return self._open().images

    @property
    def labels(self) -> torch.Tensor:
        return self._open().labels

    @property
    def resize_to(self) -> int | None:
        return self._open().resize_to

    def unseal(self) -> Split:
        """The split, for the final score; a second call raises (one score per run)."""
        if not self._sealed:
            raise SealedTestSetError(
                f"The test set of {self._purpose} was already opened for its final score; "
                "scoring it again would let test results steer the run."
            )
        self._sealed = False
        return self._split


def seal_test(data: DeviceData, purpose: str = "this run") -> DeviceData:
    """A copy of `data` whose test split is sealed (train and validation untouched)."""
    return replace(data, test=SealedSplit(data.test, purpose))  # type: ignore[arg-type]
