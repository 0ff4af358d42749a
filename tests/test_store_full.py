"""A store that refuses writes (disk full), seen from the sweep's driver: the sweep stops with
the store's clear error, nothing already recorded is lost, the figures of the trial it could
not record go to stderr as JSON, and a rerun once space is back resumes where it stopped.

The store is made full with SQLite's `max_page_count` (a per-connection limit), so no disk is
filled; a second test pins the exact figures with a store that refuses one given write.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mnistbench.errors import StoreError
from mnistbench.experiments.batch import Session, run_trials
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.executors import Executor, LocalExecutor, ProcessExecutor
from mnistbench.experiments.plan import Trial
from mnistbench.store import Store


def quiet(data_dir: Path) -> Session:
    """A session that loads from `data_dir`, with no progress bars and no energy meter."""
    return Session(data_dir=data_dir, progress=False, measure_energy=False)


EXECUTORS = {"local": LocalExecutor, "process": lambda: ProcessExecutor(workers=1)}


def trials() -> list[Trial]:
    return [
        Trial(make_config("mlp", val_size=100, subset=300, epochs=4, seed=seed))
        for seed in range(3)
    ]


def sweep(store: Store, executor: Executor, data_dir: Path, batch: list[Trial]):
    return run_trials(
        batch,
        store,
        executor=executor,
        session=quiet(data_dir),
    )


def snapshot(store: Store) -> dict[int, tuple]:
    return {
        r.run_id: (r.status, r.metrics, store.epochs(r.run_id), r.finished_at)
        for r in store.list_runs()
    }


def printed_runs(stderr: str) -> list[dict]:
    """The runs the driver printed as JSON because the store refused them."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def fill(store: Store) -> None:
    """Cap this connection's store at the pages it has: the next write that needs a new page
    fails with SQLITE_FULL, as on a full disk. (Store internals: the only way to reach the
    connection that writes; a new Store has no cap, which is 'space is back'.)"""
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


@pytest.mark.parametrize("kind", EXECUTORS)
def test_a_full_store_stops_the_sweep_keeps_what_was_recorded_and_a_rerun_resumes(
    kind: str, capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    batch = trials()
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        sweep(store, LocalExecutor(), learnable_data_dir, batch[:1])
        recorded = snapshot(store)
        fill(store)
        with pytest.raises(StoreError, match="full"):
            sweep(store, EXECUTORS[kind](), learnable_data_dir, batch)
    printed = printed_runs(capsys.readouterr().err)
    unfinished = {t.config_hash for t in batch[1:]}
    assert printed and {run["config_hash"] for run in printed} <= unfinished
    with Store(path) as store:  # space is back: a connection without the cap
        assert {k: v for k, v in snapshot(store).items() if k in recorded} == recorded
        summary = sweep(store, EXECUTORS[kind](), learnable_data_dir, batch)
        assert [r.state for r in summary.results] == ["skipped", "done", "done"]
        finished = Counter(r.config_hash for r in store.list_runs() if r.status == "finished")
    assert finished == {t.config_hash: 1 for t in batch}


class RefusesSecondEpoch(Store):
    """A store that refuses epoch 2 of the run with seed 1, as a full disk would."""

    def log_epoch(self, run_id: int, epoch: int, metrics: dict) -> None:
        if epoch == 2 and self.get_run(run_id).config["seed"] == 1:
            raise StoreError(f"The results store at {self.path} is full (simulated).")
        super().log_epoch(run_id, epoch, metrics)


@pytest.mark.parametrize("kind", EXECUTORS)
def test_the_refused_trial_s_figures_are_printed_as_json(
    kind: str, capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    batch = trials()
    with RefusesSecondEpoch(tmp_path / "s.sqlite") as store:
        with pytest.raises(StoreError, match="full"):
            sweep(store, EXECUTORS[kind](), learnable_data_dir, batch)
        runs = {r.config["seed"]: r for r in store.list_runs()}
        stored_epochs = [e["epoch"] for e in store.epochs(runs[1].run_id)]
    err = capsys.readouterr().err
    assert "could not record the run of mlp on mnist" in err and "full (simulated)" in err
    (printed,) = printed_runs(err)
    assert printed["config_hash"] == batch[1].config_hash
    # epoch 2 was computed but refused: it is in the JSON, not in the store
    assert [e["epoch"] for e in printed["epochs"]][:2] == [1, 2] and stored_epochs == [1]
    assert printed["epochs"][1]["train_loss"] > 0
    assert runs[0].status == "finished" and runs[1].status != "finished"
    assert 2 not in runs  # the sweep stopped: the third trial never ran


def test_the_printed_figures_are_plain_json() -> None:
    import io
    import math

    from mnistbench.experiments.runner import TrainedRun
    from mnistbench.experiments.unrecorded import report_unrecorded

    run = TrainedRun(make_config("mlp"), status="finished", metrics={"test_accuracy": 0.5,
                     "train_loss": math.nan}, epochs=[(1, {"val_loss": math.inf})],
                     artefacts=[("plot", "png", b"\x89PNG"), ("note", "text", "hi")])  # fmt: skip
    stream = io.StringIO()
    report_unrecorded(run, StoreError("disk full"), stream)
    *head, body = stream.getvalue().splitlines()
    assert "could not record the run of mlp on mnist" in head[0] and "disk full" in head[0]
    figures = json.loads(body)  # strict JSON: NaN and infinity become null
    assert figures["metrics"] == {"test_accuracy": 0.5, "train_loss": None}
    assert figures["epochs"] == [{"epoch": 1, "val_loss": None}]
    assert figures["artefacts"] == [{"name": "plot", "kind": "png", "bytes": 4},
                                    {"name": "note", "kind": "text", "content": "hi"}]  # fmt: skip
    assert figures["config_hash"] == run.config.config_hash() and figures["status"] == "finished"
