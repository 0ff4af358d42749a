"""The engine: one training loop plus the measurements every run records."""

from mnistbench.engine.device import autocast_factory, resolve_device, synchronize
from mnistbench.engine.loop import EpochRecord, EvalResult, FitResult, evaluate, final_test, fit
from mnistbench.engine.summary import confusion_matrix, summarize_epochs

__all__ = [
    "EpochRecord",
    "EvalResult",
    "FitResult",
    "autocast_factory",
    "confusion_matrix",
    "evaluate",
    "final_test",
    "fit",
    "resolve_device",
    "summarize_epochs",
    "synchronize",
]
