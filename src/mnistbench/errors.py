"""User-facing errors: each carries one paragraph that says what was wrong and how to fix it.

The CLI prints the message (no traceback) and exits with status 2; library callers can catch the
specific subclass.
"""


class MnistbenchError(Exception):
    """Base class for every error that is the user's input or environment, not a bug."""


class ConfigError(MnistbenchError):
    """A run configuration, model name, dataset name or option value is invalid."""


class DataError(MnistbenchError):
    """Data files are missing, corrupt or cannot be downloaded."""


class StoreError(MnistbenchError):
    """The results store cannot be opened, written or read."""


class StoreCorruptError(StoreError):
    """The store's file is damaged; `mnistbench store recover` copies what is readable."""


class StoreFullError(StoreError):
    """The disk (or the store's size limit) is full; the write was rolled back entirely."""


class SealedTestSetError(MnistbenchError):
    """Something read the test set before a run's one final score (speed and record rules)."""


class MeasurementDisturbedError(MnistbenchError):
    """Other processes held the CPU while the machine was measured, so the figures are not its."""


class OutOfMemoryError(MnistbenchError):
    """The run needed more memory (host RAM or GPU memory) than the machine had free."""
