"""`mnistbench bench peak`: measures on tiny shapes (what is stored, never how fast), caches
under the machine's fingerprint, --show reads the cache without measuring, bad input exits 2."""

from __future__ import annotations

import json

import pytest

from mnistbench.cli import main
from mnistbench.engine import peaks


def test_bench_peak_measures_caches_and_show_reads_the_cache(capsys, monkeypatch) -> None:
    assert main(["bench", "peak", "--device", "cpu", "--sizes", "8,16", "--repeats", "1"]) == 0
    table = capsys.readouterr().out
    assert "fp32" in table and "bf16" in table and "saved to" in table
    cached = peaks.load_peaks("cpu")
    assert cached is not None and cached.matmul_sizes == [8, 16] and cached.repeats == 1

    def never(*args, **kwargs):
        raise AssertionError("--show must not measure")

    monkeypatch.setattr(peaks, "measure_peaks", never)
    assert main(["bench", "peak", "--device", "cpu", "--show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["matmul_flops_per_s"] == cached.matmul_flops_per_s
    assert shown["fingerprint"] == cached.fingerprint


def test_show_without_a_cache_is_one_paragraph_and_exit_2(capsys) -> None:
    assert main(["bench", "peak", "--device", "cpu", "--show"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistbench: error: No peaks cached") and "bench peak" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("sizes", ["0", "a,b", ""])
def test_bad_sizes_are_an_argument_error(sizes: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "peak", "--sizes", sizes])
    assert stop.value.code == 2
    assert "--sizes" in capsys.readouterr().err


def test_threads_flag_changes_the_fingerprint_measured_under(capsys) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["bench", "peak", "--device", "cpu", "--sizes", "8", "--repeats", "1",
                     "--threads", "1", "--json"]) == 0  # fmt: skip
        assert json.loads(capsys.readouterr().out)["machine"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)
