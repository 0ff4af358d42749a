"""Spiking models: LIF dynamics by hand, the surrogate gradient, the time-folded network, and
the spiking recipe (training, then spike activity) end to end on a tiny data set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mnistbench.errors import ConfigError
from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model
from mnistbench.models.snn import (
    SigmoidSurrogate,
    _lif,
    binary_conv_pool,
    fused_lif,
    pattern_bits,
    run_lif,
)
from mnistbench.report.raster import spike_raster_png
from mnistbench.store import Store


def test_lif_membrane_trajectory_with_hard_reset() -> None:
    # beta 0.5, constant current 0.6: v = 0.6, 0.9, 1.05 (> 1: spike), then reset to 0 before
    # the next decay: 0 * 0.5 + 0.6 = 0.6, 0.9, 1.05 (spike) again
    neuron = _lif(beta=0.5, threshold=1.0, slope=10.0)
    current = torch.full((6, 1), 0.6)  # (T, B=1)
    spikes, mem = run_lif(neuron, current)
    torch.testing.assert_close(mem[:, 0], torch.tensor([0.6, 0.9, 1.05, 0.6, 0.9, 1.05]))
    assert spikes[:, 0].tolist() == [0, 0, 1, 0, 0, 1]


def test_fused_scan_matches_the_snntorch_neuron_and_its_gradients() -> None:
    torch.manual_seed(0)
    neuron = _lif(beta=math.exp(-1 / 20), threshold=1.0, slope=10.0)
    # (T, B, C, H, W) currents, strong enough to spike and to drive membranes far below 0
    current = (torch.randn(12, 3, 4, 5, 5, dtype=torch.float64) * 0.8).requires_grad_()
    weights = torch.randn_like(current), torch.randn_like(current)
    results = []
    for run in (run_lif, lambda n, c: fused_lif(n, c, 10.0)):
        spikes, mem = run(neuron, current)
        ((spikes * weights[0]).sum() + (mem * weights[1]).sum()).backward()
        results.append((spikes.detach(), mem.detach(), current.grad.clone()))
        current.grad = None
    (s_ref, m_ref, g_ref), (s_fused, m_fused, g_fused) = results
    assert 0 < s_ref.mean() < 0.5 and m_ref.min() < -1
    assert torch.equal(s_fused, s_ref)
    torch.testing.assert_close(m_fused, m_ref)
    torch.testing.assert_close(g_fused, g_ref)


def test_snn_neuron_option_gives_the_same_network() -> None:
    x = torch.rand(2, 1, 28, 28)
    outputs = []
    for neuron in ("fused", "snntorch"):
        torch.manual_seed(0)
        model = create_model("snn", time_steps=3, neuron=neuron)
        torch.manual_seed(1)
        outputs.append(model(x))
    torch.testing.assert_close(outputs[0], outputs[1])


def test_inference_in_slices_equals_one_pass() -> None:
    torch.manual_seed(0)
    model = create_model("snn", time_steps=2, encoding="direct").eval()
    x = torch.rand(900, 1, 28, 28)  # 1800 folded steps > INFERENCE_CHUNK
    with torch.no_grad():
        sliced = model(x)
    torch.testing.assert_close(sliced, model(x))  # grad enabled: one pass


def test_lif_first_spike_time_with_study_beta() -> None:
    # v_t = I (1 - beta^t) / (1 - beta) with beta = exp(-1/20), I = 0.1 first exceeds 1 at
    # t = ceil(20 ln(1 / (1 - 10 (1 - beta)))) = 14
    beta = math.exp(-1 / 20)
    first = math.ceil(20 * math.log(1 / (1 - 10 * (1 - beta))))
    assert first == 14
    spikes, mem = run_lif(_lif(beta, 1.0, 10.0), torch.full((20, 1), 0.1))
    assert spikes[:, 0].nonzero().flatten().tolist()[0] == first - 1  # 0-based step index
    expected = 0.1 * (1 - beta ** torch.arange(1, first + 1)) / (1 - beta)
    torch.testing.assert_close(mem[:first, 0], expected.float())


def test_surrogate_is_heaviside_forward_and_sigmoid_derivative_backward() -> None:
    u = torch.tensor([-100.0, -9.0, -0.5, 0.0, 0.3, 50.0], requires_grad=True)
    spikes = SigmoidSurrogate.apply(u, 10.0)
    assert spikes.tolist() == [0, 0, 0, 0, 1, 1]
    spikes.sum().backward()
    reference = torch.tensor([-100.0, -9.0, -0.5, 0.0, 0.3, 50.0], requires_grad=True)
    torch.sigmoid(10 * reference).sum().backward()
    torch.testing.assert_close(u.grad, reference.grad)
    assert u.grad[3] == pytest.approx(2.5)  # slope / 4 at the threshold
    assert torch.isfinite(u.grad).all()  # snntorch 1.0.0's form is NaN below -8.9 / slope


def test_snn_shapes_and_readout() -> None:
    torch.manual_seed(0)
    model = create_model("snn", time_steps=5)
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    trains = model.spike_trains(x)
    assert [tuple(s.shape) for s in trains] == [(5, 3, 16, 14, 14), (5, 3, 32, 7, 7), (5, 3, 128)]
    assert all(set(s.unique().tolist()) <= {0.0, 1.0} for s in trains)
    features = model.forward_features(x)
    assert features.shape == (3, 128)
    counts = features * 5  # mean spike count over T = 5 steps: multiples of 1/5
    torch.testing.assert_close(counts, counts.round())
    assert model.last_spike_rates.shape == (3,) and (model.last_spike_rates > 0).all()


def test_time_folded_network_equals_the_step_by_step_loop() -> None:
    torch.manual_seed(0)
    model = create_model("snn", time_steps=4).double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    torch.manual_seed(1)
    folded = model.spike_trains(x)
    torch.manual_seed(1)
    inputs = model.encode(x)  # the same Bernoulli draws the folded pass made
    mems = [torch.zeros_like(s[0]) for s in folded]
    for t in range(4):  # the snntorch-tutorial loop: every layer once per time step
        spike, mems[0] = model.lif1(model.pool(model.conv1(inputs[t])), mems[0])
        torch.testing.assert_close(spike, folded[0][t])
        spike, mems[1] = model.lif2(model.pool(model.conv2(spike)), mems[1])
        torch.testing.assert_close(spike, folded[1][t])
        spike, mems[2] = model.lif3(model.fc1(spike.flatten(1)), mems[2])
        torch.testing.assert_close(spike, folded[2][t])


def test_binary_conv_pool_equals_conv_and_maxpool_with_gradients() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 16, 3, padding=1).double()
    # sparse 0/1 input, like the rate-coded digits (ties in the pool happen only between
    # identical 3x3 patches, so which maximum takes the gradient does not change it)
    spikes = (torch.rand(6, 1, 28, 28) < 0.15).double()
    upstream = torch.randn(6, 16, 14, 14, dtype=torch.float64)
    reference = F.max_pool2d(conv(spikes), 2)
    (reference * upstream).sum().backward()
    expected = [conv.weight.grad.clone(), conv.bias.grad.clone()]
    conv.zero_grad()
    table = binary_conv_pool(spikes, conv, pattern_bits(torch.float64))  # (6, 14, 14, 16)
    torch.testing.assert_close(table.permute(0, 3, 1, 2), reference)
    (table.permute(0, 3, 1, 2) * upstream).sum().backward()
    torch.testing.assert_close(conv.weight.grad, expected[0])
    torch.testing.assert_close(conv.bias.grad, expected[1])


def _step_by_step_logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The snntorch-tutorial network: nn layers and snntorch.Leaky once per time step."""
    mems = [None, None, None]
    count = 0
    for step in inputs:  # (T, B, 1, 28, 28): one (B, 1, 28, 28) time step at a time
        currents = (
            lambda s: model.pool(model.conv1(s)),
            lambda s: model.pool(model.conv2(s)),
            lambda s: model.fc1(s.flatten(1)),  # (B, 32, 7, 7) -> (B, 1568)
        )
        spike = step
        for i, (current, neuron) in enumerate(
            zip(currents, (model.lif1, model.lif2, model.lif3), strict=True)
        ):
            value = current(spike)
            mems[i] = torch.zeros_like(value) if mems[i] is None else mems[i]
            spike, mems[i] = neuron(value, mems[i])
        count = count + spike
    return model.head(count / inputs.shape[0])


