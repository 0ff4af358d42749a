"""Named, versioned suites: each published study (A-E, see shared SPECS.md) as data.

A suite is a list of (model, overrides) entries; `plan_suite` turns it into trials with
`make_config` (defaults < the model's recipe < the entry's overrides < the user's scale
knobs), one per seed. Models not registered yet are skipped and named, so a suite runs with
whatever the registry holds. Bump a suite's version when its entries change: the version is
recorded with each run (artefact "suite:NAME"), so a report can tell old rows from new ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mnistbench.config import make_config, normalize_options
from mnistbench.engine.device import resolve_device
from mnistbench.errors import ConfigError
from mnistbench.experiments.executors import Trial, trial_tag
from mnistbench.models.registry import closest_names, list_models
from mnistbench.store import RunRecord, Store


@dataclass(frozen=True)
class SuiteEntry:
    """One model with the settings that differ from its registered recipe."""

    model: str
    overrides: tuple[tuple[str, Any], ...] = ()  # sorted (RunConfig field, value) pairs
    label: str = ""  # what this entry varies, e.g. "sgd lr=0.01"


def entry(model: str, label: str = "", **overrides: Any) -> SuiteEntry:
    return SuiteEntry(model, tuple(sorted(overrides.items())), label)


@dataclass(frozen=True)
class Suite:
    name: str
    version: str  # bump when entries change, so stored rows say which definition made them
    study: str  # "A".."E" (SPECS.md)
    title: str
    description: str
    entries: tuple[SuiteEntry, ...]
    # Run every entry on each device present (CPU vs GPU); otherwise on the user's device.
    per_device: bool = False

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(e.model for e in self.entries))


@dataclass
class SuitePlan:
    """A suite's trials for one invocation, and what was left out and why."""

    suite: Suite
    trials: list[Trial]
    skipped_models: list[str] = field(default_factory=list)  # not in the registry (yet)
    devices: list[str] = field(default_factory=list)


def _lr_label(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-")


# ------------------------------------------------------------------------------- suites

STUDY_A_MODELS = (
    "microresnet", "cnn", "snn", "dbn", "simsiam_lgbm", "mlp", "vit", "gan", "unet", "beta_vae",
)  # fmt: skip
STUDY_B_MODELS = ("mlp_784_512", "cnn_small", "rnn_rows", "snn_single_step")
STUDY_C_DATASETS = ("mnist", "fashion-mnist")


def _efficiency_entries() -> tuple[SuiteEntry, ...]:
    # Study B compares Adam with SGD and sweeps the learning rate; it does not state SGD's
    # settings, so SGD uses RunConfig's momentum 0.9. Adam 1e-3 is the study's own recipe.
    return tuple(
        entry(model, f"{optimizer} lr={_lr_label(lr)}", optimizer=optimizer, lr=lr)
        for model in STUDY_B_MODELS
        for optimizer in ("adam", "sgd")
        for lr in (1e-4, 1e-3, 1e-2)
    )


def _resnet_svm_entries() -> tuple[SuiteEntry, ...]:
    # The published grid also varied DataLoader pin_memory (false/true): 64 runs. Here every
    # split already lives on the device, so pin_memory changes nothing and the 64 runs are 32
    # distinct configs. Batch 16, 64x64 inputs; AMP (bf16) comes from the device's default.
    grid = tuple(
        entry(
            model,
            f"{optimizer} lr={_lr_label(lr)} {epochs} epochs",
            dataset=dataset,
            optimizer=optimizer,
            lr=lr,
            epochs=epochs,
            batch_size=16,
            image_size=64,
        )
        for dataset in STUDY_C_DATASETS
        for model in ("resnet18", "resnet50")
        for optimizer in ("sgd", "adam")
        for lr in (1e-3, 1e-4)
        for epochs in (3, 5)
    )
    svms = tuple(
        entry(model, "SVC", dataset=dataset)
        for dataset in STUDY_C_DATASETS
        for model in ("svm_rbf", "svm_poly")
    )
    return grid + svms


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            name="architecture-showdown",
            version="1",
            study="A",
            title="Ten architectures on MNIST",
            description="Study A's ten models, each with its published recipe.",
            entries=tuple(entry(model) for model in STUDY_A_MODELS),
        ),
        Suite(
            name="efficiency-showdown",
            version="1",
            study="B",
            title="Accuracy vs training time: MLP, CNN, RNN, SNN",
            description="Study B's four models; Adam vs SGD (momentum 0.9) at learning rates "
            "1e-4, 1e-3, 1e-2 (Adam 1e-3 is the study's recipe).",
            entries=_efficiency_entries(),
        ),
        Suite(
            name="resnet-svm",
            version="1",
            study="C",
            title="ResNet-18/50 grid and SVMs, MNIST and Fashion-MNIST",
            description="Study C's grid: data set x model x optimizer x lr x epochs, batch 16, "
            "64x64 (its pin_memory axis is moot with on-device data: 32 distinct configs), "
            "plus the RBF and polynomial SVCs on both data sets.",
            entries=_resnet_svm_entries(),
        ),
        Suite(
            name="cpu-vs-gpu",
            version="1",
            study="C",
            title="CPU vs GPU speed-up",
            description="ResNet-18 and ResNet-50 on Fashion-MNIST at 224x224, batch 16, "
            "lr 1e-3, one epoch, on every device present (CPU always; CUDA/MPS when there).",
            entries=tuple(
                entry(
                    model,
                    "224x224",
                    dataset="fashion-mnist",
                    image_size=224,
                    batch_size=16,
                    lr=1e-3,
                    epochs=1,
                )
                for model in ("resnet18", "resnet50")
            ),
            per_device=True,
        ),
        Suite(
            name="small-cnn-ablation",
            version="1",
            study="D",
            title="Sub-20k-parameter CNN ablation",
            description="Study D's three variants (dropout placement, batch norm) with its "
            "recipe: Adam, StepLR(7, 0.1), augmentation, early stopping, 20 epochs.",
            entries=tuple(entry(m) for m in ("small_cnn_v1", "small_cnn_v2", "small_cnn_bn")),
        ),
        Suite(
            name="parameter-diet",
            version="1",
            study="E",
            title="Four-iteration parameter diet",
            description="Study E's four networks, 194,884 down to 7,904 parameters, SGD "
            "momentum 0.9, 15 epochs.",
            entries=tuple(entry(m) for m in ("diet_1", "diet_2", "diet_3", "diet_4")),
        ),
    )
}


