"""Study C's ResNet-18/50: torchvision's parameter counts and thop's MAC figures at 224x224.

Built on the meta device (shapes only, no memory, no arithmetic), so ResNet-50 at 224x224 is
counted in well under a second.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnistbench.engine.size import flops_per_sample
from mnistbench.errors import ConfigError
from mnistbench.models import create_model

# (model, in_channels) -> parameters; 3 channels = torchvision's resnet18/50 with a 10-class FC
PARAMS = {
    ("resnet18", 3): 11_181_642,
    ("resnet50", 3): 23_528_522,
    ("resnet18", 1): 11_175_370,
    ("resnet50", 1): 23_522_250,
}
PUBLISHED_MACS_224 = {"resnet18": 1.824e9, "resnet50": 4.132e9}  # study C, thop's count


def _meta_model(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **options)


@pytest.mark.parametrize(("name", "in_channels"), list(PARAMS))
def test_parameter_counts(name: str, in_channels: int) -> None:
    model = _meta_model(name, in_channels=in_channels)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name, in_channels]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_macs_at_224_match_the_study(name: str) -> None:
    model = _meta_model(name)  # in_channels=3, the study's setting
    bn_outputs: dict[nn.Module, int] = {}  # per image: the counter runs batches of 1 and 2
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_hook(lambda m, i, out: bn_outputs.update({m: out[0].numel()}))
    # a 3-channel image: the study's count is of its RGB stem (a grey image takes the summed
    # 1-channel stem, a third of the stem's work: test_the_grey_stem_is_the_rgb_stem)
    macs = flops_per_sample(model, (3, 224, 224), "meta") / 2  # conv + linear MACs
    published = PUBLISHED_MACS_224[name]
    # torch's counter takes convolutions and matmuls only: 1.814 G / 4.087 G, within 1.1%.
    assert macs == pytest.approx(published, rel=0.011)
    # thop also charges every BatchNorm output element 4 ops (normalise 2, affine 2); with that
    # the published figures come out to all four digits, which pins the architecture down.
    assert round((macs + 4 * sum(bn_outputs.values())) / 1e6) == pytest.approx(
        published / 1e6, abs=0.5
    )


def test_grey_is_replicated_inside_the_model() -> None:
    """A 3-channel stem on a repeated grey image = a 1-channel stem with the summed weights."""
    torch.manual_seed(0)
    rgb = create_model("resnet18").eval()
    grey = create_model("resnet18", in_channels=1).eval()
    state = rgb.state_dict()
    state["stem.0.weight"] = state["stem.0.weight"].sum(dim=1, keepdim=True)
    grey.load_state_dict(state)
    x = torch.randn(2, 1, 32, 32)  # the data stays one channel
    torch.testing.assert_close(grey(x), rgb(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rgb(x.expand(-1, 3, -1, -1)), rgb(x))


@pytest.mark.parametrize(("side", "grid"), [(28, 1), (64, 2), (224, 7)])
def test_input_sizes_of_the_study(side: int, grid: int) -> None:
    model = _meta_model("resnet50")
    stage4 = model.stages(
        model.stem(torch.zeros(2, 1, side, side, device="meta").expand(-1, 3, -1, -1))
    )
    assert stage4.shape == (2, 2048, grid, grid)
    assert model(torch.zeros(2, 1, side, side, device="meta")).shape == (2, 10)


def test_the_grey_stem_is_the_rgb_stem_on_a_repeated_image() -> None:
    """Forward and weight gradient of the summed 1-channel stem match the 3-channel stem on
    the repeated image (models/resnet.py `_grey_stem`), and its arithmetic is a third."""
    torch.manual_seed(0)
    # eval mode: batch norm is then affine, so rounding differences are not amplified through
    # 20 layers of batch statistics (in train mode the two weight gradients agree to 0.4% of
    # their norm, as two fp32 summation orders do there)
    grey_path, rgb_path = create_model("resnet18").eval(), create_model("resnet18").eval()
    rgb_path.load_state_dict(grey_path.state_dict())
    x = torch.randn(4, 1, 64, 64)
    out = grey_path(x)
    reference = rgb_path.head(rgb_path.pool(rgb_path.stages(
        rgb_path.stem(x.expand(-1, 3, -1, -1)))).flatten(1))  # fmt: skip
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
    out.square().sum().backward()
    reference.square().sum().backward()
    grad, expected = grey_path.stem[0].weight.grad, rgb_path.stem[0].weight.grad
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(grad[:, 0], grad[:, 1]) and torch.equal(grad[:, 1], grad[:, 2])
    model = _meta_model("resnet18")
    saved = flops_per_sample(model, (3, 64, 64), "meta") - flops_per_sample(
        model, (1, 64, 64), "meta"
    )
    # by hand: 64 filters x 32 x 32 outputs x 7 x 7 taps x 2 FLOPs, for 2 of the 3 channels
    assert saved == 64 * 32 * 32 * 49 * 2 * 2


def test_bad_channel_option() -> None:
    with pytest.raises(ConfigError, match="in_channels=2"):
        create_model("resnet18", in_channels=2)


def test_kept_nchw_on_the_cpu() -> None:
    """Channels-last measured 8x slower for these on the CPU (models/resnet.py)."""
    from mnistbench.engine.device import place_model

    model = place_model(create_model("resnet18", in_channels=1), "cpu")
    weight = model.stages[0].conv1.weight  # (64, 64, 3, 3)
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
