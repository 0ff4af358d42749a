"""gpu_smoke.sh's summary: steps (exit code, seconds) and every run's record, as markdown.

python benchmarks/gpu_smoke_summary.py RESULTS_DIR DEVICE SECONDS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RUN_COLUMNS = (
    "Run", "Model", "Device", "Precision", "Compile", "Status", "s/epoch", "Test acc",
    "% of peak", "Peak key", "TF32 setting", "fp32 uses TF32", "Bit-reproducible",
)  # fmt: skip


def _get(run: dict, key: str):
    """An export row's value: metrics plain, settings as config.KEY, environment as env.KEY."""
    for name in (key, f"config.{key}", f"env.{key}"):
        if name in run:
            return run[name]
    return None


def _cell(value, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def summary(results: Path, device: str, seconds: str) -> str:
    steps = [json.loads(line) for line in (results / "gpu-smoke.jsonl").read_text().splitlines()]
    try:
        runs = json.loads((results / "gpu-smoke-runs.json").read_text())
    except (OSError, ValueError):
        runs = []
    passed = sum(s["rc"] == 0 for s in steps)
    # Only steps that finished are in the log: one cut by an outer time limit (and the steps
    # after it) is absent, so the heading counts what finished and says that it is all it knows.
    lines = [
        f"# GPU smoke check on {device}: {passed} of the {len(steps)} steps that finished exited "
        f"0, in {seconds} s (a step cut by an outer time limit is not listed)"
    ]
    if device != "cuda":
        lines.append("\nNo CUDA device: CPU fallback; these are not GPU figures.")
    lines += ["", "| Step | Exit | Seconds |", "| --- | --- | --- |"]
    lines += [f"| {s['step']} | {s['rc']} | {s['seconds']} |" for s in steps]
    lines += ["", "| " + " | ".join(RUN_COLUMNS) + " |", "|" + " --- |" * len(RUN_COLUMNS)]
    for run in runs:
        fraction = _get(run, "fraction_of_peak")
        cells = [
            _cell(_get(run, "run_id")), _cell(_get(run, "model")),
            _cell(_get(run, "device_name") or _get(run, "device")), _cell(_get(run, "precision")),
            _cell(_get(run, "compile")), _cell(_get(run, "status")),
            _cell(_get(run, "time_per_epoch_s"), "{:.2f}"),
            _cell(_get(run, "test_accuracy"), "{:.4f}"),
            _cell(None if fraction is None else 100 * fraction, "{:.2f}"),
            _cell(_get(run, "peak_precision")), _cell(_get(run, "tf32_setting")),
            _cell(_get(run, "fp32_uses_tf32")), _cell(_get(run, "bit_reproducible")),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
