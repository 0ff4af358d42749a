"""The VAE evidence lower bound with a beta knob (beta-VAE, Higgins et al. 2017).

loss = BCE(x_hat, x) summed over pixels + beta * KL(q(z|x) || N(0, I)), per image, with the
closed-form Gaussian KL of Kingma & Welling 2014, appendix B. Inputs are pixels in [0, 1]
(the model's input_scaling is "unit"), the Bernoulli likelihood's range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.objectives.base import Batch, ImageGrid
from mnistbench.objectives.pretext import EpochMeans, PretextObjective, pretext_eval_sums
from mnistbench.options import StageOption

BETA = StageOption(
    "beta",
    float,
    1.0,
    help="the ELBO's KL weight, 1.0 for the plain VAE",
    check=lambda beta: beta >= 0,
    rule="must be 0 or more",
    example=4.0,
)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample: -1/2 sum(1 + logvar - mu^2 - exp(logvar)).

    mu, logvar: (B, latent) -> (B,).
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def elbo_terms(
    model: nn.Module, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image (reconstruction BCE summed over pixels, KL) and the reconstruction logits.

    The decoder's Sigmoid is folded into the loss (BCE with logits): the same value as
    BCE(sigmoid(logits), x) without its log(0) clamp.
    """
    mu, logvar = model.encode(images)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterisation trick
    logits = model.decode_logits(z).view_as(images)  # (B, latent) -> (B, 1, 28, 28)
    bce = F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
    return bce, gaussian_kl(mu, logvar), logits


class VAEObjective(PretextObjective):
    """Minimise the negative ELBO: BCE(sum) + beta * KL, averaged over the batch's images.

    The published loss is summed over the batch too; Adam is invariant to that constant factor
    (up to its epsilon), and a per-image mean keeps figures comparable across batch sizes.
    `beta` is a stage option (`--model-option beta=4.0`).
    """

    name = "vae"
    requires = ("encode", "decode_logits", "num_features")
    options = (BETA,)

    def __init__(self, *args, beta: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.beta = float(beta)  # weight of the KL term; 1.0 is the plain VAE
        self.extra = EpochMeans()  # reconstruction and KL terms per epoch

    def batch_loss(self, images: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            bce, kl, _ = elbo_terms(self.model, images)
            loss = (bce.float() + self.beta * kl.float()).mean()
        self.extra.add(len(images), reconstruction=bce.mean(), kl=kl.mean())
        return loss

    @torch.inference_mode()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch
        with self.autocast():
            bce, kl, _ = elbo_terms(self.model, images)
        return pretext_eval_sums((bce.float() + self.beta * kl.float()).sum(), len(images))

    @torch.inference_mode()
    def pictures(self, images: torch.Tensor, count: int = 32) -> dict[str, ImageGrid]:
        """Decoded samples z ~ N(0, I), and held-out inputs over their reconstructions."""
        was_training = self.model.training
        self.model.eval()
        try:
            latent = self.model.num_features
            z = torch.randn(count, latent, device=images.device)
            samples = torch.sigmoid(self.model.decode_logits(z)).view(count, 1, 28, 28)
            originals = images[:count]
            mu, _ = self.model.encode(originals)
            recon = torch.sigmoid(self.model.decode_logits(mu)).view_as(originals)
        finally:
            self.model.train(was_training)
        return {
            "vae_samples": ImageGrid(samples, "VAE samples, z ~ N(0, I)"),
            "vae_reconstructions": ImageGrid(
                torch.cat([originals, recon]),
                "VAE: held-out images (top 4 rows), reconstructed",
            ),
        }
