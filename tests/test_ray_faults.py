"""The Ray executor under faults, on a real local Ray instance: a crashed worker is a failed
trial (never silently retrained), Ctrl-C records the running trials as 'interrupted' with their
epochs, and a worker running another mnistbench is refused. The logic that needs no Ray (what
a trial asks of the cluster, the join errors) is tested without it. The test against a
cluster started apart with `ray start` is tests/test_ray_cluster.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnistbench.config import RunConfig
from mnistbench.errors import ConfigError
from mnistbench.experiments import ray_cluster
from mnistbench.experiments.batch import Session, run_trials
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.plan import Trial
from mnistbench.experiments.ray_cluster import join_error, run_tasks, train_task
from mnistbench.experiments.runner import TrainedRun
from mnistbench.store import Store


def quiet(data_dir: Path) -> Session:
    """A session that loads from `data_dir`, with no progress bars and no energy meter."""
    return Session(data_dir=data_dir, progress=False, measure_energy=False)


def quick(epochs: int, seed: int = 0) -> Trial:
    return Trial(make_config("mlp", val_size=100, subset=300, epochs=epochs, seed=seed))


@pytest.fixture(scope="module")
def executor() -> Iterator:
    """One local Ray instance (2 CPUs) for this module's tests."""
    pytest.importorskip("ray")
    from mnistbench.experiments.executors import RayExecutor

    ray_executor = RayExecutor(init_kwargs={"num_cpus": 2, "include_dashboard": False})
    try:
        yield ray_executor
    finally:
        ray_executor.close()


def crash_on_first_try(marker: Path):
    """A task that kills its own worker process the first time it runs the seed-1 trial, the
    way the kernel kills a process out of memory (a closure: Ray ships it by value)."""

    def task(config, raw, threads, measure_energy, identity):
        if config.seed == 1 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return train_task(config, raw, threads, measure_energy, identity)

    return task


def test_a_crashed_ray_worker_fails_its_trial_and_is_not_retried(
    executor, learnable_data_dir: Path, tmp_path: Path
) -> None:
    executor.task = crash_on_first_try(tmp_path / "crashed-once")
    try:
        with Store(tmp_path / "s.sqlite") as store:
            summary = run_trials([quick(2, seed=0), quick(2, seed=1)], store, executor=executor,
                                 session=quiet(learnable_data_dir))  # fmt: skip
            rows = store.list_runs()
    finally:
        executor.task = None
    assert (tmp_path / "crashed-once").exists()
    # Ray's default (3 retries) would have trained it again and recorded it 'finished'
    assert [r.state for r in summary.results] == ["done", "failed"]
    assert "the Ray worker running this trial died" in (summary.results[1].error or "")
    assert sorted(r.status for r in rows) == ["failed", "finished"]  # one row each, no retry


def mark_first_epochs(folder: Path):
    """A task that touches folder/epoch-SEED once its run has recorded its first epoch (in
    the worker, where the test cannot see), then trains on as usual."""

    def task(config, raw, threads, measure_energy, identity):
        from mnistbench.experiments import runner

        original = runner._Collector.epoch

        def epoch(self, number, metrics):
            original(self, number, metrics)
            if number == 1:
                (folder / f"epoch-{self.run.config.seed}").touch()

        runner._Collector.epoch = epoch
        try:
            return train_task(config, raw, threads, measure_energy, identity)
        finally:
            runner._Collector.epoch = original

    return task


def test_ctrl_c_records_the_running_ray_trials_as_interrupted(
    executor, learnable_data_dir: Path, tmp_path: Path
) -> None:
    # two CPUs: the 2-epoch trial and seed 1 start; seed 2 takes the first one's place; seed 3
    # waits in the queue when Ctrl-C comes
    trials = [quick(2), quick(400, seed=1), quick(400, seed=2), quick(400, seed=3)]
    executor.task = mark_first_epochs(tmp_path)
    main_thread = threading.get_ident()

    def ctrl_c_once_both_are_training() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all((tmp_path / f"epoch-{seed}").exists() for seed in (1, 2)):
                signal.pthread_kill(main_thread, signal.SIGINT)  # Ctrl-C, to the driver
                return
            time.sleep(0.05)

    sender = threading.Thread(target=ctrl_c_once_both_are_training, daemon=True)
    try:
        with Store(tmp_path / "s.sqlite") as store:
            sender.start()
            with pytest.raises(KeyboardInterrupt):
                run_trials(trials, store, executor=executor, session=quiet(learnable_data_dir))
            rows = {r.config["seed"]: (r.status, len(store.epochs(r.run_id)))
                    for r in store.list_runs()}  # fmt: skip
    finally:
        executor.task = None
        sender.join(1)
    assert rows.pop(0) == ("finished", 2)
    assert set(rows) == {1, 2}  # seed 3 never started: nothing recorded
    for status, epochs in rows.values():  # the epochs they trained came back from the cluster
        assert status == "interrupted" and epochs >= 1


