"""Plain convolutional networks.

Study A `cnn`: two conv3x3+maxpool stages (16, 32 channels) and a 128-unit hidden layer,
Kaiming-normal init with zero bias; 206,922 parameters, 98.82% after 3 epochs.
Study B `cnn_small`: two unpadded conv3x3+maxpool stages (32, 64 channels) straight into the
classifier, PyTorch's default init; 34,826 parameters (the study's accuracy is not in SPECS.md).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model


class TwoConvNet(nn.Module):
    """conv-ReLU-pool x2, then Linear-ReLU-Linear; `forward_features` is the hidden layer."""

    def __init__(
        self, channels: tuple[int, int] = (16, 32), hidden: int = 128, num_classes: int = 10
    ):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )  # fmt: skip
        self.hidden = nn.Sequential(nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(inplace=True))
        self.num_features = hidden
        self.head = nn.Linear(hidden, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1, 28, 28) -> (B, c2, 7, 7)
        return self.hidden(x.flatten(1))  # (B, c2*49) -> (B, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="cnn",
    architecture="conv3x3(16)-pool, conv3x3(32)-pool, FC 1568-128-10",
    recipe={"epochs": 3, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "grad_clip": 1.0},
)
def cnn(num_classes: int = 10) -> TwoConvNet:
    return TwoConvNet(num_classes=num_classes)


class ConvPoolNet(nn.Module):
    """Unpadded conv-ReLU-pool stages, then one linear classifier on the flattened map."""

    def __init__(self, channels: tuple[int, int] = (32, 64), num_classes: int = 10):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 28 -> 26 -> 13
            nn.Conv2d(c1, c2, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 13 -> 11 -> 5
        )  # fmt: skip
        self.num_features = c2 * 5 * 5
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 1, 28, 28) -> (B, c2, 5, 5) -> (B, c2*25)
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="cnn",
    architecture="conv3x3(32)-pool, conv3x3(64)-pool, no padding, FC 1600-10",
    recipe={"epochs": 5, "batch_size": 64, "optimizer": "adam", "lr": 1e-3},
)
def cnn_small(num_classes: int = 10) -> ConvPoolNet:
    return ConvPoolNet(num_classes=num_classes)
