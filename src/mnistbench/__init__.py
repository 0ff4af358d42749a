"""mnistbench: train, measure and compare neural-network families on MNIST and Fashion-MNIST."""

__version__ = "0.1.0"


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
