"""Spiking networks built on snntorch (leaky integrate-and-fire neurons, surrogate gradients).

Study A `snn`: the `cnn` conv layout with a LIF neuron after each conv and the hidden linear
layer, Bernoulli rate encoding over T=25 steps, readout = mean spike count of the 128 hidden
neurons -> Linear(128, 10); 206,922 parameters, 98.56% after 3 epochs, ~1750 s/epoch on a CPU.
Study B `snn_single_step`: Linear(784, 512) -> one leaky neuron step -> Linear(512, 10);
407,050 parameters.

Speed: the network is feed-forward, so layer l's input at every time step is known once layer
l-1 has run over all T steps. Each conv/linear therefore runs once on the time axis folded into
the batch, (T*B, ...), and only the elementwise LIF recurrence loops over T (LIFScan). conv1 +
pool1 see binary 1-channel spikes, so they are a table lookup over the 2^16 possible 4x4
windows (binary_conv_pool); spikes stay channels-last from there on (oneDNN's fast layout).
The same arithmetic and gradients as the step-by-step loop of the snntorch tutorials
(tests/test_snn.py checks logits and every parameter gradient against that loop).
"""

from __future__ import annotations

import math

import snntorch
import torch
from snntorch import surrogate
from torch import nn
from torch.nn import functional as F

from mnistbench.errors import ConfigError
from mnistbench.models.registry import register_model
from mnistbench.recipes import Recipe, cross_entropy, spike_activity

ENCODINGS = ("rate", "direct")
# "fused": LIFScan, the snntorch Leaky dynamics in one autograd op (checked against it in the
# tests); "snntorch": the snntorch.Leaky module stepped in a Python loop (the reference).
NEURONS = ("fused", "snntorch")
INFERENCE_CHUNK = 1600  # folded image-steps per slice without gradients (= training's 25 x 64)


class SigmoidSurrogate(torch.autograd.Function):
    """Heaviside spike forward, derivative of sigmoid(slope * u) backward.

    snntorch 1.0.0's `surrogate.sigmoid` computes exp(-slope*u) / (exp(-slope*u) + 1)^2, which
    is inf/inf = NaN once the membrane is ~8.9/slope below threshold (snntorch issue #427, fixed
    after 1.0.0 by PR #433). Hard-reset LIF neurons with inhibitory input sit there routinely
    (mem -> I / (1 - beta) = 20 I), so this is the stable form s (1 - s), s = sigmoid(slope*u).
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.slope = slope
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (u,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.slope * u)
        return grad_output * ctx.slope * s * (1 - s), None


def sigmoid_surrogate(slope: float = 10.0):
    """Spike function for snntorch neurons (`spike_grad=`), like `surrogate.sigmoid(slope)`."""

    def spike(u: torch.Tensor) -> torch.Tensor:
        return SigmoidSurrogate.apply(u, slope)

    return spike


def run_lif(neuron: snntorch.Leaky, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `neuron` over the leading time axis of `current` (T, B, ...), state passed explicitly.

    Returns (spikes, membrane), both (T, B, ...). snntorch's Leaky spikes when mem > threshold
    and applies the reset at the next step, before the decay: v[t] = beta v[t-1] (1 - s[t-1])
    + I[t] for the "zero" (hard) reset.
    """
    mem = torch.zeros_like(current[0])  # (B, ...) membrane at t = 0
    spikes, mems = [], []
    for step_current in current.unbind(0):
        spike, mem = neuron(step_current, mem)
        spikes.append(spike)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)  # (T, B, ...)


