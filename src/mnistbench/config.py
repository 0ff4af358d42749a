"""The run configuration: a frozen dataclass that names everything that changes a result.

Each field declares once, in its `metadata`, its help text (unit and why), its command-line
flag, its check and its role; the CLI flags, the sweep-file keys, validation and the roles the
report reads are all generated from that. Its hash keys the results store, so what cannot
change the outcome (where the data lives, progress output, analysis settings) is not in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import Field, asdict, dataclass, fields, replace
from typing import Any

from mnistbench import settings as s
from mnistbench.errors import ConfigError
from mnistbench.settings import REQUIRED, Check, at_least, interval, setting, unset_or

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")
# Batched training-time augmentations (data/augment.py): "affine" is the generic policy,
# "study_d_torchvision" and "rotate7" are the published recipes of studies D and E; "study_d"
# is mnistbench's earlier reading of D's (bilinear, brightness before contrast).
AUGMENTATIONS = ("none", "affine", "study_d", "study_d_torchvision", "rotate7")
# When the test set is scored: after every epoch (curves, best-epoch figures), or once, at the
# end, with the split sealed until then (records, `mnistbench speedrun`; data/sealed.py).
TEST_POLICIES = ("every_epoch", "final_only")
# What a run trains on and how its headline is scored: "heldout" holds `val_size` training
# images out and reads the test set at the best validation epoch; "study" trains on what the
# model's study trained on and scores as it scored (max test accuracy over epochs for A and D;
# mnistbench/protocols.py says which split each study gets).
PROTOCOLS = ("heldout", "study")
OptionValue = str | int | float | bool
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICES = ("cpu", "cuda", "mps")  # what "auto" resolves to (engine.device.resolve_device)
ROLES = ("training", "scale", "analysis", "environment")
# Seeds reach torch generators (with small offsets added per stage), NumPy and LightGBM, whose
# seed is a C int: 0 .. 2**31 - 1 is valid in all of them.
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class RunConfig:
    """One training run. Defaults here < the model's registered recipe < the user's choices."""

    model: str = setting(
        REQUIRED,
        flag=None,
        role="training",
        help="registered model name (`mnistbench list`) or an outside model: "
        "path/to/file.py:factory or package.module:factory",
        check=Check(lambda v: isinstance(v, str) and bool(v.strip()), "is empty"),
    )
    dataset: str = setting(
        "mnist", role="training", help="data set: mnist or fashion-mnist (`mnistbench list`)"
    )
    epochs: int = setting(
        5,
        role="scale",
        help="full passes over the training split; each model's recipe sets its published count",
        check=at_least(1, "Pass --epochs 1 or more."),
    )
    batch_size: int = setting(
        128,
        role="training",
        help="training images per optimizer step (evaluation uses 1,000 per batch)",
        check=at_least(1, "Try --batch-size 64."),
    )
    optimizer: str = setting("adam", role="training", choices=OPTIMIZERS, help="optimizer")
    lr: float = setting(
        1e-3,
        role="training",
        help="peak learning rate, per optimizer step (OneCycle's max_lr)",
        check=Check(
            lambda v: s.finite(v) and v > 0,
            "the learning rate must be a positive finite number",
            "Try --lr 1e-3 for Adam or --lr 0.01 for SGD.",
        ),
    )
    momentum: float = setting(
        0.9,
        role="training",
        help="SGD momentum, sgd only (study B's SGD runs use 0.9)",
        check=interval("[0, 1)"),
    )
    nesterov: bool = setting(False, role="training", help="Nesterov momentum, sgd only")
    weight_decay: float = setting(
        0.0,
        role="training",
        help="weight decay: L2 penalty for sgd and adam, decoupled for adamw; 0 = none",
        check=interval("[0, inf)"),
    )
    scheduler: str = setting(
        "none",
        role="training",
        choices=SCHEDULERS,
        help="learning-rate schedule: step (per epoch), cosine or onecycle (per step)",
    )
    step_size: int = setting(
        7,
        role="training",
        help="epochs between decays of the step scheduler (study D: 7)",
        check=at_least(1),
    )
    gamma: float = setting(
        0.1,
        role="training",
        help="factor the step scheduler multiplies the learning rate by at each decay",
        check=interval("(0, 1]"),
    )
    grad_clip: float | None = setting(
        None,
        role="training",
        help="max global gradient L2 norm; unset = the recipe's (study A's supervised models "
        "clip at 1.0; pretraining, probes and the DBN's fine-tuning do not); 0 = no clipping, "
        "also where the recipe clips",
        check=unset_or(interval("[0, inf)", "Give 0 to turn clipping off.")),
    )
    label_smoothing: float = setting(
        0.0,
        role="training",
        help="cross-entropy label smoothing: the fraction of target mass spread over all classes",
        check=interval("[0, 1)"),
    )
    augment: str = setting(
        "none",
        role="training",
        choices=AUGMENTATIONS,
        help="batched augmentation of training batches (study_d_torchvision, rotate7: studies "
        "D and E as published; study_d: the earlier bilinear reading of D's)",
    )
    image_size: int = setting(
        28,
        role="training",
        help="side in pixels the images are resized to, once and batched (study C: 64)",
        check=Check(
            lambda v: isinstance(v, int) and 8 <= v <= 512,
            "must be between 8 and 512 pixels",
            "Use 28 (native), 64 (study C) or 224 (ImageNet size).",
        ),
    )
    compile: bool = setting(
        False,
        role="environment",
        help="torch.compile the model (same training, other speed); warm-up is timed apart; on "
        "the CPU through inductor's C++ wrapper ($MNISTBENCH_COMPILE_WRAPPER=cpp|python)",
    )
    val_size: int = setting(
        5000,
        role="scale",
        help="training images held out for validation, drawn with the seed (0 = none); early "
        "stopping and 'best val' read it, never the test set",
        check=at_least(0, "Pass 0 to skip it."),
    )
    subset: int | None = setting(
        None,
        role="scale",
        help="quick looks: train on the first N training images AND score on the first N test "
        "images only (validation keeps --val-size); unset = the whole data set",
        check=unset_or(at_least(1, "Leave it out to train on the full training split.")),
    )
    train_images: int | None = setting(
        None,
        role="scale",
        help="training images the whole run sees, then it stops (e.g. 30000: half an epoch of "
        "MNIST); the learning-rate schedule spans those steps; unset = every epoch in full",
        check=unset_or(at_least(1, "Leave it out to train every epoch in full.")),
    )
    early_stopping_patience: int | None = setting(
        None,
        flag="--patience",
        role="training",
        help="early stopping: epochs without validation improvement; unset = off",
        check=unset_or(at_least(1)),
    )
    min_delta: float = setting(
        0.0,
        role="training",
        help="early stopping: the validation-accuracy gain (fraction) that counts as improving",
        check=interval("[0, 1)"),
    )
    target_accuracy: float = setting(
        0.99,
        flag="--target",
        role="analysis",
        help="accuracy (fraction) for epochs- and seconds-to-target; analysis only, so "
        "changing it never retrains",
        check=interval("(0, 1]", "It is a fraction: write 0.99 for 99%."),
    )
    precision: str = setting(
        "fp32",
        role="training",
        choices=PRECISIONS,
        help="autocast precision: fp32 (off), bf16, fp16 (with a gradient scaler; on CPUs "
        "without native fp16 it is emulated and slow); on CUDA the default is bf16",
    )
    seed: int = setting(
        0,
        role="training",
        help=f"seeds initialisation, the validation split, batch order and augmentation "
        f"(0 to {MAX_SEED:,})",
        check=Check(
            lambda v: isinstance(v, int) and 0 <= v <= MAX_SEED,
            f"must be a whole number from 0 to {MAX_SEED} (2**31 - 1)",
            "Seeds go to torch, NumPy and LightGBM, whose seeds are 32-bit.",
        ),
    )
    device: str = setting(
        "cpu",
        role="environment",
        choices=DEVICE_CHOICES,
        help="device to train on; auto = cuda, then mps, then cpu",
        check=Check(lambda v: v in DEVICES, "must be a resolved device: cpu, cuda or mps"),
    )
    # Keyword arguments of the model's entrypoint (e.g. ("beta", 4.0), ("in_channels", 1)),
    # sorted by key so equal options hash equally.
    model_options: tuple[tuple[str, OptionValue], ...] = setting(
        (),
        flag="--model-option",
        role="training",
        help="an option of the model's entrypoint as KEY=VALUE, repeatable (e.g. beta=4.0)",
        check=Check(
            lambda v: all(isinstance(x, OptionValue) for _, x in v),
            "takes text, numbers or true/false as values",
        ),
    )
    test_policy: str = setting(
        "every_epoch",
        role="training",
        choices=TEST_POLICIES,
        help="when the test set is scored: every_epoch, or final_only (sealed until one score "
        "of the finished model, as records require; docs/speedrun.md)",
    )
    protocol: str = setting(
        "heldout",
        role="training",
        choices=PROTOCOLS,
        help="heldout: --val-size images held out, test read at the best validation epoch; "
        "study: train on what the model's study trained on (studies A and D: all 60,000, no "
        "validation) and score as it scored (max test accuracy over epochs)",
    )
    recipe_of: str | None = setting(
        None,
        # training: it picks the recipe's stages too, not only the defaults resolved here
        role="training",
        help="registered model whose recipe supplies the defaults (for outside models); unset = "
        "the model's own recipe, RunConfig's defaults for outside models",
    )

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
        """Stable 16-hex-digit hash of what the run trains and measures (see `hash_view`)."""
        canonical = json.dumps(hash_view(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# The fields mnistbench stored from its first schema on (commit 5ae60b7). A field added later
# enters the hash only while it differs from its default, so every hash in an older store
# still matches the same config today (tests/test_config.py checks a v1 store's runs).
_FIELDS_V1 = frozenset((
    "model", "dataset", "epochs", "batch_size", "optimizer", "lr", "momentum", "nesterov",
    "weight_decay", "scheduler", "step_size", "gamma", "grad_clip", "label_smoothing", "augment",
    "image_size", "compile", "val_size", "subset", "early_stopping_patience", "min_delta",
    "target_accuracy", "precision", "seed", "device", "model_options",
))  # fmt: skip


def hash_view(config: RunConfig) -> dict[str, Any]:
    """The values `config_hash` covers: analysis fields only ever at their default (so changing
    one, e.g. --target, never retrains), and post-v1 fields only when they are set."""
    values = config.to_dict()
    view: dict[str, Any] = {}
    for f in fields(RunConfig):
        value = f.default if f.metadata["role"] == "analysis" else values[f.name]
        if f.name not in _FIELDS_V1 and value == f.default:
            continue
        view[f.name] = value
    return view


def settings() -> tuple[Field, ...]:
    """Every RunConfig field, with its metadata (help, flag, role, check, choices)."""
    return fields(RunConfig)


def field_roles() -> dict[str, str]:
    """Each RunConfig field's role: training, scale, analysis or environment."""
    return {f.name: f.metadata["role"] for f in settings()}


