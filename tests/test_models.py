"""Every registered model, tested the moment it is registered (timm-style, over the registry)."""

from __future__ import annotations

import pytest
import torch

from mnistbench.engine.size import flops_per_sample
from mnistbench.errors import ConfigError
from mnistbench.models import create_model, get_model_info, list_models
from mnistbench.studies import published_figures

MODEL_NAMES = [info.name for info in list_models()]


def _batch(name: str, batch_size: int = 4) -> torch.Tensor:
    return torch.randn(batch_size, *get_model_info(name).input_shape)


def _model(name: str, num_classes: int = 10) -> torch.nn.Module:
    """A fresh model; scikit-learn ones (tag "sklearn") have no forward pass until fitted, so
    they are fitted on a tiny random set first (tests/test_svm.py tests the fitting itself)."""
    model = create_model(name, num_classes=num_classes)
    if "sklearn" in get_model_info(name).tags:
        generator = torch.Generator().manual_seed(0)
        labels = torch.arange(5 * num_classes) % num_classes
        images = torch.rand(len(labels), *get_model_info(name).input_shape, generator=generator)
        model.fit_estimator(images, labels)
    return model


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape_and_finite(name: str) -> None:
    torch.manual_seed(0)
    logits = _model(name)(_batch(name))
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_other_class_counts(name: str) -> None:
    assert _model(name, num_classes=3)(_batch(name)).shape == (4, 3)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_matches_published(name: str) -> None:
    """Against the count a study states; "spec count" figures were counted from the study's
    architecture, so for those this checks the build against the spec, not against itself."""
    info = get_model_info(name)
    model = create_model(name)
    params = sum(p.numel() for p in model.parameters())
    if "pretrain" in info.tags:  # published counts of pretrained families exclude the probe head
        params -= sum(p.numel() for p in model.head.parameters())
    counts = {f.params for f in published_figures(name) if f.params is not None}
    if not counts:
        pytest.skip(f"{name} has no published parameter count")
    assert counts == {params}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    info = get_model_info(name)
    if "no_autograd" in info.tags:
        pytest.skip(f"{name} is trained without autograd")
    if "pretrain" in info.tags:
        pytest.skip(f"{name}'s pretext objective trains it (tests/test_objectives.py checks that)")
    model = create_model(name)
    model.train()
    model(_batch(name)).logsumexp(dim=1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_features_width(name: str) -> None:
    model = _model(name).eval()
    features = model.forward_features(_batch(name))
    assert features.shape == (4, model.num_features)
    assert model.head.in_features == model.num_features


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_output(name: str) -> None:
    x = _batch(name)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        outputs.append(_model(name).eval()(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_registration_metadata(name: str) -> None:
    info = get_model_info(name)
    assert info.family and info.architecture
    assert info.recipe.defaults.get("epochs", 1) >= 1
    for figure in published_figures(name):
        assert 0.5 < (figure.test_accuracy or 0.99) < 1


def test_study_a_models_carry_their_figures() -> None:
    expected = {
        "mlp": (535_818, 0.9781),
        "cnn": (206_922, 0.9882),
        "microresnet": (174_970, 0.9931),
    }
    for name, (params, accuracy) in expected.items():
        (figure,) = published_figures(name)
        assert (figure.params, figure.test_accuracy, figure.study) == (params, accuracy, "A")


def test_unknown_model_names_closest_matches() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean.*microresnet"):
        get_model_info("micro_resnet")


def test_vit_flops_count_every_matmul_and_the_attention() -> None:
    """The counter must see through the fused eval-mode encoder and the CPU attention kernel,
    which torch 2.13 counts as zero; this is the ViT's count done by hand, per image."""
    tokens, dim, heads, ff, layers = 50, 128, 4, 256, 4
    per_layer_macs = (
        tokens * dim * 3 * dim  # Q, K, V projections
        + 2 * heads * tokens * tokens * (dim // heads)  # scores and scores @ V
        + tokens * dim * dim  # output projection
        + 2 * tokens * dim * ff  # feed-forward up and down
    )
    macs = 128 * 16 * 49 + layers * per_layer_macs + 128 * 10  # patch conv, encoder, head
    fastpath_before = torch.backends.mha.get_fastpath_enabled()
    assert flops_per_sample(create_model("vit"), (1, 28, 28), "cpu") == 2 * macs
    assert torch.backends.mha.get_fastpath_enabled() == fastpath_before


@pytest.mark.parametrize("name, gates", [("rnn_rows", 1), ("gru_rows", 3), ("lstm_rows", 4)])
def test_row_rnn_flops_count_every_time_step(name: str, gates: int) -> None:
    """nn.LSTM runs one fused oneDNN kernel in inference, which torch 2.13 counts as zero."""
    steps, row, hidden = 28, 28, 128
    macs = steps * gates * hidden * (row + hidden) + hidden * 10  # recurrence, then the head
    assert flops_per_sample(create_model(name), (1, 28, 28), "cpu") == 2 * macs
