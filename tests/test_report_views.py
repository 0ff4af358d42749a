"""Named report views: the benchmarks' tables as data, built from the store alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnistbench.errors import ConfigError
from mnistbench.experiments.configure import make_config
from mnistbench.report import VIEWS, build_view, view_markdown
from mnistbench.report.columns import COLUMNS
from mnistbench.store import Store
from report_store import CPU_ENV, MNIST, realistic_store, write_run
from test_report import _row, _table

STORED_ENV = {**CPU_ENV, "device_name": "Stored CPU Z9", "torch_threads": 1}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = realistic_store(tmp_path_factory.mktemp("views") / "results.sqlite")
    with Store(path) as store:  # two more seeds of the study D model, on a machine of their own
        for seed in (1, 2):
            params, time_s, honest, best, final = MNIST["small_cnn_bn"]
            figures = (params, time_s + seed, honest + 0.0002 * seed, best, final)
            write_run(store, make_config("small_cnn_bn", seed=seed), figures, env=STORED_ENV)
    return path


def test_every_view_names_existing_columns_and_builds(store_path: Path) -> None:
    with Store(store_path) as store:
        for name, view in VIEWS.items():
            assert set(view.columns) <= set(COLUMNS), name
            document = build_view(store, name)
            if view.rows != "groups":  # a table of its own (tests/test_reproduction_view.py)
                continue
            header = document.sections[0].blocks[0].header  # type: ignore[union-attr]
            assert header == [COLUMNS[c].title for c in view.columns]  # named, in order


def test_zoo_small_view_pools_seeds_and_says_where_they_ran(store_path: Path) -> None:
    with Store(store_path) as store:
        markdown = view_markdown(store, "zoo-small")
    table = _table(markdown, "## Results")
    models = {row[0] for row in table[1:]}
    assert models == {
        "small_cnn_bn", "small_cnn_v1", "small_cnn_v2", "cnn_small", "mlp_784_512", "rnn_rows",
        "gru_rows", "lstm_rows", "diet_2", "diet_3", "diet_4",
    }  # studies B, D, E only; no study A model  # fmt: skip
    bn = _row(table, Model="small_cnn_bn", Dataset="mnist")
    assert bn["Seeds"] == "0, 1, 2" and bn["Epochs run"] == "20, 20, 20"
    assert bn[COLUMNS["acc_best_val"].title].startswith("99.50 ± 0.02% [")
    # study D published the max over epochs, 99.55%: ours is 99.52%, inside the one-run interval
    met = bn[COLUMNS["met"].title]
    assert met.startswith("consistent (-0.03 pt; one-run 95% PI ")
    assert met.endswith("[max over epochs]")
    # the fixture's runs predate train_cpu_share: their times cannot say they had the cores
    assert bn["Time/epoch (train, threads, CPU share)"] == (
        "42.40 ± 1.00 s (1/2 thr, CPU share not recorded: not this machine's speed)"
    )
    # Fashion-MNIST rows have no figure in the registry's cards: nothing is set against them
    fashion = _row(table, Model="small_cnn_bn", Dataset="fashion-mnist")
    assert fashion["Published (same dataset, closest setting)"] == "— (figures for mnist only)"
    # the machines are the runs' own, as stored
    (devices,) = [line for line in markdown.splitlines() if line.startswith("| Devices |")]
    assert devices == (
        "| Devices | cpu: AMD EPYC (AVX512, native bf16) ×14; "
        "cpu: Stored CPU Z9 (AVX512, native bf16) ×2 |"
    )
    assert "diet_1" in markdown.split("Not run yet", 1)[1]


def test_views_leave_quick_looks_out_where_they_compare(store_path: Path) -> None:
    with Store(store_path) as store:
        studies = view_markdown(store, "studies")
        showdown = view_markdown(store, "architecture-showdown")
    assert "subset=2000" not in studies and "13.15%" not in studies
    # the showdown lists the quick look, saying it is not comparable
    table = _table(showdown, "## Results")
    final = table[0].index(COLUMNS["acc_final"].title)
    (quick,) = [
        dict(zip(table[0], r, strict=True)) for r in table[1:] if r[final].startswith("13.15% [")
    ]
    met = quick[COLUMNS["met"].title]
    assert met == "not comparable (subset 2000, 1 of 5 epochs)"


def test_a_view_is_the_same_text_wherever_and_whenever_it_is_built(
    store_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "elsewhere" / "copy.sqlite"
    copy.parent.mkdir()
    shutil.copy(store_path, copy)
    with Store(store_path) as store:
        first = view_markdown(store, "zoo-large")
    with Store(copy) as store:
        assert view_markdown(store, "zoo-large") == first
    assert str(store_path) not in first and "UTC" not in first


def test_an_unknown_view_names_the_known_ones(store_path: Path) -> None:
    with Store(store_path) as store, pytest.raises(ConfigError) as caught:
        build_view(store, "zoo-smal")
    message = str(caught.value)
    assert "Did you mean zoo-small" in message and "architecture-showdown" in message


def test_a_cpu_time_says_how_much_of_the_cores_its_runs_had() -> None:
    """The lowest share over a group's seeds is shown, so one contended seed marks the cell."""
    from types import SimpleNamespace

    from mnistbench.report.columns import _cpu_share

    def group(*shares):
        runs = [SimpleNamespace(metrics={"train_cpu_share": share}) for share in shares]
        return SimpleNamespace(runs=runs)

    assert _cpu_share(group(0.99, 0.97)) == "CPU 97%"
    assert _cpu_share(group(0.90, 0.95)) == "CPU 90%"  # the threshold itself is the machine's
    # under 90%, or not recorded, the time is not this machine's speed, and says so
    assert _cpu_share(group(0.98, 0.31)) == "CPU 31%: contended, not this machine's speed"
    assert _cpu_share(group(0.98, 0.89)) == "CPU 89%: contended, not this machine's speed"
    assert _cpu_share(group(0.98, None)) == "CPU share not recorded: not this machine's speed"


def test_a_gpu_time_says_when_pool_workers_shared_the_gpu() -> None:
    """A time measured while N pool workers trained on one GPU is not that GPU's speed: the
    cell says so (at least N: other processes on the GPU are not recorded)."""
    from types import SimpleNamespace

    from mnistbench.report.columns import _gpu_sharing

    def group(*shared_by):
        runs = [SimpleNamespace(environment={"gpu_shared_by_workers": n}) for n in shared_by]
        return SimpleNamespace(runs=runs)

    assert _gpu_sharing(group(6, 6, 9)) == "GPU shared: ≥9 processes"
    assert _gpu_sharing(group(None)) == "GPU"
    assert _gpu_sharing(group(1, None)) == "GPU"


def test_a_gpu_machine_names_its_host_cpu_as_the_host() -> None:
    """On a GPU run the SIMD level and bf16 are the host CPU's: the label must not read as
    the GPU's."""
    from mnistbench.report.sections.overview import _machine

    env = {"device": "cuda", "device_name": "NVIDIA H200", "cpu_model": "Intel Xeon",
           "cpu_capability": "AVX512", "cpu_native_bf16": True}  # fmt: skip
    assert _machine(env) == "cuda: NVIDIA H200 (host CPU Intel Xeon: AVX512, native bf16)"
    cpu = {**env, "device": "cpu", "device_name": "AMD EPYC"}
    assert _machine(cpu) == "cpu: AMD EPYC (AVX512, native bf16)"
