"""Study E's parameter diet: four bias-free, unpadded CNNs from 194,884 down to 7,904 parameters.

`diet_1` (194,884) and `diet_2` (10,790) share one topology: three 3x3 convs, maxpool, a 1x1
squeeze, two 3x3 convs, a 1x1 squeeze to 10 channels and a 7x7 conv over the whole 7x7 map.
`diet_3` (10,970) adds BatchNorm after each ReLU and one dropout; `diet_4` (7,904) ends in
global average pooling and trains with ±7° rotations and a step LR schedule. Published (SGD
momentum 0.9, batch 64, 15 epochs): about 98.8 / 98.3 / 99.0 / 99.4%.

The final 7x7 valid conv over a 7x7 map (and the 1x1 conv after a 1x1 map) is exactly a
bias-free Linear on the flattened map, so `head` is that Linear: same weights, same arithmetic,
and `forward_features` is the flattened map the classifier reads.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model


def _conv(
    c_in: int, c_out: int, kernel: int = 3, batch_norm: bool = False, relu: bool = True
) -> nn.Sequential:
    """conv (bias-free, unpadded) -> ReLU -> BN: the study puts BN after the activation."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, bias=False)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


class DietNet(nn.Module):
    """diet_1..3: 3x3 x3, pool, 1x1, 3x3 x2, 1x1 -> 10 channels at 7x7, then the 7x7 classifier.

    `widths` = (c1, c2, c3, squeeze, c5, c6); the last 1x1 always squeezes to 10 channels (the
    study's class count, kept as a width so the parameter count holds for any `num_classes`).
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int, int, int],
        batch_norm: bool = False,
        dropout: float = 0.0,
        num_classes: int = 10,
    ):
        super().__init__()
        c1, c2, c3, squeeze, c5, c6 = widths
        bn = batch_norm
        self.features = nn.Sequential(
            _conv(1, c1, batch_norm=bn),  # 28 -> 26
            _conv(c1, c2, batch_norm=bn),  # 26 -> 24
            _conv(c2, c3, batch_norm=bn),  # 24 -> 22
            nn.Dropout(dropout) if dropout else nn.Identity(),  # diet_3: after the 22x22 block
            nn.MaxPool2d(2),  # 22 -> 11
            _conv(c3, squeeze, 1, batch_norm=bn),  # 1x1 squeeze, 11
            _conv(squeeze, c5, batch_norm=bn),  # 11 -> 9
            _conv(c5, c6, batch_norm=bn),  # 9 -> 7
            _conv(c6, 10, 1, batch_norm=bn),  # 1x1 to 10 channels, 7
        )
        self.num_features = 10 * 7 * 7
        # == Conv2d(10, num_classes, 7, bias=False) on the 7x7 map, weights flattened (C, H, W)
        self.head = nn.Linear(self.num_features, num_classes, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 1, 28, 28) -> (B, 10, 7, 7) -> (B, 490), flattened in the conv weight's (C, H, W)
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class DietGAPNet(nn.Module):
    """diet_4: conv-ReLU-BN blocks, a 1x1 transition (ReLU, no BN) and pool, then GAP.

    The study does not publish this layout; this one fits its parameter count and figures.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            _conv(1, 8, batch_norm=True),  # 28 -> 26
            _conv(8, 16, batch_norm=True),  # 26 -> 24
            _conv(16, 10, 1),  # 1x1 transition, no BN (the count of 7,904 leaves none for it)
            nn.MaxPool2d(2),  # 24 -> 12
            _conv(10, 18, batch_norm=True),  # 12 -> 10
            _conv(18, 20, batch_norm=True),  # 10 -> 8
            _conv(20, 8, batch_norm=True),  # 8 -> 6
            nn.AvgPool2d(6),  # global average pool: 6x6 -> 1x1
        )
        self.num_features = 8
        # == Conv2d(8, num_classes, 1, bias=False) on the 1x1 map
        self.head = nn.Linear(self.num_features, num_classes, bias=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (B, 8, 1, 1) -> (B, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# Study E: SGD momentum 0.9, batch 64, 15 epochs; lr 0.01 is SPECS.md's assumption.
_STUDY_E = {"epochs": 15, "batch_size": 64, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}


@register_model(
    family="diet",
    architecture="bias-free convs 32-64-128, pool, 1x1 32, 64-128, 1x1 10, 7x7 conv",
    recipe=_STUDY_E,
)
def diet_1(num_classes: int = 10) -> DietNet:
    return DietNet((32, 64, 128, 32, 64, 128), num_classes=num_classes)


@register_model(
    family="diet",
    architecture="bias-free convs 10-10-20, pool, 1x1 10, 10-20, 1x1 10, 7x7 conv",
    recipe=_STUDY_E,
)
def diet_2(num_classes: int = 10) -> DietNet:
    return DietNet((10, 10, 20, 10, 10, 20), num_classes=num_classes)


@register_model(
    family="diet",
    architecture="diet_2 + BN after each ReLU, dropout 0.1 after the 22x22 block",
    recipe=_STUDY_E,
)
def diet_3(num_classes: int = 10) -> DietNet:
    return DietNet((10, 10, 20, 10, 10, 20), batch_norm=True, dropout=0.1, num_classes=num_classes)


@register_model(
    family="diet",
    architecture="8-16, 1x1 10, pool, 18-20-8 (conv-ReLU-BN), GAP, 1x1 8-10",
    # StepLR(7, 0.1), the schedule study D uses: it keeps SGD's momentum at the study's 0.9
    # (torch's OneCycleLR would cycle it 0.85-0.95) and adds no new hyperparameter.
    recipe={**_STUDY_E, "augment": "rotate7", "scheduler": "step", "step_size": 7, "gamma": 0.1},
)
def diet_4(num_classes: int = 10) -> DietGAPNet:
    return DietGAPNet(num_classes=num_classes)
