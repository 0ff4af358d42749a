"""MLP GAN whose frozen discriminator is probed (study A `gan`).

G: 100-256-512-1024-784 (LeakyReLU 0.2, Tanh), 1,486,352 parameters. D: 784-512-256-1
(LeakyReLU 0.2, Sigmoid folded into the loss), 533,505 parameters. Classifier: D's first two
layers frozen + Linear(256, 10). Trained adversarially on [-1, 1] images (objectives/
adversarial.py), then probed; published 95.54%.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model
from mnistbench.objectives.adversarial import AdversarialObjective
from mnistbench.recipes import Recipe, linear_probe, pretext


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 100, widths: tuple[int, ...] = (256, 512, 1024)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = latent_dim
        for width in widths:
            layers += [nn.Linear(previous, width), nn.LeakyReLU(0.2)]
            previous = width
        layers += [nn.Linear(previous, 28 * 28), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)  # (B, 100) -> (B, 784) -> (B, 1, 28, 28)


class Discriminator(nn.Module):
    """`features` (the part the probe keeps) then one logit; the Sigmoid is in the loss."""

    def __init__(self, widths: tuple[int, int] = (512, 256)):
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),  # (B, 1, 28, 28) -> (B, 784)
            nn.Linear(28 * 28, widths[0]),
            nn.LeakyReLU(0.2),
            nn.Linear(widths[0], widths[1]),
            nn.LeakyReLU(0.2),
        )
        self.out = nn.Linear(widths[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))  # (B, 1) logits


class MLPGAN(nn.Module):
    """Both players plus the probe head; `forward` classifies with D's features."""

    def __init__(self, num_classes: int = 10, latent_dim: int = 100):
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim)
        self.discriminator = Discriminator()
        self.num_features = 256
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator.features(x)  # (B, 1, 28, 28) -> (B, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="gan",
    architecture="MLP GAN G 100-256-512-1024-784, D 784-512-256-1; probe on D's 256 features",
    # adversarial training for the run's epochs, then the shared probe for study A's 5 epochs
    recipe=Recipe(
        stages=(pretext(AdversarialObjective), linear_probe(epochs=5)),
        defaults={"epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 2e-4},
    ),
    tags=("pretrain",),
    input_scaling="symmetric",
)
def gan(num_classes: int = 10) -> MLPGAN:
    return MLPGAN(num_classes=num_classes)
