"""Stored configs as mnistbench writes them: every RunConfig field, and the hash computed from
them, so a record passes the run format's check (store/schema_records.py) on merge."""

from __future__ import annotations

from typing import Any

from mnistbench.config import RunConfig


def real_config(model: str = "mlp", **changes: Any) -> tuple[dict[str, Any], str]:
    """(the config as stored, its config_hash) for `model` with `changes`."""
    config = RunConfig(model=model, **changes)
    return RunConfig.from_dict(config.to_dict()).to_dict() | {
        "model_options": [list(pair) for pair in config.model_options]
    }, config.config_hash()
