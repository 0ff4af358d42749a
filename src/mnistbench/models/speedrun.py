"""Models of the speed and efficiency records (`mnistbench speedrun`, docs/speedrun.md).

- `speedrun_fast_*`: airbench-style small BN convnets for the time track (conv-BN-ReLU-pool
  stages, widths doubling, one linear head); the recipes live in `mnistbench.speedrun`.
- `speedrun_tiny`: a <= 5,000-parameter BN convnet for the parameter track (four bias-free
  3x3 convs, global average pooling), 4,806 parameters.
- `speedrun_lean`: the time track's MNIST 99% net since issue 29: the shape of the best public
  speed recipe (tuomaso/train_mnist_fast: unpadded conv5x5, pool, conv3x3, pool, two linear
  layers; benchmarks/public_mnist_fast.py) made leaner, with BN after each pool.
- `examples_cnn`: the pytorch/examples MNIST network (conv 1->32, 32->64, maxpool, dropout,
  fc 9216->128->10; 1,199,882 parameters), the reference row every record is compared with.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model


def conv_bn_relu(c_in: int, c_out: int, padding: int = 1) -> list[nn.Module]:
    """Bias-free 3x3 conv (the BN shift replaces the bias), BN, ReLU."""
    return [
        nn.Conv2d(c_in, c_out, 3, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SpeedNet(nn.Module):
    """Three conv-BN-ReLU stages, 28 -> 14 -> 7 -> 3, then Linear(c3 * 9, classes).

    The stem is conv3x3 + maxpool, or (`stem_stride=2`) one conv5x5 with stride 2, which does
    the 28 -> 14 step at a quarter of the stem's full-resolution memory traffic. `extra` adds
    a second conv (same width) to stages 2 and 3, for the higher targets.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (16, 32, 64),
        extra: bool = False,
        stem_stride: int = 1,
        num_classes: int = 10,
    ):
        super().__init__()
        c1, c2, c3 = widths
        if stem_stride == 2:
            stem = [nn.Conv2d(1, c1, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c1),
                    nn.ReLU(inplace=True)]  # fmt: skip
        else:
            stem = [*conv_bn_relu(1, c1), nn.MaxPool2d(2)]
        layers: list[nn.Module] = stem  # 28 -> 14
        layers += conv_bn_relu(c1, c2) + (conv_bn_relu(c2, c2) if extra else [])
        layers.append(nn.MaxPool2d(2))  # 14 -> 7
        layers += conv_bn_relu(c2, c3) + (conv_bn_relu(c3, c3) if extra else [])
        layers.append(nn.MaxPool2d(2))  # 7 -> 3 (floor)
        self.features = nn.Sequential(*layers)
        self.num_features = c3 * 9
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (B, c3, 3, 3) -> (B, c3 * 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class TinyNet(nn.Module):
    """1->8->10 (28 -> 26 -> 24), maxpool (12), 10->16->16 (12 -> 10 -> 8), GAP, Linear(16, 10).

    Unpadded 3x3 convs, so the last conv sees 14x14 input pixels; GAP keeps the head at 170
    parameters. 4,806 parameters in all.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (8, 10, 16, 16), num_classes=10):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.features = nn.Sequential(
            *conv_bn_relu(1, c1, padding=0), *conv_bn_relu(c1, c2, padding=0),  # 28 -> 24
            nn.MaxPool2d(2),  # 24 -> 12
            *conv_bn_relu(c2, c3, padding=0), *conv_bn_relu(c3, c4, padding=0),  # 12 -> 8
            nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.num_features = c4
        self.head = nn.Linear(c4, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)  # (B, c4, 1, 1) -> (B, c4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class LeanNet(nn.Module):
    """conv5x5 1->c1 (28 -> 24), pool (12), BN, ReLU, conv3x3 c1->c2 (12 -> 10), pool (5), BN,
    ReLU, Linear(c2 * 25, hidden), ReLU, Linear(hidden, classes).

    Unpadded convs and pooling before the normalisation and ReLU (which commute with max
    pooling) keep the element-wise work at a quarter of the conv outputs: on 2 CPU cores a
    small net's BN and ReLU cost as much as its convolutions (benchmarks/results/roofline.md).
    Bias-free convs: the BN shift replaces the bias.
    """

    def __init__(self, c1: int = 16, c2: int = 32, hidden: int = 128, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),  # 28 -> 24 -> 12
            nn.Conv2d(c1, c2, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),  # 12 -> 10 -> 5
        )  # fmt: skip
        self.hidden = nn.Sequential(nn.Linear(c2 * 25, hidden), nn.ReLU(inplace=True))
        self.num_features = hidden
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.features(x).flatten(1))  # (B, c2, 5, 5) -> (B, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class ExamplesNet(nn.Module):
    """pytorch/examples mnist/main.py `Net`, returning logits (its log_softmax + nll_loss is
    cross-entropy on logits)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(inplace=True),  # 28 -> 26
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),  # 26 -> 24
            nn.MaxPool2d(2), nn.Dropout(0.25),  # 24 -> 12
        )  # fmt: skip
        self.hidden = nn.Sequential(
            nn.Linear(9216, 128), nn.ReLU(inplace=True), nn.Dropout(0.5)
        )  # 64 * 12 * 12 = 9216
        self.num_features = 128
        self.head = nn.Linear(128, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.features(x).flatten(1))  # (B, 64, 12, 12) -> (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# ------------------------------------------------------------------------------- entrypoints

