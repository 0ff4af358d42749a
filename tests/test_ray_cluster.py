"""A sweep on a Ray cluster started apart, as a user does: `ray start --head` on a free port,
then `mnistbench sweep FILE --executor ray --ray-address 127.0.0.1:PORT` in another process.

The head is started with a token in its ~/.ray (so Ray 2.60 turns token authentication on,
the case that used to fail with InvalidAuthToken), in a temporary HOME and Ray temp folder.
Loopback only: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps every Ray address on 127.0.0.1 (on
Linux Ray otherwise replaces 127.0.0.1 with the machine's main address, ray-project/ray#26293),
so no traffic goes to any other address. The cluster is stopped through the `ray start --block`
process this test started (not `ray stop`, which stops every Ray instance of the machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray")

from mnistbench.experiments.ray_cluster import package_identity
from mnistbench.store import Store
from synthetic_cli import spawn_cli


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ray_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(HOME=str(home), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    return env


@pytest.fixture
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node cluster on 127.0.0.1 with 2 CPUs and token authentication: its address and
    the environment (HOME holding the head's token) that a user's shell would have."""
    # short: Ray's socket paths live under it and must stay below the 107-byte limit
    root = Path(tempfile.mkdtemp(prefix="mbray-", dir="/tmp"))
    (root / "home" / ".ray").mkdir(parents=True)
    (root / "home" / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    env = ray_env(root / "home")
    port = free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli if ray_cli.exists() else "ray"), "start", "--head", "--block",
         "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--disable-usage-stats", "--include-dashboard=false",
         "--object-store-memory", str(100 * 2**20), "--temp-dir", str(root / "tmp")],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert head.poll() is None, f"ray start failed: {head.stderr.read()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not come up in 60 s"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        session = os.getsid(head.pid) if head.poll() is None else head.pid
        head.terminate()  # ray start --block shuts its processes down on SIGTERM
        try:
            head.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.communicate()
        leftovers = [p for p in psutil.process_iter() if _session(p) == session]
        for process in leftovers:  # only processes of the session this fixture started
            process.kill()
        psutil.wait_procs(leftovers, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _session(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except OSError:
        return None


def test_a_sweep_on_a_cluster_started_apart(
    cluster, learnable_data_dir: Path, tmp_path: Path
) -> None:
    address, env = cluster
    sweep = tmp_path / "two.toml"
    sweep.write_text(
        "[fixed]\nmodel = 'mlp'\nepochs = 2\nval_size = 100\nsubset = 300\n[space]\nseed = [0, 1]\n"
    )
    store_path = tmp_path / "s.sqlite"
    args = ("sweep", str(sweep), "--executor", "ray", "--ray-address", address,
            "--store", str(store_path), "--quiet")  # fmt: skip

    # the token the head wrote, found in ~/.ray as Ray documents
    launched = datetime.now(timezone.utc)
    driver = spawn_cli(learnable_data_dir, *args, env=env)
    out, err = driver.communicate(timeout=240)
    assert driver.returncode == 0, err
    assert f"Ray ({address})" in err and "2 done" in out
    with Store(store_path) as store:
        runs = store.list_runs()
    assert sorted(r.config["seed"] for r in runs) == [0, 1]
    for run in runs:
        assert run.status == "finished"
        # trained by a Ray worker of this (only) node, not by the driver, at its real start
        assert run.hostname == socket.gethostname() and run.pid != driver.pid
        started, ended = (datetime.fromisoformat(t) for t in (run.started_at, run.finished_at))
        assert launched < started
        assert (ended - started).total_seconds() >= run.metrics["total_train_time_s"]
        # the mnistbench it ran is the driver's, shipped with runtime_env
        assert run.environment["mnistbench_source"] == package_identity()["source_sha256"]
        assert run.environment["ray_cpus_per_trial"] == 1

    # a wrong token: a clear error that says what to do (2 tries instead of Ray's 20)
    wrong = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_NUM_REDIS_GET_RETRIES": "2"}
    refused = spawn_cli(learnable_data_dir, *args, env=wrong)
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2, err
    assert f"The Ray cluster at {address} uses token authentication and refused" in err
    assert "the token in RAY_AUTH_TOKEN is not the token its head node uses" in err
    assert "Traceback" not in err
