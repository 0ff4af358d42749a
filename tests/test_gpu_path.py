"""The CUDA path without a GPU: torch.cuda's queries are mocked, so these check what the code
decides and records (TF32, native bf16, determinism, compile shapes, compiled latency), never
that a GPU computes it."""

from __future__ import annotations

import pytest
import torch

from mnistbench.data.device import Split
from mnistbench.engine import device as engine_device
from mnistbench.engine import environment, peaks
from mnistbench.engine.compile import batch_input_shape
from mnistbench.engine.device import default_precision
from mnistbench.engine.measure import latency_form
from mnistbench.errors import ConfigError
from mnistbench.experiments.configure import make_config
from mnistbench.models import create_model


@pytest.fixture(autouse=True)
def restore_cuda_flags():
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA device as torch.cuda's queries describe it: a pre-Ampere card (capability 7.5)
    whose bf16 is emulated unless a test says otherwise."""
    native = {"value": False}

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return True if including_emulation else native["value"]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (7, 5))
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(environment, "nvidia_driver_version", lambda: "580.1")
    return native


def test_emulated_bf16_is_not_native_so_fp32_stays_the_default(fake_cuda) -> None:
    assert torch.cuda.is_bf16_supported()  # what the old check read: True on a T4 too
    assert engine_device.cuda_native_bf16() is False
    assert default_precision("cuda") == "fp32"
    fake_cuda["value"] = True  # an Ampere-or-later card
    assert engine_device.cuda_native_bf16() is True
    assert default_precision("cuda") == "bf16"


def test_without_the_emulation_argument_the_capability_decides(fake_cuda, monkeypatch) -> None:
    def old_signature() -> bool:
        return True

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", old_signature)
    assert engine_device.cuda_native_bf16() is False  # capability 7.5
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (8, 0))
    assert engine_device.cuda_native_bf16() is True


@pytest.mark.parametrize(("setting", "expected"), [("on", True), ("off", False)])
def test_tf32_is_controlled_and_recorded(fake_cuda, monkeypatch, setting, expected) -> None:
    torch.set_float32_matmul_precision("highest")
    monkeypatch.setenv(engine_device.TF32_ENV, setting)
    env = environment.cuda_environment("cuda")
    assert env["tf32_setting"] == setting
    assert env["cuda_matmul_allow_tf32"] is expected and env["cudnn_allow_tf32"] is expected
    assert env["fp32_uses_tf32"] is expected
    # the peak an "fp32" run is held against follows the same flags
    assert peaks.precision_key("cuda", "fp32") == ("tf32" if expected else "fp32")
    assert env["cuda_capability"] == "7.5" and env["gpu_count"] == 2


def test_default_tf32_leaves_pytorchs_choice_and_says_fp32_is_partly_tf32(
    fake_cuda, monkeypatch
) -> None:
    monkeypatch.delenv(engine_device.TF32_ENV, raising=False)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    env = environment.cuda_environment("cuda")
    assert env["tf32_setting"] == "default" and env["cuda_matmul_allow_tf32"] is False
    assert env["fp32_uses_tf32"] is True  # cuDNN convolutions run in TF32


def test_a_bad_tf32_value_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setenv(engine_device.TF32_ENV, "maybe")
    with pytest.raises(ConfigError, match="MNISTBENCH_TF32"):
        engine_device.apply_tf32("cuda")
    assert engine_device.apply_tf32("cpu") == {}  # nothing to apply off CUDA


def test_cuda_runs_are_recorded_as_not_bit_reproducible_unless_deterministic(
    fake_cuda, monkeypatch
) -> None:
    assert environment.cuda_environment("cuda")["bit_reproducible"] is False
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert environment.cuda_environment("cuda")["bit_reproducible"] is True


def test_compile_warms_up_at_the_size_batches_are_resized_to() -> None:
    images = torch.zeros(4, 1, 28, 28)
    labels = torch.zeros(4, dtype=torch.long)
    assert batch_input_shape(Split(images, labels)) == (1, 28, 28)
    assert batch_input_shape(Split(images, labels, resize_to=224)) == (1, 224, 224)


def test_latency_is_measured_on_the_compiled_model_when_the_run_compiled() -> None:
    model = create_model("speedrun_tiny")
    plain = make_config("speedrun_tiny", epochs=1)
    assert latency_form(model, plain) is model
    compiled = latency_form(model, make_config("speedrun_tiny", epochs=1, compile=True))
    assert compiled is not model and getattr(compiled, "_orig_mod", None) is model


def test_a_cuda_peak_applies_whatever_the_torch_thread_count(fake_cuda, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    before = torch.get_num_threads()
    identity = peaks.machine_identity("cuda")
    peaks.save_peaks(
        peaks.Peaks(
            device="cuda",
            fingerprint=peaks.fingerprint(identity),
            machine=identity,
            matmul_flops_per_s={"bf16": 7.7e14},
            conv_flops_per_s={"bf16": 6.5e13},
        )
    )
    try:
        torch.set_num_threads(1)  # a pool worker's thread count
        assert peaks.load_peaks("cuda").peak_for("bf16") == 7.7e14
        assert peaks.load_peaks("cpu") is None  # a CPU peak still depends on threads
    finally:
        torch.set_num_threads(before)
