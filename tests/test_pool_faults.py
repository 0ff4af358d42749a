"""The process pool under faults, with real processes: Ctrl-C, a worker killed by the kernel,
`kill -9` of the driver, and GPU placement (the last as logic only: no GPU here).

Each test drives a real sweep on the tiny synthetic data set and watches the store, which the
pool's driver writes as the workers stream their rows (docs/faults.md lists every fault).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from mnistbench.cli import main
from mnistbench.config import RunConfig
from mnistbench.experiments.batch import Session, run_trials
from mnistbench.experiments.configure import make_config
from mnistbench.experiments.executors import ProcessExecutor
from mnistbench.experiments.plan import Trial
from mnistbench.experiments.worker import GpuSlot, gpu_slots, visible_gpus
from mnistbench.store import RunRecord, Store
from synthetic_cli import spawn_cli


def quiet(data_dir: Path) -> Session:
    """A session that loads from `data_dir`, with no progress bars and no energy meter."""
    return Session(data_dir=data_dir, progress=False, measure_energy=False)


QUICK = "model = 'mlp'\nval_size = 100\nsubset = 300\n"


def write_sweep(tmp_path: Path, space: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f"[fixed]\n{QUICK}[space]\n{space}\n")
    return path


def runs(store_path: Path) -> list[tuple[RunRecord, int]]:
    """Every run with its number of recorded epochs (nothing yet: empty)."""
    if not store_path.exists():
        return []
    with Store(store_path) as store:
        return [(r, len(store.epochs(r.run_id))) for r in store.list_runs()]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.mark.parametrize(
    ("epochs", "running_at_ctrl_c", "queued"),
    [
        ([1, 400], [400], []),  # an idle worker (its trial done, none left) and a busy one
        ([1, 400, 401, 402], [400, 401], [402]),  # two busy workers and a trial never started
    ],
)
def test_ctrl_c_keeps_the_trained_epochs_and_prints_no_traceback(
    learnable_data_dir: Path, tmp_path: Path, epochs, running_at_ctrl_c, queued
) -> None:
    store_path = tmp_path / "s.sqlite"
    sweep = write_sweep(tmp_path, f"epochs = {epochs}")
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the driver
    # and its workers. A new session makes this sweep such a group of its own.
    process = spawn_cli(learnable_data_dir, "sweep", str(sweep), "--workers", "2", "--store",
                        str(store_path), "--quiet", start_new_session=True)  # fmt: skip

    def mid_trial() -> bool:
        seen = {r.config["epochs"]: (r.status, n) for r, n in runs(store_path)}
        return seen.get(1, ("", 0))[0] == "finished" and all(
            seen.get(e, ("", 0))[0] == "running" and seen[e][1] >= 1 for e in running_at_ctrl_c
        )

    try:
        wait_until(mid_trial, 120, "the long trials to record an epoch in the workers")
        before = {r.config["epochs"]: n for r, n in runs(store_path)}
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    after = {r.config["epochs"]: (r.status, n) for r, n in runs(store_path)}
    assert after[1] == ("finished", 1)
    for e in running_at_ctrl_c:  # interrupted, with every epoch it had trained
        status, kept = after[e]
        assert status == "interrupted" and kept >= before[e] >= 1
    assert set(after) == {1, *running_at_ctrl_c}  # the queued trial never started: no row
    assert not queued or queued[0] not in after


def test_a_worker_killed_by_the_kernel_fails_only_its_trial(
    learnable_data_dir: Path, tmp_path: Path
) -> None:
    # the victim trains long enough to be killed mid-trial, the second runs beside it while
    # it dies, the last two wait in the queue for the rebuilt pool
    trials = [Trial(make_config("mlp", val_size=100, subset=300, epochs=e), f"epochs {e}")
              for e in (150, 40, 2, 3)]  # fmt: skip
    victim = trials[0].config.config_hash()
    killed: list[int] = []

    def kill_victim_mid_trial(store_path: Path) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            workers = {child.pid for child in psutil.Process().children()}
            for run, epochs in runs(store_path):
                mid_trial = run.status == "running" and epochs >= 1
                # a worker of this process only, never the process itself, whatever a row says
                if run.config_hash == victim and mid_trial and run.pid in workers:
                    os.kill(run.pid, signal.SIGKILL)  # what the out-of-memory killer sends
                    killed.append(run.pid)
            time.sleep(0.05)

    store_path = tmp_path / "s.sqlite"
    with Store(store_path) as store:
        killer = threading.Thread(target=kill_victim_mid_trial, args=(store_path,), daemon=True)
        killer.start()
        summary = run_trials(
            trials, store, executor=ProcessExecutor(workers=2), session=quiet(learnable_data_dir),
        )  # fmt: skip
        killer.join(5)
        rows = {r.config_hash: r for r in store.list_runs()}
        victim_epochs = len(store.epochs(rows[victim].run_id))
    assert killed, "the victim was never seen mid-trial"
    assert [r.state for r in summary.results] == ["failed", "done", "done", "done"]
    error = summary.results[0].error or ""
    assert f"worker process {killed[0]} died, killed by signal SIGKILL" in error
    assert rows[victim].status == "failed" and victim_epochs >= 1  # its epochs are kept
    pids = {row.pid for row in rows.values()}
    assert len(pids) == 3 and killed[0] in pids  # two workers, then one in the dead one's place


def test_kill_9_of_the_driver_takes_its_workers_and_a_rerun_records_each_trial_once(
    capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "s.sqlite"
    sweep = write_sweep(tmp_path, "seed = [0, 1, 2]\nepochs = [15]")
    args = ("sweep", str(sweep), "--workers", "2", "--store", str(store_path), "--quiet")
    driver = spawn_cli(learnable_data_dir, *args, start_new_session=True)
    workers: list[psutil.Process] = []
    try:
        wait_until(lambda: any(r.status == "running" and n >= 1 for r, n in runs(store_path)),
                   120, "a trial to be part-way in a worker")  # fmt: skip
        workers = psutil.Process(driver.pid).children(recursive=True)
        driver.send_signal(signal.SIGKILL)  # the driver only, as the OOM killer or kill -9 would
        driver.communicate(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=10)
    finally:  # whatever happened, leave no process of this test behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate()
    assert workers and not alive, f"still alive 10 s after the driver was killed: {alive}"
    worker_pids = {w.pid for w in workers}
    assert all(r.pid in worker_pids for r, _ in runs(store_path))  # the rows name the workers
    before = {r.run_id: r.status for r, _ in runs(store_path)}
    assert "running" in before.values()

    assert main([*args, "--data-dir", str(learnable_data_dir)]) == 0
    capsys.readouterr()
    after = [r for r, _ in runs(store_path)]
    # "Recorded once": one finished row per trial; the rows the killed attempt left running
    # are marked interrupted by the rerun (mark_stale_runs: their worker is gone), and no
    # row is left running.
    finished = Counter(r.config_hash for r in after if r.status == "finished")
    assert len(finished) == 3 and set(finished.values()) == {1}
    statuses = {r.run_id: r.status for r in after}
    for run_id, status in before.items():
        assert statuses[run_id] == ("finished" if status == "finished" else "interrupted")
    assert "running" not in statuses.values()


def test_gpu_placement_gives_each_worker_its_own_gpu_round_robin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # untested on GPU hardware (there is none here): the assignment logic only
    assert gpu_slots(2, ["0", "1", "2"]) == [GpuSlot("0", 1), GpuSlot("1", 1)]
    assert gpu_slots(3, ["0", "1"]) == [GpuSlot("0", 2), GpuSlot("1", 1), GpuSlot("0", 2)]
    assert gpu_slots(2, []) == [None, None]
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, GPU-5f2a")  # the driver's own selection
    assert visible_gpus() == ["3", "GPU-5f2a"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpus() == []


def test_a_worker_records_its_gpu_in_the_environment() -> None:
    from mnistbench.experiments.worker import _PipeListener, _StopRequest

    class Pipe:
        def __init__(self) -> None:
            self.sent: list[tuple] = []

        def send(self, message: tuple) -> None:
            self.sent.append(message)

    pipe = Pipe()
    listener = _PipeListener(pipe, _StopRequest(), GpuSlot("1", 2))  # type: ignore[arg-type]
    card = {"fingerprint": "f" * 16}
    listener.started(make_config("mlp", device="cpu"), {"device": "cpu"}, card)
    listener.started(RunConfig(model="mlp", device="cuda"), {"device": "cuda"}, card)
    cpu_env, cuda_env = (message[1] for message in pipe.sent)
    assert cpu_env == {"device": "cpu"}  # a CPU trial says nothing of GPUs
    assert cuda_env == {"device": "cuda", "cuda_visible_devices": "1", "gpu_shared_by_workers": 2}
    assert pipe.sent[0][3:] == (socket.gethostname(), os.getpid(), card)


def test_a_stop_request_never_cuts_a_message_to_the_driver_in_half() -> None:
    from mnistbench.experiments.worker import _StopRequest

    stop = _StopRequest()
    stop.training = True
    sent = []
    with pytest.raises(KeyboardInterrupt), stop.sending_message():
        stop.handle(signal.SIGTERM, None)  # arrives mid-send: deferred to its end
        sent.append("the whole message")
    assert sent == ["the whole message"]
    stop.handle(signal.SIGTERM, None)  # once per trial: the run is ending already
    stop.training = False
    with pytest.raises(SystemExit):  # between trials a stop request ends the worker quietly
        stop.handle(signal.SIGTERM, None)
