"""Residual networks for 28x28 inputs.

Study A `microresnet`: a 3x3 stem (16 ch) and three stages of two BasicBlocks (16, 32, 64 ch,
stride 2 at stages 2 and 3, 1x1 conv+BN shortcuts), global average pooling, Linear(64, 10); all
convs bias-free; 174,970 parameters, 99.31% after 5 epochs (He et al. 2016, CIFAR-style ResNet).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import Published, register_model


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, ReLU after the addition."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

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
    published=Published(
        study="A",
        test_accuracy=0.9931,
        params=174_970,
        time_per_epoch_s=21.0,
        device="cuda",
        epochs=5,
    ),
)
def microresnet(num_classes: int = 10) -> SmallResNet:
    return SmallResNet(widths=(16, 32, 64), blocks_per_stage=2, num_classes=num_classes)
