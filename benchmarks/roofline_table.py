"""The roofline table (benchmarks/roofline.py `table`): markdown and JSON from compare's rows.

FLOP rate = 3 x forward FLOPs per image x images per second (backward counted as twice the
forward, as engine/peaks.py training_flop_rate does); fraction of peak against the cached fp32
peak of the same machine and thread count (`mnistbench bench peak`).
"""

from __future__ import annotations

import json
from pathlib import Path

COMPUTE_SHARE = 0.5
PEAK_SHARE = 0.25
OUTSIDE_SHARE = 0.3
SHORT_OP_US = 20.0


def bound(row: dict, after: dict) -> str:
    """compute / overhead / memory, by roofline.BOUND_RULE; '-' without a profile."""
    if "compute_share" not in after:
        return "-"
    fraction = fraction_of_peak(row, after)
    if after["compute_share"] >= COMPUTE_SHARE or (fraction or 0) >= PEAK_SHARE:
        return "compute"
    if after["outside_ops_share"] >= OUTSIDE_SHARE or after["mean_op_us"] < SHORT_OP_US:
        return "overhead"
    return "memory"


def flop_rate(row: dict, side: dict) -> float | None:
    if not row.get("flops_per_sample") or not side.get("images_per_s"):
        return None
    return 3 * row["flops_per_sample"] * side["images_per_s"]


def fraction_of_peak(row: dict, side: dict) -> float | None:
    rate, peak = flop_rate(row, side), row.get("peak_fp32_flops_per_s")
    return rate / peak if rate is not None and peak else None


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for row in rows:
        before, after = row.get("before", {}), row["after"]
        speedup = (
            before["step_ms"] / after["step_ms"]
            if before.get("step_ms") and after.get("step_ms")
            else None
        )
        rate = flop_rate(row, after)
        out.append([
            row["model"] + (f" [{row['variant']}]" if row.get("variant") else ""),
            str(row["image_size"]),
            str(after.get("batch_size", "-")),
            _cell(before.get("step_ms"), ".2f"),
            _cell(after.get("step_ms"), ".2f"),
            _cell(speedup, ".2f") + ("x" if speedup else ""),
            _cell(before.get("epoch_equivalent_s"), ".1f"),
            _cell(after.get("epoch_equivalent_s"), ".1f"),
            _cell(rate / 1e9 if rate else None, ".1f"),
            _cell(100 * fraction_of_peak(row, after) if rate else None, ".1f"),
            bound(row, after),
            _cell(100 * after["compute_share"] if "compute_share" in after else None, ".0f"),
            _cell(100 * after["other_ops_share"] if "compute_share" in after else None, ".0f"),
            _cell(100 * after["outside_ops_share"] if "compute_share" in after else None, ".0f"),
            _cell(after.get("mean_op_us"), ".0f"),
            str(after.get("steps", 0)) + (f" ({after['note']})" if after.get("note") else ""),
        ])  # fmt: skip
    return out


HEADER = [
    "Model", "px", "Batch", "Step ms before", "Step ms after", "Speed-up",
    "Epoch-eq. s before", "Epoch-eq. s after", "GFLOP/s after", "% of fp32 peak", "Bound",
    "% matmul/conv", "% other ops", "% outside ops", "Mean op us", "Timed steps",
]  # fmt: skip


TITLE = "Roofline: every registered model at its recipe, before (5ae60b7) and after"


def write_table(
    paths: list[str], stem: Path, command: str, notes: str = "", title: str = TITLE
) -> None:
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line]
    # a re-measured model (and variant) replaces its row
    latest = {(row["model"], row.get("variant", "")): row for row in rows}
    rows = list(latest.values())
    first = rows[0]
    peak = first.get("peak_fp32_flops_per_s")
    lines = [
        f"# {title}",
        "",
        notes,
        "",
        f"Command: `{command}`" if command else "",
        f"Machine: {first['machine']}, {first['torch_threads']} torch thread(s); fp32 peak "
        + (f"{peak / 1e9:.1f} GFLOP/s (`mnistbench bench peak`)" if peak else "not measured"),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + " --- |" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    # one model a line: valid JSON whose diff shows which models changed
    head = json.dumps({"command": command, "notes": notes})[:-1]
    body = ",\n".join(json.dumps(row) for row in rows)
    stem.with_suffix(".json").write_text(f'{head}, "rows": [\n{body}\n]}}\n')