_FAST_RECIPE = {
    "optimizer": "sgd",
    "nesterov": True,
    "scheduler": "onecycle",
    "label_smoothing": 0.1,
    "val_size": 0,
}


@register_model(
    family="speedrun",
    architecture="3x [conv3x3-BN-ReLU-pool] 16/32/64, FC 576-10",
    recipe={**_FAST_RECIPE, "epochs": 2, "batch_size": 256, "lr": 0.1},
    tags=("speedrun",),
)
def speedrun_fast(num_classes: int = 10) -> SpeedNet:
    return SpeedNet((16, 32, 64), num_classes=num_classes)


@register_model(
    family="speedrun",
    architecture="3x [conv3x3-BN-ReLU-pool] 8/16/32, FC 288-10",
    recipe={**_FAST_RECIPE, "epochs": 2, "batch_size": 256, "lr": 0.1},
    tags=("speedrun",),
)
def speedrun_fast_small(
    num_classes: int = 10, c1: int = 8, c2: int = 16, c3: int = 32, stem_stride: int = 1
) -> SpeedNet:
    return SpeedNet((c1, c2, c3), stem_stride=stem_stride, num_classes=num_classes)


@register_model(
    family="speedrun",
    architecture="conv 32-pool, 2x conv 64-pool, 2x conv 128-pool (BN, ReLU), FC 1152-10",
    recipe={**_FAST_RECIPE, "epochs": 8, "batch_size": 256, "lr": 0.1, "augment": "affine"},
    tags=("speedrun",),
)
def speedrun_fast_wide(num_classes: int = 10) -> SpeedNet:
    return SpeedNet((32, 64, 128), extra=True, num_classes=num_classes)


@register_model(
    family="speedrun",
    architecture="conv5x5 1-16, pool, BN, conv3x3 16-32, pool, BN (ReLU, no pad), FC 800-128-10",
    recipe={**_FAST_RECIPE, "epochs": 1, "batch_size": 128, "lr": 0.1},
    tags=("speedrun",),
)
def speedrun_lean(num_classes: int = 10, c1: int = 16, c2: int = 32, hidden: int = 128) -> LeanNet:
    return LeanNet(c1, c2, hidden, num_classes=num_classes)


@register_model(
    family="speedrun",
    architecture="conv3x3 1-8-10, pool, 10-16-16 (BN, ReLU, no pad), GAP, FC 16-10",
    recipe={
        "epochs": 15,
        "batch_size": 128,
        "optimizer": "sgd",
        "nesterov": True,
        "lr": 0.1,
        "scheduler": "onecycle",
        "augment": "rotate7",
    },
    tags=("speedrun",),
)
def speedrun_tiny(num_classes: int = 10) -> TinyNet:
    return TinyNet(num_classes=num_classes)


@register_model(
    family="speedrun",
    architecture="pytorch/examples Net: conv 1-32, 32-64, pool, dropout, FC 9216-128-10",
    recipe={"epochs": 14, "batch_size": 64, "scheduler": "step", "step_size": 1, "gamma": 0.7},
    tags=("reference",),
)
def examples_cnn(num_classes: int = 10) -> ExamplesNet:
    return ExamplesNet(num_classes=num_classes)
