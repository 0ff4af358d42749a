"""The shape of a published figure and of the study it comes from, and the one way a setting
is spelled in text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# How a study picked the accuracy it reports. "max_test_over_epochs" is optimistic: the best of
# several looks at the test set; "final" is the model after its last epoch.
PROTOCOLS = ("max_test_over_epochs", "final", "unknown")


@dataclass(frozen=True)
class Study:
    """One published study: what it compared, how it measured, where it came from."""

    id: str  # "A" .. "E"
    title: str
    description: str  # what it measured, in two or three sentences
    source: str  # where the figures come from
    protocol: str  # how its accuracies were picked (PROTOCOLS)
    recipe: str  # its shared training recipe, as one line
    timing: str  # what its time figures cover, and on what device

    @property
    def anchor(self) -> str:
        return f"study-{self.id.lower()}"

    @property
    def doc(self) -> str:
        """Where a report links for this study."""
        return f"docs/studies.md#{self.anchor}"

    def card_entry(self) -> dict[str, str]:
        """What a run's model card says about this study."""
        return {"title": self.title, "doc": self.doc, "protocol": self.protocol}


@dataclass(frozen=True)
class PublishedFigure:
    """One figure a study publishes for one model on one dataset under one setting.

    `setting` holds the run settings the figure was measured under, spelled as RunConfig fields
    where one exists (epochs, optimizer, lr, batch_size, image_size, device, ...); keys with no
    RunConfig counterpart (study C's pin_memory) say what else differed. Accuracies are
    fractions of the test set.
    """

    study: str
    model: str
    dataset: str
    setting: Mapping[str, Any] = field(default_factory=dict)
    test_accuracy: float | None = None
    protocol: str = "unknown"
    time_per_epoch_s: float | None = None
    time_device: str | None = None  # "cuda" or "cpu", where the time was taken
    time_includes_eval: bool | None = None
    time_measures: str = "epoch"  # what one time unit is: "epoch", "fine-tune epoch", "fit"
    params: int | None = None
    params_source: str = "study"  # "study": stated; "spec count": counted from the spec
    best_epoch: int | None = None  # the epoch of `test_accuracy` when it is a max over epochs
    epochs_to_target: int | None = None  # first epoch whose test accuracy reached the target
    target_accuracy: float | None = None
    note: str = ""
    # The study states the accuracy as approximate ("~98.8%"): quoted with "~", and no verdict
    # computes a gap of a few hundredths of a point against it as if it were exact.
    approximate: bool = False
    # Setting keys the study does not state: values we assumed or chose to run it (study E's
    # lr; diet_4's schedule). Shown as ours wherever the setting is printed.
    assumed: tuple[str, ...] = ()

    @property
    def setting_text(self) -> str:
        return setting_text(self.setting, self.assumed)

    @property
    def accuracy_text(self) -> str:
        """'98.80%', or '~98.80%' where the study gives the figure as approximate."""
        if self.test_accuracy is None:
            return "none"
        return ("~" if self.approximate else "") + f"{100 * self.test_accuracy:.2f}%"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what a model card stores), with the setting spelled out."""
        values = asdict(self)
        values["setting"] = dict(self.setting)
        values["assumed"] = list(self.assumed)
        values["setting_text"] = self.setting_text
        return values


# ---------------------------------------------------------------------------- setting text

_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "cuda": "GPU", "cpu": "CPU"}


def _value(key: str, value: Any) -> str:
    if key == "lr":
        return f"{value:.0e}".replace("e-0", "e-")
    if isinstance(value, bool):
        return "on" if value else "off"
    return _NAMES.get(value, str(value)) if isinstance(value, str) else f"{value:,}"


ASSUMED_MARK = " (ours: not stated)"


def setting_text(setting: Mapping[str, Any], assumed: Sequence[str] = ()) -> str:
    """`{"epochs": 3, "optimizer": "sgd", "lr": 0.001}` -> "3 epochs, SGD lr 1e-3"; a key in
    `assumed` (the study does not state it) is marked as ours: "SGD lr 1e-2 (ours: not stated)"."""

    def mark(key: str) -> str:
        return ASSUMED_MARK if key in assumed else ""

    parts = []
    if "epochs" in setting:
        epochs = setting["epochs"]
        parts.append(f"{epochs} epoch{'' if epochs == 1 else 's'}{mark('epochs')}")
    optimizer = (
        [_NAMES.get(setting["optimizer"], setting["optimizer"]) + mark("optimizer")]
        if "optimizer" in setting
        else []
    )
    learning_rate = [f"lr {_value('lr', setting['lr'])}{mark('lr')}"] if "lr" in setting else []
    if optimizer or learning_rate:
        parts.append(" ".join(optimizer + learning_rate))
    for key, value in setting.items():
        if key in ("epochs", "optimizer", "lr"):
            continue
        if key == "image_size":
            parts.append(f"{value}x{value}{mark(key)}")
        elif key == "device":
            parts.append(f"on {_value(key, value)}{mark(key)}")
        else:
            parts.append(f"{key.replace('_', ' ')} {_value(key, value)}{mark(key)}")
    return ", ".join(parts)