class LIFScan(torch.autograd.Function):
    """The hard-reset LIF recurrence of `run_lif` over all T steps, with its BPTT gradient.

    Same dynamics as snntorch's Leaky(reset_mechanism="zero") with its detached reset:
    v[t] = beta v[t-1] (1 - s[t-1]) + I[t], s[t] = H(v[t] - threshold), and the sigmoid
    surrogate for ds/dv. The snntorch loop costs ~11 kernels and as many autograd nodes per
    step forward and more backward; here only the recurrence itself loops over T (2 kernels per
    step forward, 1 backward) and everything elementwise that does not depend on the previous
    step (spikes, surrogate, dL/ds * surrogate) is one pass over the whole (T, ...) tensor:
    dL/dv[t] = dL/ds[t] surrogate[t] + beta (1 - s[t]) dL/dv[t+1]. tests/test_snn.py checks
    spikes, membranes and gradients against the snntorch neuron.
    """

    @staticmethod
    def forward(ctx, current, beta: float, threshold: float, slope: float):
        # current: (T, B, ...) time first; mems and keeps have its shape, contiguous
        mems = torch.empty(current.shape, dtype=current.dtype, device=current.device)  # v[t]
        keeps = torch.empty_like(mems)  # 1 - s[t]: what survives the reset
        mems[0].copy_(current[0])
        torch.le(mems[0], threshold, out=keeps[0])
        for t in range(1, current.shape[0]):
            torch.addcmul(current[t], mems[t - 1], keeps[t - 1], value=beta, out=mems[t])
            torch.le(mems[t], threshold, out=keeps[t])
        spikes = torch.rsub(keeps, 1)  # s = 1 - keep, exactly H(v - threshold)
        ctx.save_for_backward(mems, keeps)
        ctx.constants = (beta, threshold, slope)
        ctx.set_materialize_grads(False)
        return spikes, mems

    @staticmethod
    def backward(ctx, grad_spikes, grad_mems):
        mems, keeps = ctx.saved_tensors
        beta, threshold, slope = ctx.constants
        if grad_spikes is None and grad_mems is None:
            return None, None, None, None
        grad = torch.zeros_like(mems)
        if grad_spikes is not None:
            # surrogate ds/dv = slope sig (1 - sig), sig = sigmoid(slope (v - thr)), all T at once
            sig = torch.sub(mems, threshold).mul_(slope).sigmoid_()
            surrogate = torch.addcmul(sig, sig, sig, value=-1).mul_(slope)
            grad = surrogate.mul_(grad_spikes)
        if grad_mems is not None:
            grad.add_(grad_mems)
        for t in reversed(range(mems.shape[0] - 1)):  # the only sequential part: BPTT
            grad[t].addcmul_(keeps[t], grad[t + 1], value=beta)
        return grad, None, None, None


