"""Which engine levers make one model's training step faster on this CPU: an in-process A/B.

The roofline (benchmarks/roofline.py) times the whole loop for about 3 s a side, too short to
tell a 10% lever from this VM's run-to-run noise. Here every variant trains the same model at its
recipe's batch size on one fixed random batch (forward, loss, backward, fused Adam step: the model
step alone, without augmentation or the loop's bookkeeping), and the variants take turns, ROUNDS
blocks of STEPS steps each, so slow spells of the machine fall on all of them alike. The figure is
each variant's median block; the ratio is against eager fp32.

Variants: eager (today's default), `torch.compile` (inductor: fuses batch norm, ReLU and pooling
around oneDNN's convolutions; its warm-up is excluded, as the engine times it apart),
channels-last memory format, compile with inductor's C++ wrapper (kernels called from C++, not
Python), compile with the Adam step compiled too, and eager with oneDNN switched off (aten's own
convolutions).

    python benchmarks/step_levers.py --model small_cnn_bn --out benchmarks/results/step-levers
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from mnistbench.engine.environment import cpu_description, git_sha
from mnistbench.engine.peaks import load_peaks, training_flop_rate
from mnistbench.engine.size import flops_per_sample
from mnistbench.models import create_model, get_model_info

ROUNDS = 5
STEPS = 40


def _trainer(
    model_name: str,
    batch: int,
    *,
    compiled: bool,
    channels_last: bool,
    cpp_wrapper: bool = False,
    compiled_adam: bool = False,
):
    """A step function on one fixed batch, built from the same seed for every variant.
    `cpp_wrapper`: inductor calls its kernels from generated C++ instead of Python (less
    per-step overhead, longer compile). `compiled_adam`: the optimizer step compiled too
    (torch.compile of a foreach Adam's step), instead of the fused Adam kernel."""
    torch.manual_seed(0)
    model = create_model(model_name)
    images = torch.randn(batch, *input_shape(model_name))
    labels = torch.randint(0, 10, (batch,))  # every registered model has 10 classes here
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if compiled_adam:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        optimizer_step = torch.compile(optimizer.step)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        optimizer_step = optimizer.step
    options = {"cpp_wrapper": True} if cpp_wrapper else None
    forward = torch.compile(model, options=options) if compiled else model
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(forward(images), labels).backward()
        optimizer_step()

    return step


def input_shape(model_name: str) -> tuple[int, ...]:
    """One image as the model trains on it: at its recipe's image size where the recipe resizes
    (study C's ResNets train at 64 px), as the roofline measures it."""
    info = get_model_info(model_name)
    channels, height, width = info.input_shape
    size = info.recipe.defaults.get("image_size")
    return (channels, size, size) if size else (channels, height, width)


def _block_ms(step: Callable[[], None], steps: int, onednn: bool) -> float:
    torch.backends.mkldnn.enabled = onednn
    try:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - started) / steps * 1e3
    finally:
        torch.backends.mkldnn.enabled = True


def measure(model_name: str, rounds: int, steps: int) -> dict:
    info = get_model_info(model_name)
    batch = info.recipe.defaults.get("batch_size", 64)
    variants = {
        "eager": (_trainer(model_name, batch, compiled=False, channels_last=False), True),
        "torch.compile": (_trainer(model_name, batch, compiled=True, channels_last=False), True),
        "channels_last": (_trainer(model_name, batch, compiled=False, channels_last=True), True),
        "torch.compile, cpp_wrapper": (
            _trainer(model_name, batch, compiled=True, channels_last=False, cpp_wrapper=True),
            True,
        ),
        "torch.compile + compiled Adam": (
            _trainer(model_name, batch, compiled=True, channels_last=False, compiled_adam=True),
            True,
        ),
        "eager, oneDNN off": (
            _trainer(model_name, batch, compiled=False, channels_last=False),
            False,
        ),
    }
    for step, onednn in variants.values():  # warm-up: compilation and oneDNN's kernel choice
        _block_ms(step, 3, onednn)
    blocks: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (step, onednn) in variants.items():
            blocks[name].append(_block_ms(step, steps, onednn))
    flops = flops_per_sample(create_model(model_name), input_shape(model_name), "cpu")
    peaks = load_peaks("cpu")
    peak = peaks.peak_for("fp32") if peaks else None  # for the header; the rows ask the engine
    base = statistics.median(blocks["eager"])
    rows = []
    for name, values in blocks.items():
        median_ms = statistics.median(values)
        rows.append({
            "variant": name, "median_step_ms": median_ms, "blocks_ms": values,
            "ratio_to_eager": median_ms / base, **step_rate(flops, batch, median_ms, peaks),
        })  # fmt: skip
    return {
        "model": model_name, "batch_size": batch, "image_px": input_shape(model_name)[-1],
        "rounds": rounds, "steps_per_block": steps,
        "flops_per_sample": flops, "peak_fp32_flops_per_s": peak,
        **sitting(), "rows": rows,
    }  # fmt: skip


