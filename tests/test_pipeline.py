"""The one run pipeline: `run` is a plan of one trial (any executor), epochs show as lines,
analysis settings never retrain, and a reused result says which machine measured it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.experiments import batch
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.executors import Executor
from mnistbench.experiments.plan import Trial
from mnistbench.store import Store
from synthetic import learnable_raw

QUICK = ["--epochs", "2", "--subset", "300", "--val-size", "100"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def run_args(learnable_data_dir: Path, tmp_path: Path) -> list[str]:
    store = tmp_path / "s.sqlite"
    return ["run", "mlp", *QUICK, "--data-dir", str(learnable_data_dir), "--store", str(store)]


def test_one_line_per_epoch_unless_quiet(capsys, run_args: list[str]) -> None:
    code, out, err = run_cli(capsys, *run_args)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all(" loss " in line and " val " in line and " test " in line for line in lines)
    assert all(line.endswith(" s eval") for line in lines)
    # --subset says in the summary what it trimmed
    assert "scored on at most the first 300 test images, not the whole test set" in out
    code, _, err = run_cli(capsys, *run_args, "--quiet", "--force")
    assert code == 0 and "epoch " not in err


def test_changing_the_target_does_not_retrain(capsys, run_args: list[str]) -> None:
    assert run_cli(capsys, *run_args, "--quiet")[0] == 0
    code, out, _ = run_cli(capsys, *run_args, "--quiet", "--target", "0.5")
    assert code == 0 and "already in the store" in out
    # the target figures are recomputed for the new target from the stored epochs
    assert "reached 50.0% validation accuracy in 1 epoch(s)" in out
    with Store(run_args[-1]) as store:
        assert len(store.list_runs()) == 1


def test_a_reused_run_says_which_machine_measured_it(
    capsys, monkeypatch: pytest.MonkeyPatch, run_args: list[str]
) -> None:
    assert run_cli(capsys, *run_args, "--quiet")[0] == 0
    code, out, _ = run_cli(capsys, *run_args, "--quiet")
    assert code == 0 and "already in the store" in out and "not this one" not in out

    from mnistbench.engine import measure

    real = measure.collect_environment

    def elsewhere(device: str) -> dict[str, object]:  # this machine, as if it had moved to AVX2
        return {**real(device), "cpu_capability": "SOMETHING_ELSE"}

    monkeypatch.setattr(measure, "collect_environment", elsewhere)
    code, out, _ = run_cli(capsys, *run_args, "--quiet")
    with Store(run_args[-1]) as store:
        (stored,) = store.list_runs()
    machine = batch.machine_of(stored.environment)
    assert code == 0 and f"[measured on {machine}, not this one" in out
    timing = [line for line in out.splitlines() if "time/epoch" in line]
    assert timing and "not this one" in timing[0]
    code, out, _ = run_cli(capsys, *run_args, "--quiet", "--json")
    assert json.loads(out)["measured_on"] == machine and json.loads(out)["reused"]
    # --force measures it here
    code, out, _ = run_cli(capsys, *run_args, "--quiet", "--force")
    assert code == 0 and "already in the store" not in out and "not this one" not in out
    with Store(run_args[-1]) as store:
        assert len(store.list_runs()) == 2


def test_run_on_a_process_pool(capsys, run_args: list[str]) -> None:
    code, out, _ = run_cli(capsys, *run_args, "--quiet", "--executor", "process", "--workers", "1")
    assert code == 0 and ", finished" in out
    with Store(run_args[-1]) as store:
        (run,) = store.list_runs()
        assert run.status == "finished" and len(store.epochs(run.run_id)) == 2


class _Recording(Executor):
    """Trains nothing: records which trials the driver handed over."""

    def __init__(self) -> None:
        self.trials: list[Trial] = []

    def run(self, trials, ctx, done) -> None:
        self.trials += list(trials)


def test_already_recorded_is_keyed_by_hash_and_fingerprint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked: list[tuple[str, dict]] = []

    class KeyedStore(Store):
        def find_completed(self, config_hash, **kwargs):  # helper C's signature (contract 1)
            asked.append((config_hash, kwargs))
            return None

    from mnistbench.cards import fingerprint_for

    config = make_config("mlp", epochs=1)
    fingerprint = fingerprint_for(config)
    assert len(fingerprint) == 16
    executor = _Recording()
    with KeyedStore(tmp_path / "s.sqlite") as store:
        batch.run_trials([Trial(config)], store, executor=executor, raws={"mnist": learnable_raw()})
    assert asked == [(config.config_hash(), {"fingerprint": fingerprint})]
    assert [t.config for t in executor.trials] == [config]  # not recorded: handed over


def test_dry_run_shrinks_once_and_records_nothing(tmp_path: Path) -> None:
    executor = _Recording()
    summary = batch.run_trials(
        [Trial(make_config("cnn"))], None, batch.Session(progress=False), executor=executor,
        dry_run=True, raws={"mnist": learnable_raw()},
    )  # fmt: skip
    assert summary.results == []  # the recording executor reported nothing
    (trial,) = executor.trials
    assert (trial.config.epochs, trial.config.subset, trial.config.val_size) == (1, 128, 64)


def test_a_trial_that_cannot_run_stops_the_batch_before_anything_trains(tmp_path: Path) -> None:
    from mnistbench.errors import ConfigError

    trials = [Trial(make_config("mlp")), Trial(make_config("svm_rbf", epochs=3))]
    executor = _Recording()
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(ConfigError, match=r"svm_rbf mnist seed 0: .*fitted once"):
            batch.run_trials(trials, store, executor=executor, raws={"mnist": learnable_raw()})
        assert store.list_runs() == [] and executor.trials == []
