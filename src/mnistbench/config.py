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
# Batched training-time augmentations (data/augment.py): "affine" is the generic policy,
# "study_d" and "rotate7" are the published recipes of studies D and E.
AUGMENTATIONS = ("none", "affine", "study_d", "rotate7")
OptionValue = str | int | float | bool
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
    augment: str = "none"  # batched augmentation policy of training batches, see AUGMENTATIONS
    image_size: int = 28  # side the images are resized to, once and batched (study C: 64)
    compile: bool = False  # torch.compile the model; warm-up is timed apart from training
    val_size: int = 5000  # images held out of the training set for validation (0 = none)
    subset: int | None = None  # keep only this many training images (quick looks, tests)
    early_stopping_patience: int | None = None  # epochs without val improvement; None = off
    min_delta: float = 0.0  # val-accuracy gain (fraction) that counts as an improvement
    target_accuracy: float = 0.99  # for epochs/seconds-to-target
    precision: str = (
        "fp32"  # autocast: fp32 (off) | bf16 | fp16 (CUDA); make_config picks per device
    )
    seed: int = 0  # seeds init, validation split, batch order and augmentation
    device: str = "cpu"  # resolved device type: cpu | cuda | mps
    # Keyword arguments of the model's entrypoint (e.g. ("beta", 4.0), ("in_channels", 1)),
    # sorted by key so equal options hash equally.
    model_options: tuple[tuple[str, OptionValue], ...] = ()
    recipe_of: str | None = None  # an outside model trains with this registered model's recipe

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Inverse of `to_dict` (JSON turns the option pairs into lists; this turns them back)."""
        values = dict(values)
        values["model_options"] = tuple(tuple(pair) for pair in values.get("model_options", ()))
        return cls(**values)

    def options(self) -> dict[str, OptionValue]:
        """`model_options` as keyword arguments for the model's entrypoint."""
        return dict(self.model_options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config_hash(self) -> str:
        """Stable 16-hex-digit hash of every field (sorted JSON, so field order does not matter)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# How the CLI spells the settings it exposes; errors name what the user typed.
_OPTION_NAMES = {
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "optimizer": "--optimizer",
    "scheduler": "--scheduler",
    "precision": "--precision",
    "val_size": "--val-size",
    "subset": "--subset",
    "target_accuracy": "--target",
    "seed": "--seed",
    "augment": "--augment",
    "image_size": "--image-size",
}


def validate_config(config: RunConfig) -> RunConfig:
    """Check every field; raise ConfigError naming the setting, the rule and the fix."""
    # imported here to keep config import-light and free of cycles
    from mnistbench.data import get_dataset_spec
    from mnistbench.models.registry import check_model_options

    check_model_options(config.model, config.options(), config.recipe_of)
    get_dataset_spec(config.dataset)
    c = config
    checks: list[tuple[str, bool, str, str]] = [  # (field, valid, rule, fix)
        ("epochs", c.epochs >= 1, "must be at least 1", "Pass --epochs 1 or more."),
        ("batch_size", c.batch_size >= 1, "must be at least 1", "Try --batch-size 64."),
        (
            "lr",
            math.isfinite(c.lr) and c.lr > 0,
            "the learning rate must be a positive finite number",
            "Try --lr 1e-3 for Adam or --lr 0.01 for SGD.",
        ),
        ("optimizer", c.optimizer in OPTIMIZERS, f"choose one of {', '.join(OPTIMIZERS)}", ""),
        ("scheduler", c.scheduler in SCHEDULERS, f"choose one of {', '.join(SCHEDULERS)}", ""),
        ("precision", c.precision in PRECISIONS, f"choose one of {', '.join(PRECISIONS)}", ""),
        ("augment", c.augment in AUGMENTATIONS, f"choose one of {', '.join(AUGMENTATIONS)}", ""),
        (
            "image_size",
            8 <= c.image_size <= 512,
            "must be between 8 and 512 pixels",
            "Use 28 (native), 64 (study C) or 224 (ImageNet size).",
        ),
        ("val_size", c.val_size >= 0, "must be 0 or more", "Pass 0 to skip validation."),
        (
            "subset",
            c.subset is None or c.subset >= 1,
            "must be at least 1",
            "Leave it out to train on the full training split.",
        ),
        ("weight_decay", c.weight_decay >= 0, "must be 0 or more", ""),
        ("momentum", 0 <= c.momentum < 1, "must be in [0, 1)", ""),
        ("step_size", c.step_size >= 1, "must be at least 1", ""),
        ("gamma", 0 < c.gamma <= 1, "must be in (0, 1]", ""),
        (
            "grad_clip",
            c.grad_clip is None or c.grad_clip > 0,
            "must be positive",
            "Leave it unset to disable clipping.",
        ),
        ("label_smoothing", 0 <= c.label_smoothing < 1, "must be in [0, 1)", ""),
        (
            "target_accuracy",
            0 < c.target_accuracy <= 1,
            "is a fraction in (0, 1]",
            "Write 0.99 for 99%.",
        ),
        (
            "early_stopping_patience",
            c.early_stopping_patience is None or c.early_stopping_patience >= 1,
            "must be at least 1",
            "",
        ),
        ("device", c.device in ("cpu", "cuda", "mps"), "must be a resolved device", ""),
    ]
    for field_name, valid, rule, fix in checks:
        if not valid:
            name = _OPTION_NAMES.get(field_name, field_name)
            value = getattr(config, field_name)
            raise ConfigError(f"Invalid {name} {value!r}: {rule}. {fix}".rstrip())
    if c.precision == "fp16" and c.device != "cuda":
        raise ConfigError(
            "Invalid --precision 'fp16': float16 autocast needs a CUDA device. "
            "Use --precision bf16 on the CPU, or fp32."
        )
    if c.early_stopping_patience is not None and c.val_size == 0:
        raise ConfigError(
            "Early stopping needs a validation split, but --val-size is 0. "
            "Give a validation size, or turn early stopping off."
        )
    return config


def default_precision(device: str) -> str:
    """bf16 autocast on CUDA devices that support it (AMP by default), fp32 elsewhere.

    CPUs with AMX also gain from bf16 at large batches, but lose at small ones (measured on the
    2-core dev machine: MLP batch 64 3.1 -> 4.2 ms/step), so there it is an opt-in.
    """
    if device == "cuda":
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
    return "fp32"


def make_config(model: str, device: str = "cpu", **overrides: Any) -> RunConfig:
    """RunConfig for `model`: dataclass defaults < the model's recipe < `overrides` (None = unset).

    Raises ConfigError for unknown models, datasets, keys or invalid values.
    """
    from mnistbench.models import resolve_model

    info = resolve_model(model, overrides.get("recipe_of"))
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise ConfigError(
            f"Unknown run setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(sorted(known))}."
        )
    values: dict[str, Any] = {"precision": default_precision(device), **info.recipe.defaults}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.update(model=model, device=device)
    values["model_options"] = normalize_options(values.get("model_options", ()))
    return validate_config(RunConfig(**values))


def normalize_options(
    options: dict[str, OptionValue] | tuple | list,
) -> tuple[tuple[str, OptionValue], ...]:
    """Model options as sorted (key, value) pairs, from a dict or a sequence of pairs."""
    pairs = options.items() if isinstance(options, dict) else options
    return tuple(sorted((str(k), v) for k, v in pairs))


def with_overrides(config: RunConfig, **changes: Any) -> RunConfig:
    """A validated copy of `config` with some fields changed."""
    return validate_config(replace(config, **changes))


def parse_model_option(text: str) -> tuple[str, OptionValue]:
    """'key=value' from the command line, with the value read as bool, int, float or text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"Invalid --model-option {text!r}: write it as KEY=VALUE, e.g. --model-option beta=4.0."
        )
    value: OptionValue = raw.strip()
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        value = lowered == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    return key.strip(), value
