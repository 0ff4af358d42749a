"""Each convolution of a model, forward and backward: oneDNN against im2col + matmul (a lever).

step_levers.py found small_cnn_bn's step bound by its convolutions (6-24 channels, where oneDNN's
direct kernels fill AVX2's 8 lanes poorly). One way around a weak kernel is to turn the
convolution into one large matmul (`unfold`, then weights @ columns), so the work runs in the
BLAS GEMM instead. This script times both on every Conv2d of the model at its recipe's batch
size, with the input gradient only where training computes it (not for the first layer), the
two ways taking turns per layer, the median of ROUNDS blocks of STEPS calls.

    python benchmarks/conv_layers.py --model small_cnn_bn --out benchmarks/results/conv-layers
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.models import create_model, get_model_info
from step_levers import (  # a sibling script: python puts benchmarks/ on the path
    input_shape,
    run_cli,
    sitting,
)

ROUNDS = 5
STEPS = 20


def conv_onednn(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding)


def conv_im2col(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The same convolution as one matmul over unfolded patches (stride 1, 'same' padding)."""
    batch, _, height, width = x.shape
    columns = F.unfold(x, conv.kernel_size, padding=conv.padding)  # (B, C*k*k, H*W)
    out = conv.weight.flatten(1) @ columns + conv.bias.view(1, -1, 1)  # (B, O, H*W)
    return out.view(batch, conv.out_channels, height, width)


def conv_inputs(model: nn.Module, input_shape: tuple[int, ...], batch: int) -> list:
    """(name, conv, input shape) of every Conv2d, in forward order, from one traced forward."""
    found: list = []
    hooks = [
        module.register_forward_hook(
            lambda m, args, _out, name=name: found.append((name, m, tuple(args[0].shape)))
        )
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(batch, *input_shape))
    for hook in hooks:
        hook.remove()
    return found


def _block_ms(fn: Callable, x: torch.Tensor, conv: nn.Conv2d, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        fn(x, conv).sum().backward()
    return (time.perf_counter() - started) / steps * 1e3


def measure(model_name: str, rounds: int, steps: int) -> dict:
    info = get_model_info(model_name)
    batch = info.recipe.defaults.get("batch_size", 64)
    torch.manual_seed(0)
    model = create_model(model_name)
    rows = []
    for index, (name, conv, shape) in enumerate(conv_inputs(model, input_shape(model_name), batch)):
        x = torch.randn(shape, requires_grad=index > 0)  # training needs no image gradient
        torch.testing.assert_close(conv_im2col(x, conv), conv_onednn(x, conv), atol=1e-4, rtol=1e-4)
        blocks: dict[str, list[float]] = {"onednn": [], "im2col": []}
        for fn in (conv_onednn, conv_im2col):
            _block_ms(fn, x, conv, 3)  # warm-up: oneDNN's kernel choice, allocations
        for _ in range(rounds):
            blocks["onednn"].append(_block_ms(conv_onednn, x, conv, steps))
            blocks["im2col"].append(_block_ms(conv_im2col, x, conv, steps))
        k_h, k_w = conv.kernel_size
        forward_flops = 2 * conv.in_channels * conv.out_channels * k_h * k_w
        forward_flops *= shape[2] * shape[3] * batch
        rows.append({
            "layer": name, "in_channels": conv.in_channels, "out_channels": conv.out_channels,
            "kernel": k_h, "height": shape[2],
            "training_flops": forward_flops * (3 if index > 0 else 2),
            "onednn_ms": statistics.median(blocks["onednn"]),
            "im2col_ms": statistics.median(blocks["im2col"]),
        })  # fmt: skip
    return {
        "model": model_name, "batch_size": batch, "rounds": rounds, "steps_per_block": steps,
        **sitting(), "rows": rows,
    }  # fmt: skip


def markdown(result: dict, command: str) -> str:
    lines = [
        f"# Convolutions of {result['model']} at batch {result['batch_size']}: oneDNN against "
        "im2col + matmul",
        "",
        f"Command: `{command}`",
        f"Machine: {result['machine']}, {result['torch_threads']} torch thread(s), torch "
        f"{result['torch']}, commit {str(result['commit'])[:7]}, {result['date']}",
        "",
        "Forward and backward of each Conv2d alone (weight and bias gradients; the input's "
        "gradient too, except for the first layer, as in training), the two ways taking turns, "
        f"median of {result['rounds']} blocks of {result['steps_per_block']} calls. GFLOP/s "
        "counts 2x (first layer) or 3x the forward FLOPs.",
        "",
        "| Layer | Channels | Kernel | Size | oneDNN ms | GFLOP/s | im2col ms | GFLOP/s | "
        "im2col against oneDNN |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        gflop = row["training_flops"] / 1e9
        lines.append(
            f"| {row['layer']} | {row['in_channels']}→{row['out_channels']} | {row['kernel']}x"
            f"{row['kernel']} | {row['height']} px | {row['onednn_ms']:.2f} | "
            f"{gflop / row['onednn_ms'] * 1e3:.1f} | {row['im2col_ms']:.2f} | "
            f"{gflop / row['im2col_ms'] * 1e3:.1f} | {row['im2col_ms'] / row['onednn_ms']:.2f}x |"
        )
    onednn = sum(row["onednn_ms"] for row in result["rows"])
    im2col = sum(row["im2col_ms"] for row in result["rows"])
    lines.append(f"| all | | | | {onednn:.2f} | | {im2col:.2f} | | {im2col / onednn:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    run_cli(__doc__, measure, markdown, "conv_layers.py", ROUNDS, STEPS)  # step_levers' flags


if __name__ == "__main__":
    main()