def step_rate(flops: int, batch: int, step_ms: float, peaks) -> dict[str, float | None]:
    """GFLOP/s and fraction of the fp32 peak of a step, by the engine's rule for every run:
    3 x the forward FLOPs per image, against the cached peak (`training_flop_rate`)."""
    measured = {"flops_per_sample": flops, "train_images_per_s": batch / (step_ms / 1e3)}
    rate = training_flop_rate(
        measured, device="cpu", precision="fp32", batch_size=batch, peaks=peaks
    )
    return {
        "gflop_per_s": rate["train_flops_per_s"] / 1e9,
        "fraction_of_fp32_peak": rate["fraction_of_peak"],
    }


def sitting() -> dict[str, object]:
    """Where and when a benchmark ran: machine, torch threads and version, commit, UTC time."""
    return {
        "machine": cpu_description(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "commit": git_sha(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip


def markdown(result: dict, command: str) -> str:
    peak = result["peak_fp32_flops_per_s"]
    lines = [
        f"# Training-step levers: {result['model']} at batch {result['batch_size']}, "
        f"{result.get('image_px', 28)} px",
        "",
        f"Command: `{command}`",
        f"Machine: {result['machine']}, {result['torch_threads']} "
        f"torch thread(s), torch {result['torch']}, commit {str(result['commit'])[:7]}, "
        f"{result['date']}; fp32 peak "
        + (f"{peak / 1e9:.1f} GFLOP/s (`mnistbench bench peak`)" if peak else "not measured"),
        "",
        f"The model step alone (one fixed batch: forward, loss, backward, fused Adam), variants "
        f"taking turns in {result['rounds']} blocks of {result['steps_per_block']} steps; the "
        "median block per variant. GFLOP/s counts 3x the forward FLOPs per image "
        f"({result['flops_per_sample']:,}). Not an epoch: augmentation and the loop's bookkeeping "
        "are outside it (the roofline times those too).",
        "",
        "| Variant | Median step ms | Blocks (ms) | Against eager | GFLOP/s | % of fp32 peak |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        share = row["fraction_of_fp32_peak"]
        blocks = ", ".join(f"{v:.1f}" for v in row["blocks_ms"])
        lines.append(
            f"| {row['variant']} | {row['median_step_ms']:.2f} | {blocks} | "
            f"{row['ratio_to_eager']:.3f}x | {row['gflop_per_s']:.1f} | "
            + (f"{100 * share:.1f}" if share is not None else "—")
            + " |"
        )
    return "\n".join(lines) + "\n"


def run_cli(
    doc: str, measure_fn: Callable, markdown_fn: Callable, script: str, rounds: int, steps: int
) -> None:
    """The command line every per-model step benchmark here shares: --model, --rounds, --steps,
    --out STEM (writes STEM.md and STEM.json; else the table goes to stdout only)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", default="small_cnn_bn")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--out", help="path stem: writes STEM.md and STEM.json (else stdout)")
    args = parser.parse_args()
    result = measure_fn(args.model, args.rounds, args.steps)
    text = markdown_fn(result, f"python benchmarks/{script} " + " ".join(sys.argv[1:]))
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
        Path(args.out + ".md").write_text(text)
    print(text)


def main() -> None:
    run_cli(__doc__, measure, markdown, "step_levers.py", ROUNDS, STEPS)


if __name__ == "__main__":
    main()