def test_time_folded_gradients_equal_the_step_by_step_loop() -> None:
    # the speed-ups (time folded into the batch, conv1 + pool1 as a table, fused LIF scan,
    # channels-last spikes, permuted fc1 weight) must give the tutorial loop's logits and
    # parameter gradients for the same input spikes
    torch.manual_seed(0)
    model = create_model("snn", time_steps=6).double()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    labels = torch.tensor([1, 7, 3])
    grads = []
    for forward in (model, lambda images: _step_by_step_logits(model, model.encode(images))):
        torch.manual_seed(1)  # the same Bernoulli draws both times
        logits = forward(x)
        F.cross_entropy(logits, labels).backward()
        grads.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
        model.zero_grad()
    (folded, folded_grads), (loop, loop_grads) = grads
    torch.testing.assert_close(folded, loop)
    assert all(g.abs().sum() > 0 for g in loop_grads.values())
    for name, grad in loop_grads.items():
        torch.testing.assert_close(folded_grads[name], grad, msg=name)


def test_gradient_reaches_the_first_layer_through_time() -> None:
    torch.manual_seed(0)
    model = create_model("snn", time_steps=3)
    F.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.arange(4)).backward()
    assert model.conv1.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_direct_encoding_runs_conv1_once() -> None:
    torch.manual_seed(0)
    model = create_model("snn", time_steps=3, encoding="direct")
    calls = []
    model.conv1.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    model(torch.rand(2, 1, 28, 28))
    assert calls == [2]


