"""U-Net pretrained by denoising, probed on its pooled encoder (study A `unet`).

DoubleConv = [conv3x3 (bias) BN ReLU] x 2. inc 1->64; down (maxpool, 64->128); down (maxpool,
128->256); up (convT 256->128, skip, DoubleConv 256->128); up (convT 128->64, skip, DoubleConv
128->64); 1x1 conv 64->1. 1,864,257 parameters without the probe head Linear(256, 10).
Published 93.93%. The output is a logit map; the denoising objective puts a sigmoid on it and
compares in pixel space [0, 1] (the original's output and target ranges did not match).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model
from mnistbench.objectives.denoising import DenoisingObjective
from mnistbench.recipes import Recipe, linear_probe, pretext


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, C, H, W) -> (B, C/2, 2H, 2W)
        return self.conv(torch.cat([skip, x], dim=1))  # (B, C, 2H, 2W) -> (B, C/2, 2H, 2W)


class UNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.inc = DoubleConv(1, width)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(width, 2 * width))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), DoubleConv(2 * width, 4 * width))
        self.up1 = Up(4 * width, 2 * width)
        self.up2 = Up(2 * width, width)
        self.outc = nn.Conv2d(width, 1, 1)
        self.num_features = 4 * width
        self.head = nn.Linear(self.num_features, num_classes)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x1 = self.inc(x)  # (B, 64, 28, 28)
        x2 = self.down1(x1)  # (B, 128, 14, 14)
        return x1, x2, self.down2(x2)  # (B, 256, 7, 7)

    def denoise_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits (B, 1, 28, 28) of the clean image; sigmoid gives [0, 1] pixels."""
        x1, x2, x3 = self.encode(x)
        return self.outc(self.up2(self.up1(x3, x2), x1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[2].mean(dim=(2, 3))  # global average pool: (B, 256, 7, 7) -> (B, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="unet",
    architecture="U-Net 64-128-256, 2 up stages, denoising; probe on pooled encoder (256)",
    # denoising for the run's epochs, then the shared probe for study A's 5 epochs
    recipe=Recipe(
        stages=(pretext(DenoisingObjective), linear_probe(epochs=5)),
        defaults={"epochs": 5, "batch_size": 64, "optimizer": "adam", "lr": 1e-3},
    ),
    tags=("pretrain",),
)
def unet(num_classes: int = 10) -> UNet:
    return UNet(num_classes=num_classes)
