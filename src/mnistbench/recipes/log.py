"""The epoch rows of a recipe, as the stage runner hands them to the run's listener.

A recipe with one stage that records epochs (supervised training, an SVM fit) stores the
engine's plain EpochRecords. A recipe with several (pretrain then probe, the DBN's stages)
stores StageEpochRecords, numbered across stages, each saying which stage it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mnistbench.engine.loop import EpochRecord


@dataclass
class StageEpochRecord(EpochRecord):
    """An EpochRecord of a staged recipe; `epoch` counts across stages (1, 2, ...).

    Label-free epochs carry their losses (train_loss, val_loss = the pretext loss on the
    validation split) and no accuracies (None, not 0%); `pretext` holds the objective's own
    per-epoch figures (the KL term, D and G losses, ...).
    """

    stage: str = ""
    stage_epoch: int = 0  # epoch within the stage
    pretext: dict[str, float] = field(default_factory=dict)


class StageLog:
    """Every epoch row of a run, in order; each is passed to `on_epoch` as it lands."""

    def __init__(self, on_epoch: Callable[[EpochRecord], None], staged: bool):
        self.on_epoch = on_epoch
        self.staged = staged
        self.records: list[EpochRecord] = []
        self._stages: list[str] = []  # the stage of each record

    def of(self, stage: str) -> list[EpochRecord]:
        """The records of one stage."""
        return [r for r, s in zip(self.records, self._stages, strict=True) if s == stage]

    def callback(
        self, stage: str, labelled: bool, figures: Callable[[], dict[str, float]] | None = None
    ) -> Callable[[EpochRecord], None]:
        """An engine `on_epoch` for one stage: numbers the record across stages, blanks the
        accuracies of a label-free stage and attaches the objective's epoch `figures`."""

        def on_epoch(record: EpochRecord) -> None:
            extra = figures() if figures is not None else {}
            if not self.staged:
                self.add(record, stage)
                return
            values = record.to_dict()
            values["epoch"] = len(self.records) + 1
            if not labelled:  # a pretext epoch has losses, no accuracy
                values.update(train_accuracy=None, val_accuracy=None, test_accuracy=None)
                values.update(test_loss=None)
            self.add(
                StageEpochRecord(**values, stage=stage, stage_epoch=record.epoch, pretext=extra),
                stage,
            )

        return on_epoch

    def add(self, record: EpochRecord, stage: str) -> None:
        if self.staged and not isinstance(record, StageEpochRecord):
            stage_epoch = len(self.of(stage)) + 1
            values = {**record.to_dict(), "epoch": len(self.records) + 1}
            record = StageEpochRecord(**values, stage=stage, stage_epoch=stage_epoch)
        self.records.append(record)
        self._stages.append(stage)
        self.on_epoch(record)

    def rescore(self, scored: EpochRecord) -> None:
        """The final test score (of a sealed test) written into the last row, sent again:
        stores replace a row logged twice."""
        last = self.records[-1]
        if last is not scored:  # staged: the row is a copy of the engine's record
            last.test_loss, last.test_accuracy = scored.test_loss, scored.test_accuracy
            last.eval_time_s = scored.eval_time_s
        self.on_epoch(last)
