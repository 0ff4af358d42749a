"""benchmarks/roofline.py: the step timer stops the run after its steps (on a tiny model and the
synthetic data set), and the table's FLOP rate and bound follow a hand count and the stated rule.
Timings are never asserted, only that they were taken."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_flop_rate_and_fraction_follow_a_hand_count(monkeypatch) -> None:
    table = _load("roofline_table", monkeypatch)
    # an MLP 784-512-256-10: 2 x (784*512 + 512*256 + 256*10) forward FLOPs per image
    forward = 2 * (784 * 512 + 512 * 256 + 256 * 10)
    row = {"flops_per_sample": forward, "peak_fp32_flops_per_s": 1e11}
    side = {"images_per_s": 1000.0}
    assert table.flop_rate(row, side) == 3 * forward * 1000.0
    assert table.fraction_of_peak(row, side) == pytest.approx(3 * forward * 1000.0 / 1e11)


@pytest.mark.parametrize(
    ("compute", "outside", "mean_op_us", "images_per_s", "expected"),
    [
        (0.6, 0.05, 100.0, 1.0, "compute"),  # matmul/conv take most of the step
        (0.1, 0.05, 100.0, 20_000.0, "compute"),  # 25%+ of peak whatever the split
        (0.2, 0.4, 100.0, 1.0, "overhead"),  # much of the step outside every op
        (0.2, 0.1, 8.0, 1.0, "overhead"),  # ops too short for their arithmetic to count
        (0.2, 0.1, 100.0, 1.0, "memory"),  # element-wise ops outweigh the arithmetic
    ],
)
def test_bound_follows_the_stated_rule(
    monkeypatch, compute, outside, mean_op_us, images_per_s, expected
) -> None:
    table = _load("roofline_table", monkeypatch)
    row = {"flops_per_sample": 1_000_000, "peak_fp32_flops_per_s": 1e11}
    after = {"compute_share": compute, "other_ops_share": 1 - compute - outside,
             "outside_ops_share": outside, "mean_op_us": mean_op_us,
             "images_per_s": images_per_s}  # fmt: skip
    assert table.bound(row, after) == expected
    assert table.bound(row, {"images_per_s": 1.0}) == "-"  # not profiled


def test_the_timer_times_steps_then_stops_the_run(monkeypatch, learnable_data_dir) -> None:
    roofline = _load("roofline", monkeypatch)
    monkeypatch.setattr(roofline, "WARMUP_STEPS", 1)
    monkeypatch.setattr(roofline, "MAX_STEPS", 3)
    monkeypatch.setattr(roofline, "PROFILE_STEPS", 2)
    monkeypatch.setenv("MNISTBENCH_DATA", str(learnable_data_dir))
    extra = ["--val-size", "32", "--batch-size", "8"]  # the synthetic set is small
    figures = roofline.measure("mlp", subset=8 * 8, profile=True, extra=extra)
    assert figures["steps"] == 3 and figures["batch_size"] == 8
    assert figures["step_ms"] > 0 and figures["epoch_equivalent_s"] > 0
    assert figures["profiled_steps"] == 2
    shares = figures["compute_share"] + figures["other_ops_share"] + figures["outside_ops_share"]
    assert shares == pytest.approx(1.0, abs=0.05) or figures["outside_ops_share"] == 0.0
    assert figures["compile_warm_up_s"] is None  # not compiled


def test_a_compiled_measurement_keeps_its_warm_up_beside_the_step(
    monkeypatch, learnable_data_dir
) -> None:
    from mnistbench.recipes import train_stages

    roofline = _load("roofline", monkeypatch)
    monkeypatch.setattr(roofline, "WARMUP_STEPS", 1)
    monkeypatch.setattr(roofline, "MAX_STEPS", 2)
    monkeypatch.setenv("MNISTBENCH_DATA", str(learnable_data_dir))

    def fake_warm_up(model, *args, **kwargs):  # what compile_for_training returns, no compiling
        return model, 1.5

    monkeypatch.setattr(train_stages, "compile_for_training", fake_warm_up)
    extra = ["--val-size", "32", "--batch-size", "8", "--compile"]
    figures = roofline.measure("mlp", subset=8 * 8, profile=False, extra=extra)
    assert figures["steps"] == 2 and figures["compile_warm_up_s"] == 1.5
    assert train_stages.compile_for_training is fake_warm_up  # given back as it was


def test_the_committed_table_round_trips_one_model_a_line(monkeypatch, tmp_path) -> None:
    """roofline.json is the rows behind roofline.md: written one model a line, it reads back
    as the same rows (a re-measured model replaces its older row)."""
    import json

    table = _load("roofline_table", monkeypatch)
    committed = json.loads((BENCHMARKS / "results/roofline.json").read_text())
    rows = committed["rows"][:3]
    measured = tmp_path / "rows.jsonl"
    measured.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], *rows]))
    table.write_table([str(measured)], tmp_path / "roofline", "cmd", "notes")
    text = (tmp_path / "roofline.json").read_text()
    assert json.loads(text) == {"command": "cmd", "notes": "notes", "rows": rows}
    assert len(text.splitlines()) == 2 + len(rows)
    assert (tmp_path / "roofline.md").read_text().count(f"| {rows[1]['model']} |") == 1


def test_step_levers_counts_its_flop_rate_by_hand_and_restores_onednn(monkeypatch) -> None:
    levers = _load("step_levers", monkeypatch)
    monkeypatch.setattr(levers.torch, "compile", lambda fn, **options: fn)  # the bookkeeping, fast
    result = levers.measure("mlp", rounds=2, steps=1)
    assert torch_onednn_enabled()  # the oneDNN-off variant switches it back on
    rows = {row["variant"]: row for row in result["rows"]}
    assert list(rows) == [
        "eager", "torch.compile", "channels_last", "torch.compile, cpp_wrapper",
        "torch.compile + compiled Adam", "eager, oneDNN off",
    ]  # fmt: skip
    assert rows["eager"]["ratio_to_eager"] == 1.0
    assert all(len(row["blocks_ms"]) == 2 for row in rows.values())
    # the MLP's forward FLOPs by hand (784-512-256-10, 1 MAC = 2 FLOPs), 3x for training
    forward = 2 * (784 * 512 + 512 * 256 + 256 * 10)
    assert result["flops_per_sample"] == forward
    for row in rows.values():
        images_per_s = result["batch_size"] / (row["median_step_ms"] / 1e3)
        assert row["gflop_per_s"] == pytest.approx(3 * forward * images_per_s / 1e9)
    text = levers.markdown(result, "python benchmarks/step_levers.py --model mlp")
    assert (
        text.count("\n| ") == 2 + 6 and "--model mlp" in text and "mlp at batch 128, 28 px" in text
    )
    # study C's ResNets train at their recipe's 64 px (one grey channel), as the roofline has them
    assert levers.input_shape("resnet18") == (1, 64, 64)
    assert levers.input_shape("mlp") == (1, 28, 28)


def torch_onednn_enabled() -> bool:
    import torch

    return torch.backends.mkldnn.enabled


def test_conv_layers_finds_every_convolution_and_its_im2col_twin_is_the_same_function(
    monkeypatch,
) -> None:
    import torch
    from torch import nn

    layers = _load("conv_layers", monkeypatch)
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(layers.conv_im2col(x, conv), layers.conv_onednn(x, conv))
    result = layers.measure("small_cnn_bn", rounds=1, steps=1)
    rows = result["rows"]
    # small_cnn_bn's 11 convolutions (models/small_cnn.py _BLOCKS) at batch 32, in forward order
    assert [(r["in_channels"], r["out_channels"], r["kernel"], r["height"]) for r in rows] == [
        (1, 6, 3, 28), (6, 12, 3, 28), (12, 24, 3, 28), (24, 8, 1, 28), (8, 16, 3, 14),
        (16, 16, 3, 14), (16, 8, 1, 14), (8, 16, 3, 7), (16, 16, 3, 7), (16, 16, 3, 3),
        (16, 32, 3, 3),
    ]  # fmt: skip
    assert result["batch_size"] == 32
    # first layer: forward + weight gradient (2x); 12->24 at 28 px: 3 x 2*12*24*9*784*32 by hand
    assert rows[0]["training_flops"] == 2 * (2 * 1 * 6 * 9 * 784 * 32)
    assert rows[2]["training_flops"] == 3 * 2 * 12 * 24 * 9 * 784 * 32 == 390_168_576
    text = layers.markdown(result, "python benchmarks/conv_layers.py")
    assert text.count("\n| ") == 2 + 11 + 1


def test_malloc_lever_runs_each_side_in_its_own_processes_and_counts_by_hand(monkeypatch) -> None:
    lever = _load("malloc_lever", monkeypatch)
    result = lever.measure("mlp", rounds=1, blocks=2, steps=1, compiled=False)
    sides = result["sides"]
    assert list(sides) == ["default", "retain"]
    from mnistbench.engine.allocator import retention_available

    assert sides["retain"]["retained"] is retention_available()
    assert sides["default"]["retained"] is False
    assert all(len(side["blocks_ms"]) == 2 for side in sides.values())  # 1 process x 2 blocks
    forward = 2 * (784 * 512 + 512 * 256 + 256 * 10)  # the MLP by hand, as above
    for side in sides.values():
        images_per_s = result["batch_size"] / (side["median_step_ms"] / 1e3)
        assert side["gflop_per_s"] == pytest.approx(3 * forward * images_per_s / 1e9)
        assert side["peak_rss_mb"] > 50  # KiB from getrusage: torch alone holds more
    assert result["retain_over_default"] == pytest.approx(
        sides["retain"]["median_step_ms"] / sides["default"]["median_step_ms"]
    )
    text = lever.markdown(result, "python benchmarks/malloc_lever.py --model mlp")
    assert text.count("\n| ") == 2 + 2 and "mlp (eager) at batch 128, 28 px" in text


def test_rounds_keep_the_median_child_and_the_last_childs_profile(monkeypatch) -> None:
    roofline = _load("roofline", monkeypatch)
    children = [
        {"step_ms": 40.0, "steps": 9},
        {"step_ms": 30.0, "steps": 9},
        {"step_ms": 50.0, "steps": 9, "compute_share": 0.6, "top_ops": [["aten::conv", 0.5, 2]]},
    ]
    chosen = roofline._median_child(children, profiled=children[-1])
    # median of 30, 40, 50 is the 40 ms child; its timing stands, the profile comes from the last
    assert chosen["step_ms"] == 40.0 and chosen["compute_share"] == 0.6
    assert chosen["top_ops"] == [["aten::conv", 0.5, 2]]
    assert chosen["rounds_step_ms"] == [40.0, 30.0, 50.0]
    assert "rounds_compile_warm_up_s" not in chosen  # none compiled
    compiled = [
        {"step_ms": 9.0, "compile_warm_up_s": 80.0},
        {"step_ms": 8.0, "compile_warm_up_s": 6.0},
    ]
    assert roofline._median_child(compiled)["rounds_compile_warm_up_s"] == [80.0, 6.0]
    # an even count keeps the lower middle; a failed child is left out of the choice
    two = roofline._median_child([{"step_ms": 20.0}, {"steps": 0, "note": "failed: x"}])
    assert two["step_ms"] == 20.0 and two["rounds_step_ms"] == [20.0, None]
    assert roofline._median_child([{"step_ms": 31.0}, {"step_ms": 29.0}])["step_ms"] == 29.0
    failed = roofline._median_child([{"steps": 0, "note": "failed: y"}])
    assert failed["note"] == "failed: y"
