"""The run configuration: a frozen dataclass that names everything that changes a result.

Its hash keys the results store, so fields that cannot change the outcome (where the data
lives, the store path, progress output, evaluation batch size) are deliberately not in it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from mnistbench.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults here < the model's registered recipe < the user's choices."""

    model: str
    dataset: str = "mnist"
    epochs: int = 5  # full passes over the training split
    batch_size: int = 128  # training images per optimizer step
    optimizer: str = "adam"  # sgd | adam | adamw
    lr: float = 1e-3  # peak learning rate (OneCycle's max_lr)
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # L2 for sgd/adam, decoupled for adamw
    scheduler: str = "none"  # none | step (per epoch) | cosine (per step) | onecycle (per step)
    step_size: int = 7  # epochs between decays, step scheduler (study D: 7)
    gamma: float = 0.1  # decay factor, step scheduler
    grad_clip: float | None = None  # max global gradient L2 norm; None = no clipping
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: bool = False  # batched random affine on training batches
    val_size: int = 5000  # images held out of the training set for validation (0 = none)
    subset: int | None = None  # keep only this many training images (quick looks, tests)
    early_stopping_patience: int | None = None  # epochs without val improvement; None = off
    min_delta: float = 0.0  # val-accuracy gain (fraction) that counts as an improvement
    target_accuracy: float = 0.99  # for epochs/seconds-to-target
    precision: str = "fp32"  # autocast dtype: fp32 (off) | bf16 | fp16 (CUDA only)
    seed: int = 0  # seeds init, validation split, batch order and augmentation
    device: str = "cpu"  # resolved device type: cpu | cuda | mps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config_hash(self) -> str:
        """Stable 16-hex-digit hash of every field (sorted JSON, so field order does not matter)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _fail(field_name: str, value: Any, rule: str, fix: str) -> ConfigError:
    return ConfigError(f"Invalid {field_name} {value!r}: {rule}. {fix}")


def validate_config(config: RunConfig) -> RunConfig:
    """Check every field; raise ConfigError naming the field, the rule and the fix."""
    # imported here to keep config import-light and free of cycles
    from mnistbench.data import get_dataset_spec
    from mnistbench.models import get_model_info

    get_model_info(config.model)
    get_dataset_spec(config.dataset)
    checks: list[tuple[str, bool, str, str]] = [
        ("--epochs", config.epochs >= 1, "must be at least 1", "Pass --epochs 1 or more."),
        ("--batch-size", config.batch_size >= 1, "must be at least 1", "Try --batch-size 64."),
        (
            "--lr",
            math.isfinite(config.lr) and config.lr > 0,
            "the learning rate must be a positive finite number",
            "Try --lr 1e-3 for Adam or --lr 0.01 for SGD.",
        ),
        ("--optimizer", config.optimizer in OPTIMIZERS, f"choose one of {OPTIMIZERS}", ""),
        ("--scheduler", config.scheduler in SCHEDULERS, f"choose one of {SCHEDULERS}", ""),
        ("--precision", config.precision in PRECISIONS, f"choose one of {PRECISIONS}", ""),
        ("--val-size", config.val_size >= 0, "must be 0 or more", "Pass 0 to skip validation."),
        (
            "--subset",
            config.subset is None or config.subset >= 1,
            "must be at least 1",
            "Leave it out to train on the full training split.",
        ),
        ("weight_decay", config.weight_decay >= 0, "must be 0 or more", ""),
        ("momentum", 0 <= config.momentum < 1, "must be in [0, 1)", ""),
        ("step_size", config.step_size >= 1, "must be at least 1", ""),
        ("gamma", 0 < config.gamma <= 1, "must be in (0, 1]", ""),
        (
            "grad_clip",
            config.grad_clip is None or config.grad_clip > 0,
            "must be positive",
            "Leave it unset to disable clipping.",
        ),
        ("label_smoothing", 0 <= config.label_smoothing < 1, "must be in [0, 1)", ""),
        (
            "--target",
            0 < config.target_accuracy <= 1,
            "is a fraction in (0, 1]",
            "Write 0.99 for 99%.",
        ),
        (
            "early_stopping_patience",
            config.early_stopping_patience is None or config.early_stopping_patience >= 1,
            "must be at least 1",
            "",
        ),
        ("device", config.device in ("cpu", "cuda", "mps"), "must be resolved", ""),
    ]
    for name, ok, rule, fix in checks:
        if not ok:
            raise _fail(name, getattr(config, _FIELD_OF.get(name, name)), rule, fix)
    if config.precision == "fp16" and config.device != "cuda":
        raise ConfigError(
            "Invalid --precision 'fp16': float16 autocast needs a CUDA device. "
            "Use --precision bf16 on the CPU, or fp32."
        )
    if config.early_stopping_patience is not None and config.val_size == 0:
        raise ConfigError(
            "Early stopping needs a validation split, but --val-size is 0. "
            "Give a validation size, or turn early stopping off."
        )
    return config


_FIELD_OF = {
    "--epochs": "epochs",
    "--batch-size": "batch_size",
    "--lr": "lr",
    "--optimizer": "optimizer",
    "--scheduler": "scheduler",
    "--precision": "precision",
    "--val-size": "val_size",
    "--subset": "subset",
    "--target": "target_accuracy",
}


def make_config(model: str, device: str = "cpu", **overrides: Any) -> RunConfig:
    """RunConfig for `model`: dataclass defaults < the model's recipe < `overrides` (None = unset).

    Raises ConfigError for unknown models, datasets, keys or invalid values.
    """
    from mnistbench.models import get_model_info

    info = get_model_info(model)
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise ConfigError(
            f"Unknown run setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(sorted(known))}."
        )
    values: dict[str, Any] = {**info.recipe}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.update(model=model, device=device)
    return validate_config(RunConfig(**values))


def with_overrides(config: RunConfig, **changes: Any) -> RunConfig:
    """A validated copy of `config` with some fields changed."""
    return validate_config(replace(config, **changes))
