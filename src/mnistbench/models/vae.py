"""Variational autoencoder with a beta knob (study A `beta_vae`).

Encoder 784-400 ReLU -> mu, logvar (latent 20); decoder 20-400 ReLU -> 784 (+ Sigmoid, folded
into the loss). 652,824 parameters without the probe head Linear(20, 10). Pretrained with the
ELBO (objectives/vae.py; its KL weight is the stage option beta), probed on mu; published
88.66% (beta unknown; we report 1.0 and 4.0).
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model
from mnistbench.objectives.vae import VAEObjective
from mnistbench.recipes import Recipe, linear_probe, pretext


class BetaVAE(nn.Module):
    """MLP VAE; `forward_features` is the posterior mean mu, `forward` the probe on it."""

    def __init__(
        self,
        num_classes: int = 10,
        hidden: int = 400,
        latent: int = 20,
        pixels: int = 28 * 28,
    ):
        super().__init__()
        self.pixels = pixels
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels)
        )  # logits: the Sigmoid is applied by the loss (BCE with logits) and by `decode`
        self.num_features = latent
        self.head = nn.Linear(latent, num_classes)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (B, 1, 28, 28) -> (B, 400)
        return self.mu(h), self.logvar(h)  # (B, latent) each

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, latent) -> (B, 784)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means in [0, 1], (B, 784)."""
        return torch.sigmoid(self.decode_logits(z))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="vae",
    architecture="MLP VAE 784-400-(mu, logvar 20); decoder 20-400-784; probe Linear(20,10) on mu",
    # ELBO pretraining for the run's epochs (--model-option beta=4.0 weighs the KL term),
    # then the shared probe on mu for study A's 10 epochs
    recipe=Recipe(
        stages=(pretext(VAEObjective), linear_probe(epochs=10)),
        defaults={"epochs": 10, "batch_size": 128, "optimizer": "adam", "lr": 1e-3},
    ),
    tags=("pretrain",),
    input_scaling="unit",
)
def beta_vae(num_classes: int = 10) -> BetaVAE:
    return BetaVAE(num_classes=num_classes)