def test_a_worker_with_another_mnistbench_is_refused(
    executor, monkeypatch: pytest.MonkeyPatch, learnable_data_dir: Path, tmp_path: Path
) -> None:
    other = {"mnistbench": "0.0.9", "source_sha256": "0123456789abcdef"}
    monkeypatch.setattr(ray_cluster, "package_identity", lambda: other)  # the driver's side
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(ConfigError, match=r"runs mnistbench .* but this driver runs 0\.0\.9"):
            run_trials([quick(1)], store, executor=executor, session=quiet(learnable_data_dir))
        assert store.list_runs() == []


class FakeRay:
    """Records the options each task is submitted with and runs it in-process."""

    class exceptions:  # named as ray.exceptions
        class RayError(Exception):
            pass

        class RayTaskError(RayError):
            cause = None

        class TaskCancelledError(RayError):
            pass

    def __init__(self) -> None:
        self.submitted: list[dict] = []

    def put(self, value):
        return value

    def remote(self, function):
        fake = self

        class Remote:
            def options(self, **options):
                fake.submitted.append(options)
                return self

            def remote(self, config, *rest):
                return FakeRay.Ref(TrainedRun(config, status="finished"))

        return Remote()

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.run

    class Ref:
        def __init__(self, run: TrainedRun) -> None:
            self.run = run


def test_each_trial_asks_the_cluster_for_what_its_own_device_needs() -> None:
    # untested on GPU hardware (there is none here): what Ray is asked for
    ray = FakeRay()
    configs = [RunConfig(model="mlp", device="cuda"), RunConfig(model="mlp", device="cpu")]
    ended: list[int] = []
    run_tasks(ray, configs, {"mnist": None}, lambda i, run: ended.append(i), cpus_per_trial=3,  # type: ignore[arg-type]
              gpus_per_trial=None, measure_energy=False)  # fmt: skip
    assert ended == [0, 1]
    common = {"num_cpus": 3, "max_retries": 0, "retry_exceptions": False}
    assert ray.submitted == [{**common, "num_gpus": 1}, {**common, "num_gpus": 0}]


def test_join_errors_say_what_to_do_about_the_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    refused = ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379")
    refused.__cause__ = RuntimeError("Unauthenticated: RPC error: InvalidAuthToken: missing")
    message = str(join_error("127.0.0.1:6379", refused))
    assert "uses token authentication" in message and "no token was found here" in message
    assert "`ray get-auth-token`" in message and "RAY_AUTH_TOKEN=<token>" in message
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("not the head's")
    message = str(join_error("127.0.0.1:6379", refused))
    assert f"the token in {tmp_path / '.ray' / 'auth_token'} is not the token" in message
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")
    assert "the token in RAY_AUTH_TOKEN is not the token" in str(join_error("h:1", refused))
    unreachable = str(join_error("10.9.9.9:6379", ConnectionError("Failed to connect")))
    assert "Could not join the Ray cluster at 10.9.9.9:6379" in unreachable
    assert "`ray status`" in unreachable


def test_a_failed_cuda_trial_is_recorded_by_a_driver_without_a_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch

    def no_gpu(*args, **kwargs):
        raise RuntimeError("Found no NVIDIA driver on your system.")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_gpu)  # this machine, or a CPU head
    failed = TrainedRun.failed(RunConfig(model="mlp", device="cuda"), "the Ray worker died")
    assert failed.environment["device"] == "cuda" and failed.environment["cpu_count"]
    with Store(tmp_path / "s.sqlite") as store:
        from mnistbench.experiments.runner import record

        stored = record(store, failed)
    assert (stored.status, stored.error) == ("failed", "the Ray worker died")