@pytest.mark.parametrize(
    ("options", "text"),
    [({"time_steps": 0}, "time_steps"), ({"encoding": "poisson"}, "encoding")],
)
def test_bad_options_are_config_errors(options: dict, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        create_model("snn", **options)


def test_single_step_snn_spikes_where_current_exceeds_threshold() -> None:
    torch.manual_seed(0)
    model = create_model("snn_single_step")
    x = torch.randn(5, 1, 28, 28)
    current = model.fc1(x.flatten(1))
    torch.testing.assert_close(model.forward_features(x), (current > 1).float())


def test_spiking_recipe_records_rates_and_spike_trains(tmp_path: Path, learnable_data_dir) -> None:
    config = make_config(
        "snn", epochs=1, val_size=100, subset=300, model_options=(("time_steps", 2),)
    )
    with Store(tmp_path / "results.sqlite") as store:
        record = run_config(config, store, data_dir=learnable_data_dir, progress=False).record
        assert record.status == "finished"
        metrics = record.metrics
        for layer in ("conv1", "conv2", "fc1"):
            assert 0 <= metrics[f"spike_rate_{layer}"] <= 1
        assert metrics["spike_time_steps"] == 2
        assert [e["epoch"] for e in store.epochs(record.run_id)] == [1]
        (raster,) = [a for a in store.artefacts(record.run_id) if a.name == "spike_raster"]
        # stored as data (training never draws); report/raster.py draws it
        assert raster.kind == "spike_trains"
        trains = json.loads(raster.content)
        assert [layer["name"] for layer in trains["layers"]] == ["conv1", "conv2", "fc1"]
        assert all(layer["steps"] == 2 and len(layer["rate"]) == 2 for layer in trains["layers"])
        rates = [metrics[f"spike_rate_{layer['name']}"] for layer in trains["layers"]]
        assert all(0 <= r <= 1 for r in rates) and len(trains["image"]) == 28
        assert spike_raster_png(raster.content).startswith(b"\x89PNG")


def test_bf16_autocast_keeps_membranes_in_fp32_and_the_spikes_nearly_unchanged() -> None:
    torch.manual_seed(0)
    model = create_model("snn", time_steps=4).eval()
    x = torch.rand(8, 1, 28, 28)
    runs = []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(1)  # the same Bernoulli input spikes
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            runs.append(model.spike_trains(x))
    for fp32_spikes, bf16_spikes in zip(*runs, strict=True):
        assert bf16_spikes.dtype == torch.float32  # the LIF ran in fp32
        rate_fp32, rate_bf16 = fp32_spikes.mean(), bf16_spikes.mean()
        assert rate_fp32 > 0.05 and abs(rate_bf16 - rate_fp32) < 0.1 * rate_fp32
    # bf16 rounds conv1's currents (~0.4%): only neurons right at threshold flip. Deeper
    # layers flip more, as any change of input spikes carries through the recurrence.
    assert (runs[0][0] != runs[1][0]).float().mean() < 0.01