def list_suites() -> list[Suite]:
    return list(SUITES.values())


def get_suite(name: str) -> Suite:
    """The suite called `name`; unknown names raise ConfigError with the closest ones."""
    try:
        return SUITES[name]
    except KeyError:
        close = closest_names(name, list(SUITES))
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown suite {name!r}.{hint} Known suites: {', '.join(SUITES)} "
            "(`mnistbench suite --list` describes them)."
        ) from None


def present_devices() -> list[str]:
    """Every device type this machine's PyTorch can train on, CPU first."""
    devices = ["cpu"]
    for kind in ("cuda", "mps"):
        try:
            devices.append(resolve_device(kind))
        except ConfigError:
            continue
    return devices


def plan_suite(
    suite: Suite,
    *,
    seeds: int = 1,
    first_seed: int = 0,
    epochs: int | None = None,
    subset: int | None = None,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> SuitePlan:
    """The trials of `suite`: every registered entry x seeds first_seed .. first_seed+seeds-1.

    `epochs` and `subset` are the quick-look knobs (every run trains that many epochs on that
    many images; note that `subset` also trims the test set, see `prepare_device_data`).
    `overrides` are further RunConfig fields applied to every entry (None values ignored).
    Entries that become identical (e.g. 3 vs 5 epochs under --epochs 1) are merged by the
    driver, which counts them.
    """
    if seeds < 1:
        raise ConfigError(f"Invalid --seeds {seeds}: give 1 or more seeds.")
    registered = {info.name for info in list_models()}
    skipped = [m for m in suite.models if m not in registered]
    if suite.per_device and device == "auto":
        devices = present_devices()
    else:
        devices = [resolve_device(device)]
    knobs = {"epochs": epochs, "subset": subset, **(overrides or {})}
    knobs = {k: v for k, v in knobs.items() if v is not None}
    if "model_options" in knobs:
        knobs["model_options"] = normalize_options(knobs["model_options"])
    trials = []
    for item in suite.entries:
        if item.model not in registered:
            continue
        for run_device in devices:
            for seed in range(first_seed, first_seed + seeds):
                values = {**dict(item.overrides), **knobs, "seed": seed}
                config = make_config(item.model, device=run_device, **values)
                where = run_device if suite.per_device else ""
                label = " ".join(x for x in (item.label, where) if x)
                tag = trial_tag(
                    "suite",
                    suite.name,
                    version=suite.version,
                    study=suite.study,
                    label=item.label,
                    seed=seed,
                    knobs=knobs,
                )
                trials.append(Trial(config, label, tag))
    return SuitePlan(suite, trials, skipped, devices)


def suite_runs(store: Store, name: str) -> list[RunRecord]:
    """The stored runs that a suite called `name` ran or reused (any version), by run id."""
    return [
        run
        for run in store.list_runs()
        if any(a.name == f"suite:{name}" for a in store.artefacts(run.run_id))
    ]
