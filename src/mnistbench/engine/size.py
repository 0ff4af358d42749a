"""How big a model is: its parameters, the bytes of its state dict and its forward FLOPs per
image (per-batch setup apart), counted before training or, for a fitted estimator, after it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

__all__ = [
    "STATIC_KEYS",
    "count_parameters",
    "flop_counts",
    "flops_per_sample",
    "model_size_bytes",
    "static_measurements",
]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes that `torch.save(model.state_dict())` stores: parameters and persistent buffers
    (BatchNorm statistics), each storage once (tied weights count once). Non-persistent
    buffers, such as the spiking CNN's lookup table rebuilt from constants, are not saved."""
    storages: dict[tuple[torch.device, int], int] = {}
    for tensor in model.state_dict().values():
        storage = tensor.untyped_storage()
        storages[(tensor.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _onednn_rnn_layer_flops(input_shape, input_weight_shape, hidden_weight_shape, *args, **kwargs):
    # One layer, one direction, every time step: gates x (input + hidden) MACs per token.
    steps_times_batch = input_shape[0] * input_shape[1]
    gate_width = input_weight_shape[0]  # 4 x hidden for an LSTM
    return 2 * steps_times_batch * gate_width * (input_weight_shape[1] + hidden_weight_shape[1])


def _cudnn_rnn_flops(input_shape, weight_shapes, weight_stride0, *args, **kwargs) -> int:
    """cuDNN's whole RNN (every layer and direction) in one op: per layer and direction the
    same count as the oneDNN layer, plus an LSTM's projection (proj_size) where present."""
    tokens = 1
    for size in input_shape[:-1]:  # (T, B, in), (B, T, in) or packed (sum of lengths, in)
        tokens *= size
    flops = 0
    # weights per layer and direction: w_ih, w_hh[, b_ih, b_hh][, w_hr]: a projection makes
    # the group odd-sized (3 without biases, 5 with)
    for start in range(0, len(weight_shapes), weight_stride0):
        w_ih, w_hh = weight_shapes[start], weight_shapes[start + 1]
        flops += 2 * tokens * w_ih[0] * (w_ih[1] + w_hh[1])
        if weight_stride0 % 2 == 1:
            w_hr = weight_shapes[start + weight_stride0 - 1]
            flops += 2 * tokens * w_hr[0] * w_hr[1]
    return flops


# torch 2.13's counter has no formula for three fused kernels and counts them as 0: CPU
# attention (pytorch/pytorch#195460, fixed after 2.13; given the CUDA kernels' formula here),
# the oneDNN LSTM layer that nn.LSTM/GRU/RNN run in inference on the CPU, and cuDNN's RNN.
_EXTRA_FLOP_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops,
    torch.ops.aten.mkldnn_rnn_layer: _onednn_rnn_layer_flops,
    torch.ops.aten._cudnn_rnn: _cudnn_rnn_flops,
}


def _forward_flops(model: nn.Module, input_shape: tuple[int, ...], device: str, batch: int) -> int:
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    with torch.no_grad(), counter:
        model(torch.zeros(batch, *input_shape, device=device))
    return int(counter.get_total_flops())


def flop_counts(model: nn.Module, input_shape: tuple[int, ...], device: str) -> tuple[int, int]:
    """(forward FLOPs per image, FLOPs per batch whatever its size), by torch.utils.flop_counter
    (matmuls, convolutions and attention; 1 MAC = 2 FLOPs; elementwise ops are not counted).

    Counted at batch 1 and batch 2: the difference is the per-image work, and what is left at
    batch 1 is the per-batch setup, such as the spiking CNN's 2^16-row lookup table, built once
    per forward (charged to every image it was 2.4x the real per-image count).
    """
    was_training = model.training
    mha_fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    # In eval mode nn.TransformerEncoderLayer runs one fused kernel the counter cannot see
    # (the ViT counted 0.2 MFLOPs instead of 57.8); the unfused path computes the same thing.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        one = _forward_flops(model, input_shape, device, 1)
        two = _forward_flops(model, input_shape, device, 2)
    finally:
        torch.backends.mha.set_fastpath_enabled(mha_fastpath)
        model.train(was_training)
    per_image = two - one
    return per_image, one - per_image


def flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], device: str) -> int:
    """Forward FLOPs of one image, per-batch setup left out (see `flop_counts`)."""
    return flop_counts(model, input_shape, device)[0]


STATIC_KEYS = (
    "params",
    "params_total",
    "flops_per_sample",
    "macs_per_sample",
    "batch_setup_flops",
    "model_size_bytes",
)


def static_measurements(
    model: nn.Module, input_shape: tuple[int, ...], device: str
) -> dict[str, object]:
    """Parameters, FLOPs and size of `model`. A fitted estimator (models/svm.py) counts its
    own stored values through `fitted_counts()`, which is None before the fit: then every
    figure is None here, and `measure_after_training` takes them once it is fitted."""
    fitted_counts = getattr(model, "fitted_counts", None)
    if fitted_counts is not None:
        counts = fitted_counts()
        if counts is None:
            return dict.fromkeys(STATIC_KEYS)
    else:
        counts = {
            "params": count_parameters(model),
            "params_total": count_parameters(model, trainable_only=False),
            "model_size_bytes": model_size_bytes(model),
        }
    flops, setup = flop_counts(model, input_shape, device)
    return {
        **counts,
        "flops_per_sample": flops,
        "macs_per_sample": flops // 2,
        "batch_setup_flops": setup,
    }
