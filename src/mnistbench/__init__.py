"""mnistbench: train, measure and compare neural-network families on MNIST and Fashion-MNIST.

`mnistbench.runs()` and `mnistbench.epochs()` give the results store as pandas DataFrames
(`mnistbench.report.frames`); `mnistbench.load_model()` returns a run's kept model ready to
evaluate (`mnistbench.experiments.evaluate`). All load on first use, so `import mnistbench` and
the CLI import neither pandas nor torch for them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "epochs", "load_model", "runs"]


def load_model(run_id: int, store, **kwargs):  # type: ignore[no-untyped-def]
    """Run `run_id`'s kept model from `store` (a Store or the path of its results.sqlite),
    ready to evaluate: experiments/evaluate.py's `load_model` (imported here lazily, so
    `import mnistbench` stays free of torch)."""
    from mnistbench.experiments.evaluate import load_model as _load_model
    from mnistbench.store import Store

    if isinstance(store, Store):
        return _load_model(run_id, store, **kwargs)
    with Store(store, read_only=True) as opened:
        return _load_model(run_id, opened, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("runs", "epochs"):
        from mnistbench.report import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'mnistbench' has no attribute {name!r}")