def fused_lif(
    neuron: snntorch.Leaky, current: torch.Tensor, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`run_lif` for a hard-reset `neuron` in one LIFScan: (spikes, membrane), (T, B, ...)."""
    beta = float(neuron.beta.clamp(0, 1))
    threshold = float(neuron.threshold)
    return LIFScan.apply(current, beta, threshold, slope)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"Invalid model option {option}={value!r}: choose one of {', '.join(choices)} "
            f"(e.g. --model-option {option}={choices[0]})."
        )


def _check_time_steps(time_steps: int) -> None:
    if not isinstance(time_steps, int) or isinstance(time_steps, bool) or time_steps < 1:
        raise ConfigError(
            f"Invalid model option time_steps={time_steps!r}: it is the number of simulation "
            "steps, a whole number of at least 1 (e.g. --model-option time_steps=25)."
        )


def _lif(beta: float, threshold: float, slope: float) -> snntorch.Leaky:
    return snntorch.Leaky(
        beta=beta,
        threshold=threshold,
        spike_grad=sigmoid_surrogate(slope),
        reset_mechanism="zero",  # hard reset to 0
        init_hidden=False,  # state is passed in and returned, never kept between batches
    )


def pattern_bits(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(65536, 4, 9) 0/1: for each 4x4 binary window (bit 4*dy + dx), each 2x2 pooling phase
    (2*py + px) and each 3x3 tap (3*ky + kx), the input pixel under that tap."""
    codes = torch.arange(1 << 16).view(-1, 1, 1, 1, 1)
    py, px, ky, kx = torch.meshgrid(*(torch.arange(n) for n in (2, 2, 3, 3)), indexing="ij")
    shift = (4 * (py + ky) + px + kx).reshape(1, 4, 9)  # (phase, tap) -> bit of the window
    return ((codes.view(-1, 1, 1) >> shift) & 1).to(dtype)


def binary_conv_pool(spikes: torch.Tensor, conv: nn.Conv2d, bits: torch.Tensor) -> torch.Tensor:
    """maxpool2(conv3x3 pad 1 (spikes)) for binary 1-channel input, as a table lookup.

    Each pooled output sees one 4x4 window of binary pixels, so it takes one of 2^16 values per
    channel: the table holds the conv output of every window at its 4 pooling phases (a
    (2^16 * 4, 9) @ (9, C) product) and their max, and each output is a gather. Pure autograd
    ops: max(dim) sends the gradient to the first maximum as max_pool2d does, and the gather's
    backward sums the output gradient per window pattern, so weight and bias gradients are those
    of Conv2d + MaxPool2d (tests/test_snn.py compares both). Measured on 2 cores for 1600
    folded images: ~60 ms forward + backward, against ~250 ms for oneDNN's 1-input-channel conv
    and max-pool at 28x28.
    (N, 1, 28, 28) 0/1 -> (N, 14, 14, C), channels last.
    """
    n, _, h, w = spikes.shape
    # 16-bit window codes, exact in floating point: (N, 1, 28, 28) -> (N, 1, 14, 14)
    powers = (2.0 ** torch.arange(16, device=spikes.device, dtype=spikes.dtype)).view(1, 1, 4, 4)
    with torch.autocast(spikes.device.type, enabled=False):  # codes up to 65535: not in bf16
        codes = F.conv2d(spikes, powers, padding=1, stride=2)
    # round, not truncate: exact on the CPU, but a cuDNN algorithm (FFT, Winograd) may return
    # 65534.999 for 65535, which .long() alone would turn into the wrong table row
    codes = codes.view(-1).round().long()  # (N*14*14,)
    weight = conv.weight.reshape(conv.out_channels, 9)  # (C, 1, 3, 3) -> (C, 9 taps)
    table = torch.addmm(conv.bias, bits.view(-1, 9), weight.t())  # (2^16 * 4 phases, C)
    pooled = table.view(-1, 4, conv.out_channels).max(1).values  # (2^16, C)
    return pooled.index_select(0, codes).view(n, h // 2, w // 2, conv.out_channels)


# ------------------------------------------------------------------------- study A conv SNN


class SpikingConvNet(nn.Module):
    """conv-pool-LIF x2, Linear-LIF, mean spike count -> Linear.

    `encoding` "rate": each step sees Bernoulli(pixel) spikes of the [0, 1] image (pixels
    outside [0, 1] are clipped); "direct": the pixels themselves, every step (cheaper: conv1 runs
    once). `last_spike_rates` holds the mean firing rate per LIF layer of the latest forward
    (unsynced tensor; read after an evaluation batch).
    """

    layer_names = ("conv1", "conv2", "fc1")

    def __init__(
        self,
        num_classes: int = 10,
        time_steps: int = 25,
        encoding: str = "rate",
        beta: float = math.exp(-1 / 20),  # membrane decay per step: tau = 20 steps
        threshold: float = 1.0,
        slope: float = 10.0,  # surrogate sharpness
        channels: tuple[int, int] = (16, 32),
        hidden: int = 128,
        neuron: str = "fused",
    ):
        super().__init__()
        _check_time_steps(time_steps)
        _check_choice("encoding", encoding, ENCODINGS)
        _check_choice("neuron", neuron, NEURONS)
        self.time_steps = time_steps
        self.encoding = encoding
        self.neuron = neuron
        self.slope = slope
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.lif1, self.lif2, self.lif3 = (_lif(beta, threshold, slope) for _ in range(3))
        self.pool = nn.MaxPool2d(2)
        self.num_features = hidden
        self.head = nn.Linear(hidden, num_classes)
        # the `cnn` init (Kaiming-normal, zero bias): with PyTorch's default init almost no
        # neuron reaches threshold and the readout starts from silence
        for module in (self.conv1, self.conv2, self.fc1, self.head):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
        self.register_buffer("last_spike_rates", torch.zeros(3), persistent=False)
        # conv1 + pool1 of binary input spikes as a lookup (binary_conv_pool): 9.4 MB, rebuilt
        # from the constant bit patterns, never saved
        bits = pattern_bits() if encoding == "rate" else None
        self.register_buffer("pattern_bits", bits, persistent=False)

    def run_lif(
        self, neuron: snntorch.Leaky, current: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, B, ...) currents -> (spikes, membranes), with the configured implementation."""
        # Under bf16 autocast the convs and linears hand over bf16 currents. The membrane sums
        # them over T steps, so it runs in fp32; its 0/1 spikes are exact in bf16 again for
        # the next layer, whose bf16 conv or matmul is where the time goes.
        if current.dtype in (torch.bfloat16, torch.float16):
            current = current.float()
        if self.neuron == "fused":
            return fused_lif(neuron, current, self.slope)
        return run_lif(neuron, current)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (T, B, 1, H, W) input spikes (or currents for "direct")."""
        x = x.clamp(0, 1)
        if self.encoding == "direct":
            return x.unsqueeze(0).expand(self.time_steps, *x.shape)
        # Bernoulli(x) draws: uniform < p (3x faster here than torch.bernoulli on an expand)
        return (torch.rand((self.time_steps, *x.shape), device=x.device) < x).to(x.dtype)

    def spike_trains(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of the three LIF layers, time first: (T, B, 16, 14, 14), (T, B, 32, 7, 7),
        (T, B, 128) (the conv layers' as channels-last views). Each layer runs once on all T
        steps folded into the batch; only the LIF recurrence steps through time."""
        t, b = self.time_steps, x.shape[0]
        if not torch.is_grad_enabled() and t * b > INFERENCE_CHUNK:
            # evaluation batches (1000 images = 25,000 folded steps, 630 MB of conv2 output)
            # run in slices; no gradient, so nothing has to be kept between them
            parts = [self.spike_trains(part) for part in x.split(max(1, INFERENCE_CHUNK // t))]
            return [torch.cat(layer, dim=1) for layer in zip(*parts, strict=True)]
        if self.encoding == "direct":
            # the same input every step: conv1 once, broadcast over time
            pooled = self.pool(self.conv1(x.clamp(0, 1))).permute(0, 2, 3, 1)  # (B, 14, 14, 16)
            current1 = pooled.unsqueeze(0).expand(t, -1, -1, -1, -1)  # (T, B, 14, 14, 16)
        else:
            inputs = self.encode(x).flatten(0, 1)  # (T, B, 1, 28, 28) -> (T*B, 1, 28, 28)
            current1 = binary_conv_pool(inputs, self.conv1, self.pattern_bits)
            current1 = current1.unflatten(0, (t, b))  # (T*B, 14, 14, 16) -> (T, B, 14, 14, 16)
        spikes1, _ = self.run_lif(self.lif1, current1)  # (T, B, 14, 14, 16), channels last
        # (T, B, 14, 14, 16) -> (T*B, 16, 14, 14) logical NCHW, channels-last memory (oneDNN's
        # fast path for conv2, and no copy)
        folded = spikes1.flatten(0, 1).permute(0, 3, 1, 2)
        current2 = self.pool(self.conv2(folded))  # (T*B, 32, 7, 7), channels last
        # (T*B, 32, 7, 7) -> (T*B, 7, 7, 32) as stored -> (T, B, 7, 7, 32)
        current2 = current2.permute(0, 2, 3, 1).unflatten(0, (t, b))
        spikes2, _ = self.run_lif(self.lif2, current2)  # (T, B, 7, 7, 32)
        # fc1 is Linear over the NCHW flatten (c, h, w); the spikes are stored (h, w, c), so
        # permute the 200k weights rather than copy the (T*B, 1568) spikes
        weight = self.fc1.weight.unflatten(1, spikes2.shape[-1:] + spikes2.shape[-3:-1])
        weight = weight.permute(0, 2, 3, 1).flatten(1)  # (128, 32, 7, 7) -> (128, 7*7*32)
        current3 = F.linear(spikes2.flatten(2), weight, self.fc1.bias)  # (T, B, 1568) -> 128
        spikes3, _ = self.run_lif(self.lif3, current3)
        return [spikes1.permute(0, 1, 4, 2, 3), spikes2.permute(0, 1, 4, 2, 3), spikes3]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        spikes = self.spike_trains(x)
        with torch.no_grad():
            self.last_spike_rates.copy_(torch.stack([s.detach().float().mean() for s in spikes]))
        return spikes[-1].mean(0)  # (T, B, 128) -> (B, 128) spike count / T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# ---------------------------------------------------------------- study B single-step SNN


class SingleStepSpikingMLP(nn.Module):
    """Linear(784, 512) -> one leaky-neuron step from rest -> Linear(512, 10).

    One step from v = 0 means v = I: the hidden layer spikes where its current exceeds the
    threshold. The arctan surrogate (snntorch's default) carries the gradient; the "subtract"
    reset never acts within one step but is the study's setting.
    """

    layer_names = ("fc1",)

    def __init__(
        self,
        num_classes: int = 10,
        hidden: int = 512,
        beta: float = 0.9,
        threshold: float = 1.0,
        time_steps: int = 1,
    ):
        super().__init__()
        _check_time_steps(time_steps)
        self.time_steps = time_steps
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.lif1 = snntorch.Leaky(
            beta=beta,
            threshold=threshold,
            spike_grad=surrogate.atan(),
            reset_mechanism="subtract",
            init_hidden=False,
        )
        self.num_features = hidden
        self.head = nn.Linear(hidden, num_classes)
        self.register_buffer("last_spike_rates", torch.zeros(1), persistent=False)

    def spike_trains(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of the hidden layer, time first: [(T, B, 512)]."""
        current = self.fc1(x.flatten(1))  # (B, 1, 28, 28) -> (B, 784) -> (B, 512)
        # pixels as a constant current over `time_steps` steps (1 in the study): (T, B, 512)
        steps = current.unsqueeze(0).expand(self.time_steps, -1, -1)
        spikes, _ = run_lif(self.lif1, steps)
        return [spikes]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        (spikes,) = self.spike_trains(x)
        with torch.no_grad():
            self.last_spike_rates.copy_(spikes.detach().float().mean().reshape(1))
        return spikes.mean(0)  # (T, B, 512) -> (B, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# ----------------------------------------------------------------------------- entrypoints


@register_model(
    family="snn",
    architecture="rate-coded T=25: conv3x3(16)-pool-LIF, conv3x3(32)-pool-LIF, FC 1568-128-LIF, "
    "spike count -> 10",
    recipe=Recipe(
        stages=(cross_entropy(), spike_activity()),  # + firing rates per layer, spike trains
        defaults={"epochs": 3, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "grad_clip": 1.0},
    ),
    tags=("spiking",),
    input_scaling="unit",  # Bernoulli rates need pixels in [0, 1]
)
def snn(
    num_classes: int = 10, time_steps: int = 25, encoding: str = "rate", neuron: str = "fused"
) -> SpikingConvNet:
    return SpikingConvNet(
        num_classes=num_classes, time_steps=time_steps, encoding=encoding, neuron=neuron
    )


@register_model(
    family="snn",
    architecture="FC 784-512, one leaky-neuron step (beta 0.9, arctan surrogate), FC 512-10",
    recipe=Recipe(
        stages=(cross_entropy(), spike_activity()),  # + firing rates per layer, spike trains
        defaults={"epochs": 5, "batch_size": 64, "optimizer": "adam", "lr": 1e-3},
    ),
    tags=("spiking",),
)
def snn_single_step(num_classes: int = 10, time_steps: int = 1) -> SingleStepSpikingMLP:
    return SingleStepSpikingMLP(num_classes=num_classes, time_steps=time_steps)
