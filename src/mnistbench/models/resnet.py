"""Residual networks: study A's MicroResNet for 28x28 inputs, study C's ResNet-18/50.

Study A `microresnet`: a 3x3 stem (16 ch) and three stages of two BasicBlocks (16, 32, 64 ch,
stride 2 at stages 2 and 3, 1x1 conv+BN shortcuts), global average pooling, Linear(64, 10); all
convs bias-free; 174,970 parameters, 99.31% after 5 epochs (He et al. 2016, CIFAR-style ResNet).

Study C `resnet18` / `resnet50`: torchvision's ImageNet ResNets with a 10-class head, grey images
repeated to 3 channels inside the model: 11,181,642 / 23,528,522 parameters (one-channel stem:
11,175,370 / 23,522,250); 1.824 / 4.132 GMACs at 224x224. Best published: 99.33% MNIST
(ResNet-18, SGD 1e-3, 5 epochs at 64x64), 91.54% Fashion-MNIST (ResNet-18, Adam 1e-3).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """A block's residual path: the identity, or a strided 1x1 conv + BN where the block changes
    the shape (one helper for both block types, like timm's downsample_conv)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
    )


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, ReLU after the addition."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem plus stages of BasicBlocks; the first block of every stage after the first strides 2."""

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64),
        blocks_per_stage: int = 2,
        num_classes: int = 10,
        in_channels: int = 1,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        stages = []
        c_in = widths[0]
        for stage_index, width in enumerate(widths):
            for block_index in range(blocks_per_stage):
                stride = 2 if stage_index > 0 and block_index == 0 else 1
                stages.append(BasicBlock(c_in, width, stride))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_in
        self.head = nn.Linear(c_in, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, 1, 28, 28) -> (B, 64, 7, 7)
        return self.pool(x).flatten(1)  # (B, 64, 7, 7) -> (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="resnet",
    architecture="MicroResNet: stem 16, 3 stages x 2 BasicBlocks (16/32/64), GAP, FC 64-10",
    recipe={"epochs": 5, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "grad_clip": 1.0},
)
def microresnet(num_classes: int = 10) -> SmallResNet:
    return SmallResNet(widths=(16, 32, 64), blocks_per_stage=2, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------
# ImageNet-style ResNet-18/50 (study C): torchvision's architecture, written out here because
# torchvision is not a dependency.
# ---------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, as torchvision's "ResNet v1.5"), 1x1 expand x4."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ImageNetResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 stem, 3x3/2 max pool, four stages (64-512 wide), GAP, FC.

    Kept in NCHW on the CPU (engine.place_model reads `channels_last_cpu`): a channels-last
    ResNet-18 training step at 64x64, batch 16, took 2.08 s against 0.25 s in NCHW on the
    2-core dev machine (benchmarks/zoo_large.py, since replaced by suites; see git history);
    CUDA still gets channels-last.

    `in_channels=3` is the study's setting: the grey image is repeated to three channels inside
    the model (the data stays one channel), so the stem and the parameter count are the
    ImageNet ones. `in_channels=1` gives a one-channel stem (6,272 fewer parameters, a third of
    the stem's work). Any input side works: 28 -> 1x1, 64 -> 2x2, 224 -> 7x7 after stage 4.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
    ):
        super().__init__()
        self.channels_last_cpu = False
        if in_channels not in (1, 3):
            # Imported here: model files otherwise need nothing from the rest of the package.
            from mnistbench.errors import ConfigError

            raise ConfigError(
                f"Invalid model option in_channels={in_channels}: use 3 (the study's setting, "
                "grey repeated to RGB inside the model) or 1 (a one-channel stem)."
            )
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        expansion = getattr(block, "expansion", 1)
        stages = []
        c_in = 64
        widths = (64, 128, 256, 512)
        for stage_index, (width, blocks) in enumerate(zip(widths, layers, strict=True)):
            for block_index in range(blocks):
                stride = 2 if stage_index > 0 and block_index == 0 else 1
                stages.append(block(c_in, width, stride))
                c_in = width * expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_in
        self.head = nn.Linear(c_in, num_classes)
        # torchvision's initialisation (its zero_init_residual is off by default, so here too).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W): a view, no copy
        x = self.stages(self.stem(x))  # (B, 3, 64, 64) -> (B, C, 2, 2); C = 512 or 2048
        return self.pool(x).flatten(1)  # (B, C, 2, 2) -> (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# Study C (code not public; reconstructed from its parameter and FLOP figures): batch 16, AMP,
# images resized to 64x64, SGD momentum 0.9 lr 1e-3 was its best MNIST setting. AMP comes from
# make_config's device default (bf16 on CUDA); on CPUs without native bf16 it costs time.
STUDY_C_RECIPE = {
    "epochs": 5,
    "batch_size": 16,
    "optimizer": "sgd",
    "lr": 1e-3,
    "momentum": 0.9,
    "image_size": 64,
}


@register_model(
    family="resnet",
    architecture="ResNet-18 (torchvision layout, BasicBlocks 2-2-2-2), grey repeated to RGB, "
    "FC 512-10",
    recipe=STUDY_C_RECIPE,
    input_shape=(1, 28, 28),  # one grey channel; the model repeats it (in_channels=3)
)
def resnet18(num_classes: int = 10, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


@register_model(
    family="resnet",
    architecture="ResNet-50 (torchvision layout, Bottlenecks 3-4-6-3), grey repeated to RGB, "
    "FC 2048-10",
    recipe=STUDY_C_RECIPE,
    # Study C publishes only its best run per data set (a ResNet-18), so no accuracy to hold
    # ResNet-50 to; its parameter count and MACs are still the study's.
    input_shape=(1, 28, 28),
)
def resnet50(num_classes: int = 10, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)
