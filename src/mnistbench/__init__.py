"""mnistbench: train, measure and compare neural-network families on MNIST and Fashion-MNIST.

`mnistbench.runs()` and `mnistbench.epochs()` give the results store as pandas DataFrames
(`mnistbench.report.frames`); they load on first use, so the CLI does not import pandas.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "epochs", "runs"]


def __getattr__(name: str) -> Any:
    if name in ("runs", "epochs"):
        from mnistbench.report import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'mnistbench' has no attribute {name!r}")
