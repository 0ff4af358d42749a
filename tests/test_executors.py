"""Executors: a process pool and a local Ray instance record the same rows as in-process.

Workers only train and return; the driver writes the store. Runs are deterministic on the CPU
at a fixed thread count, so the same configs must give the same accuracies whichever executor
ran them (the in-process reference runs on one thread, like each worker).
"""

from __future__ import annotations

import contextlib
import os
import socket
from datetime import datetime
from pathlib import Path

import pytest
import torch

from mnistbench.data import load_dataset
from mnistbench.errors import ConfigError
from mnistbench.experiments.batch import Session, make_executor, run_trials
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.executors import LocalExecutor, ProcessExecutor
from mnistbench.experiments.plan import Trial, unique_trials
from mnistbench.experiments.runner import record, train_config
from mnistbench.store import Store
from synthetic_cli import spawn_cli


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


FAILING = Path(__file__).resolve().parent / "failing_nets.py"


def trials() -> list[Trial]:
    quick = {"epochs": 2, "val_size": 100, "subset": 300}
    good = [
        Trial(make_config("mlp", seed=0, **quick), "mlp seed 0"),
        Trial(make_config("cnn", seed=1, **quick), "cnn seed 1"),
    ]
    # bad input is refused while the batch is planned; this model fails while it trains
    bad = Trial(make_config(f"{FAILING}:breaks_while_training", **quick), "broken")
    return [*good, bad]


def rows(store: Store) -> dict[str, tuple]:
    """config hash -> (status, test accuracy, per-epoch train losses) of every run."""
    return {
        r.config_hash: (
            r.status,
            r.metrics.get("test_accuracy"),
            [e.get("train_loss") for e in store.epochs(r.run_id)],
        )
        for r in store.list_runs()
    }


def run_with(executor, store_path: Path, data_dir: Path) -> dict[str, tuple]:
    with Store(store_path) as store:
        session = Session(data_dir=data_dir, progress=False, measure_energy=False)
        summary = run_trials(trials(), store, session, executor=executor)
        assert [r.state for r in summary.results] == ["done", "done", "failed"]
        return rows(store)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The in-process rows of `trials()`, on one thread (module-scoped: computed once)."""
    from synthetic import install_as_mnist

    tmp = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        data_dir = install_as_mnist(tmp / "data", patch)
        with torch_threads(1):
            result = run_with(LocalExecutor(), tmp / "local.sqlite", data_dir)
    assert len(result) == 3
    return result


def test_train_config_and_record_equal_run_in_process(
    learnable_data_dir: Path, tmp_path: Path, reference
) -> None:
    raw = load_dataset("mnist", data_dir=learnable_data_dir)
    with torch_threads(1), Store(tmp_path / "s.sqlite") as store:
        for trial in trials():
            trained = train_config(trial.config, raw=raw, measure_energy=False)
            assert trained.started  # the broken trial fails while it trains, after its start
            record(store, trained)
        assert rows(store) == reference


def test_process_pool_records_the_same_rows(
    learnable_data_dir: Path, tmp_path: Path, reference
) -> None:
    pooled = run_with(ProcessExecutor(workers=2), tmp_path / "pool.sqlite", learnable_data_dir)
    assert pooled == reference
    with Store(tmp_path / "pool.sqlite") as store:
        trained_in_workers(store.list_runs())


def trained_in_workers(runs) -> None:
    """The finished rows name the worker that trained them (another process of this host)
    and its real start time, not the driver's pid and the time the driver recorded them."""
    finished = [r for r in runs if r.status == "finished"]
    assert finished
    for run in finished:
        assert run.pid != os.getpid() and run.hostname == socket.gethostname()
        assert run.environment["hostname"] == socket.gethostname()
        started, ended = (datetime.fromisoformat(t) for t in (run.started_at, run.finished_at))
        # a 2-epoch run trains for a while before the driver records its end
        assert (ended - started).total_seconds() >= run.metrics["total_train_time_s"]


def test_ray_records_the_same_rows(learnable_data_dir: Path, tmp_path: Path, reference) -> None:
    ray = pytest.importorskip("ray")
    from mnistbench.experiments.executors import RayExecutor

    executor = RayExecutor(init_kwargs={"num_cpus": 2, "include_dashboard": False})
    try:
        assert ray.is_initialized()
        on_ray = run_with(executor, tmp_path / "ray.sqlite", learnable_data_dir)
    finally:
        executor.close()
    assert not ray.is_initialized()  # the executor started Ray, so it stops it
    assert on_ray == reference
    with Store(tmp_path / "ray.sqlite") as store:
        runs = store.list_runs()
        trained_in_workers(runs)
        assert all(r.environment["ray_cpus_per_trial"] == 1 for r in runs if r.status != "failed")
    # and a rerun on Ray trains nothing that finished
    with Store(tmp_path / "ray.sqlite") as store:
        summary = run_trials(trials()[:2], store, Session(progress=False), executor=LocalExecutor())
        assert [r.state for r in summary.results] == ["skipped", "skipped"]


def test_executor_choice_and_bad_input() -> None:
    assert isinstance(make_executor(), LocalExecutor)
    assert isinstance(make_executor(workers=3), ProcessExecutor)
    assert make_executor("process", workers=3).workers == 3
    with pytest.raises(ConfigError, match="--executor"):
        make_executor("slurm")
    with pytest.raises(ConfigError, match="--workers"):
        make_executor("process", workers=0)
    with pytest.raises(ConfigError, match="--ray-address needs --executor ray"):
        make_executor("local", ray_address="10.0.0.1:6379")


def test_duplicate_configs_are_merged() -> None:
    a, b, _ = trials()
    kept, merged = unique_trials([a, b, a, Trial(a.config, "same config, other label")])
    assert kept == [a, b] and merged == 2


def test_two_run_processes_write_one_store(learnable_data_dir: Path, tmp_path: Path) -> None:
    # tests/test_cli.py::test_two_processes_write_one_store does this on the real data when
    # MNISTBENCH_DATA is set; this one always runs, on the synthetic set.
    store = tmp_path / "s.sqlite"
    processes = [
        spawn_cli(learnable_data_dir, "run", "mlp", "--epochs", "2", "--subset", "300",
                  "--val-size", "100", "--seed", str(seed), "--store", str(store), "--quiet")
        for seed in (1, 2)
    ]  # fmt: skip
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    with Store(store) as s:
        runs = s.list_runs()
        assert sorted(r.config["seed"] for r in runs) == [1, 2]
        assert all(r.status == "finished" and len(s.epochs(r.run_id)) == 2 for r in runs)
        # the CLI flushes denormals before torch starts its worker threads, so all have it
        assert all(r.environment["cpu_flush_denormal"] == "all threads" for r in runs)


def test_cli_sweep_on_a_process_pool(capsys, learnable_data_dir: Path, tmp_path: Path) -> None:
    from mnistbench.cli import main

    sweep = tmp_path / "pool.toml"
    sweep.write_text(
        "[fixed]\nmodel = 'mlp'\nepochs = 1\nval_size = 100\nsubset = 300\n[space]\nseed = [0, 1]\n"
    )
    store = tmp_path / "s.sqlite"
    args = ["sweep", str(sweep), "--workers", "2", "--data-dir", str(learnable_data_dir),
            "--store", str(store), "--quiet"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "process pool, 2 worker(s)" in captured.err and "2 done" in captured.out
    assert main(args) == 0 and "2 skipped" in capsys.readouterr().out