def flag_of(name: str) -> str:
    """How the command line spells a setting (errors name what the user typed)."""
    return next((s.flag_of(f) for f in settings() if f.name == name), name)


def check_setting(name: str, value: Any) -> None:
    """ConfigError when `value` breaks the check declared for setting `name`."""
    for f in settings():
        check: Check | None = f.metadata["check"]
        if f.name == name and check is not None and not check.test(value):
            rule = f"Invalid {flag_of(name)} {value!r}: {check.rule}. {check.fix}"
            raise ConfigError(rule.rstrip())


def validate_settings(config: RunConfig) -> RunConfig:
    """Check every field and the rules between fields; raise ConfigError naming the setting,
    the rule and the fix. The checks against the registry (model options, data set) are
    `experiments.configure.validate_config`'s: a plain record cannot know what is registered."""
    for f in settings():
        check_setting(f.name, getattr(config, f.name))
    c = config
    if c.precision == "fp16" and c.device == "mps":
        raise ConfigError(
            "Invalid --precision 'fp16' on mps: mnistbench's float16 path (autocast with a "
            "gradient scaler) is tested on CPU and CUDA only. Use fp32 on mps."
        )
    if c.early_stopping_patience is not None and c.val_size == 0:
        raise ConfigError(
            "Early stopping needs a validation split, but --val-size is 0. "
            "Give a validation size, or turn early stopping off."
        )
    if config.grad_clip == 0:  # "off", stored as unset: it trains and hashes as no clipping
        return replace(config, grad_clip=None)
    return config


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The given settings (None = not given, dropped), each checked against its declaration:
    cheap, before any model or data set is looked up. ConfigError names the first bad one."""
    known = {f.name for f in settings()}
    unknown = sorted(k for k in overrides if k not in known)
    if unknown:
        raise ConfigError(
            f"Unknown run setting(s) {', '.join(unknown)}. "
            f"Known settings: {', '.join(sorted(known))}."
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "model_options" in given:
        given["model_options"] = normalize_options(given["model_options"])
    for name, value in given.items():
        check_setting(name, value)
    return given


def normalize_options(
    options: dict[str, OptionValue] | tuple | list,
) -> tuple[tuple[str, OptionValue], ...]:
    """Model options as sorted (key, value) pairs, from a dict or a sequence of pairs."""
    pairs = options.items() if isinstance(options, dict) else options
    return tuple(sorted((str(k), v) for k, v in pairs))


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
