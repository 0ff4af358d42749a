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


def test_a_disturbed_measurement_is_shown_not_saved_and_exits_2(
    capsys, monkeypatch, judged_peaks: float
) -> None:
    quiet = peaks.measure_peaks("cpu", sizes=(8,), repeats=1)
    quiet.others_cpu_share = {"fp32": 0.01, "bf16": 0.01}
    path = peaks.save_peaks(quiet)
    cache_before = path.read_bytes()
    monkeypatch.setattr(peaks, "others_cpu_share", lambda before, after: 0.45)
    assert main(["bench", "peak", "--device", "cpu", "--sizes", "8", "--repeats", "1"]) == 2
    out, err = capsys.readouterr()
    rows = [line for line in out.splitlines() if line.startswith(("fp32", "bf16"))]
    assert len(rows) == 2 and all(row.endswith("45%  DISTURBED") for row in rows)
    assert "saved to" not in out and "above 10% a CPU rate is disturbed" in out
    assert err.startswith("mnistbench: error: Other processes took more than 10%")
    assert "(fp32 45%, bf16 45%)" in err and "not saved" in err and "Traceback" not in err
    assert path.read_bytes() == cache_before  # the quiet peaks it held are kept


def test_a_quiet_measurement_shows_its_share_and_is_saved(
    capsys, monkeypatch, judged_peaks: float
) -> None:
    monkeypatch.setattr(peaks, "others_cpu_share", lambda before, after: 0.02)
    assert main(["bench", "peak", "--device", "cpu", "--sizes", "8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    fp32 = next(line for line in out.splitlines() if line.startswith("fp32"))
    assert fp32.endswith(" 2%") and "saved to" in out
    assert peaks.load_peaks("cpu").others_cpu_share == {"fp32": 0.02, "bf16": 0.02}


def test_precisions_measures_only_those_and_keeps_the_cached_others(capsys, monkeypatch) -> None:
    earlier = peaks.measure_peaks("cpu", sizes=(8,), repeats=1, keys=("fp32",))
    earlier.matmul_flops_per_s["bf16"] = 123.0e9  # a cached bf16 rate the new run must keep
    earlier.conv_flops_per_s["bf16"] = 45.0e9
    earlier.others_cpu_share["bf16"] = 0.03
    earlier.measured_at = "2026-01-02T03:04:05+00:00"
    peaks.save_peaks(earlier)
    asked = []
    measure = peaks.measure_peaks
    monkeypatch.setattr(
        peaks, "measure_peaks", lambda *a, **kw: asked.append(kw["keys"]) or measure(*a, **kw)
    )
    assert main(["bench", "peak", "--device", "cpu", "--sizes", "16", "--repeats", "1",
                 "--precisions", " FP32 "]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert asked == [("fp32",)]  # bf16 was not measured again
    assert "Kept from the cache, measured 2026-01-02T03:04:05+00:00: bf16." in out
    cached = peaks.load_peaks("cpu")
    assert cached.matmul_sizes == [16] and cached.measured_at != earlier.measured_at
    assert (
        cached.matmul_flops_per_s["bf16"] == 123.0e9 and cached.conv_flops_per_s["bf16"] == 45.0e9
    )
    assert cached.others_cpu_share["bf16"] == 0.03
    assert set(cached.matmul_flops_per_s) == {"fp32", "bf16"}


@pytest.mark.parametrize(
    ("precisions", "message"),
    [
        ("fp64", "expected comma-separated precisions out of fp32, tf32, bf16, fp16"),
        ("fp32,", "expected comma-separated precisions"),
        ("tf32", "--precisions asks for tf32; on cpu `bench peak` measures fp32, bf16."),
    ],
)
def test_bad_precisions_are_one_paragraph_and_exit_2(precisions, message, capsys) -> None:
    try:
        code = main(["bench", "peak", "--device", "cpu", "--precisions", precisions])
    except SystemExit as stop:  # argparse's own refusal
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert peaks.load_peaks("cpu") is None  # nothing was measured or saved
