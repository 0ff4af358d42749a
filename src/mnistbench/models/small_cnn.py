"""Sub-20k-parameter CNNs of study D: where dropout goes, and what batch norm adds.

One backbone of four 3x3 blocks (1x1 convs squeeze the channels between them), global average
pooling and Linear(32, 10). `small_cnn_v1` has dropout after all four blocks, `small_cnn_v2`
after blocks 1-2 only (17,938 parameters each); `small_cnn_bn` is v2 with conv-BN-ReLU
everywhere (18,278; the study's text says 18,434, its own model summary prints 18,278).
Published (max over epochs of test accuracy, StepLR(7, 0.1), 20 epochs, augmentation):
v1 99.36% (epoch 18), v2 99.38% (16), bn 99.55% (15); first epoch at >= 99%: 8, 8, 5.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model
from mnistbench.studies.catalog import STUDY_D_SETTING

# (in, out, kernel) per conv, block by block; blocks 1-3 end in maxpool2, block 4 does not.
_BLOCKS: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((1, 6, 3), (6, 12, 3), (12, 24, 3), (24, 8, 1)),  # 28x28 -> pool -> 14x14
    ((8, 16, 3), (16, 16, 3), (16, 8, 1)),  # 14x14 -> pool -> 7x7
    ((8, 16, 3), (16, 16, 3)),  # 7x7 -> pool -> 3x3
    ((16, 16, 3), (16, 32, 3)),  # 3x3, no pool
)


def _conv(c_in: int, c_out: int, kernel: int, batch_norm: bool) -> list[nn.Module]:
    # conv keeps its bias even before BN: the study's parameter count includes it
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return layers


class SmallCNN(nn.Module):
    """Study D backbone; `dropout_blocks` says after which blocks Dropout2d(p) sits."""

    def __init__(
        self,
        dropout_blocks: tuple[int, ...],
        batch_norm: bool = False,
        dropout: float = 0.1,
        num_classes: int = 10,
    ):
        super().__init__()
        blocks = []
        for index, convs in enumerate(_BLOCKS, start=1):
            layers = [m for spec in convs for m in _conv(*spec, batch_norm=batch_norm)]
            if index < len(_BLOCKS):
                layers.append(nn.MaxPool2d(2))  # floor: 7 -> 3 after block 3
            if index in dropout_blocks:
                layers.append(nn.Dropout2d(dropout))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        # Measured on 2 shared CPU cores, batch 32: with BN, channels-last took 38.7-42.0 ms per
        # train step against 32.3 contiguous (BN backward dominates); full MNIST runs: 61.4 s
        # train/epoch channels-last vs 55.0-57.5 contiguous, but eval 4.0 vs 6.9 s/epoch, so only
        # ~3% net. Training time is what the issue targets, so the BN variant opts out.
        self.channels_last_cpu = not batch_norm
        self.num_features = _BLOCKS[-1][-1][1]
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)  # (B, 1, 28, 28) -> (B, 32, 3, 3)
        return x.mean(dim=(2, 3))  # global average pool: (B, 32, 3, 3) -> (B, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# Study D: batch 32, Adam 1e-3, StepLR(7, 0.1) per epoch, 20 epochs, rotation 5° + affine
# (translate 0.05, scale 0.9-1.1, shear 10) + brightness/contrast 0.1 (the catalog's setting,
# held there once), early stopping after 10 epochs without validation gain. target_accuracy
# 0.99 gives the study's "first epoch >= 99%".
_STUDY_D = {**STUDY_D_SETTING, "early_stopping_patience": 10, "target_accuracy": 0.99}
_ARCH = "4 conv blocks (3x3 + 1x1 squeeze), 6-32 channels, GAP, FC 32-10"


@register_model(
    family="small_cnn",
    architecture=f"{_ARCH}; Dropout2d(0.1) after all 4 blocks",
    recipe=_STUDY_D,
)
def small_cnn_v1(num_classes: int = 10) -> SmallCNN:
    return SmallCNN(dropout_blocks=(1, 2, 3, 4), num_classes=num_classes)


@register_model(
    family="small_cnn",
    architecture=f"{_ARCH}; Dropout2d(0.1) after blocks 1-2",
    recipe=_STUDY_D,
)
def small_cnn_v2(num_classes: int = 10) -> SmallCNN:
    return SmallCNN(dropout_blocks=(1, 2), num_classes=num_classes)


@register_model(
    family="small_cnn",
    architecture=f"{_ARCH}; conv-BN-ReLU, Dropout2d(0.1) after blocks 1-2",
    recipe=_STUDY_D,
)
def small_cnn_bn(num_classes: int = 10) -> SmallCNN:
    return SmallCNN(dropout_blocks=(1, 2), batch_norm=True, num_classes=num_classes)
