"""The GAN objective (Goodfellow et al. 2014): two players, two optimizers, alternating updates.

Each step first updates the discriminator D on real and generated images, then the generator G
with the non-saturating loss -log D(G(z)). Each update touches only its own side: D's update
uses G's images detached; G's update runs through a D whose parameters are switched out of
autograd for the duration. Losses are binary cross-entropy on D's logits (its Sigmoid folded
into the loss, the same value without the log(0) clamp). Data are in [-1, 1] (input_scaling
"symmetric"), the range of G's Tanh.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.objectives.base import Batch, ImageGrid, Objective, StageInputs
from mnistbench.objectives.pretext import EpochMeans, pretext_eval_sums

# Radford et al. 2016 (DCGAN): beta1 0.5 instead of 0.9; the study's GAN used it too.
GAN_BETAS = (0.5, 0.999)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(
        logits.float(), torch.full_like(logits, target, dtype=torch.float32)
    )


class AdversarialObjective(Objective):
    """`model.generator` (z -> image) against `model.discriminator` (image -> logit).

    Optimizers come from the run's config (Adam, lr 2e-4 in the gan recipe) with the
    DCGAN betas (0.5, 0.999) set on them when they are Adam-like.
    """

    name = "adversarial"
    requires = ("generator", "discriminator", "latent_dim")

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = EpochMeans()  # D and G losses and D's outputs per epoch
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    @classmethod
    def for_stage(cls, model, inputs: StageInputs, **options) -> AdversarialObjective:
        return cls(
            model,
            **inputs.precision_kwargs(),
            seed=inputs.seed,
            **options,
        )

    @property
    def generator(self) -> nn.Module:
        return self.model.generator

    @property
    def discriminator(self) -> nn.Module:
        return self.model.discriminator

    def latent(self, count: int, device: torch.device, eval: bool = False) -> torch.Tensor:
        """z ~ N(0, I), (count, latent_dim); evaluation draws from its own seeded stream."""
        key = torch.device(device)
        if eval:
            return torch.randn(
                count,
                self.model.latent_dim,
                device=device,
                generator=torch.Generator(device).manual_seed(self.seed + 1),
            )
        if key not in self._generators:
            self._generators[key] = torch.Generator(device).manual_seed(self.seed)
        return torch.randn(
            count, self.model.latent_dim, device=device, generator=self._generators[key]
        )

    def configure_optimizers(
        self, build: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    ) -> list[torch.optim.Optimizer]:
        self.d_parameters = list(self.discriminator.parameters())
        self.g_parameters = list(self.generator.parameters())
        self.d_optimizer, self.g_optimizer = build(self.d_parameters), build(self.g_parameters)
        for optimizer in (self.d_optimizer, self.g_optimizer):
            for group in optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = GAN_BETAS
        self.optimizers = [self.d_optimizer, self.g_optimizer]
        return self.optimizers

    def discriminator_step(self, real: torch.Tensor) -> torch.Tensor:
        """One D update: BCE(D(real), 1) + BCE(D(G(z)), 0); G is not touched."""
        with torch.no_grad(), self.autocast():
            fake = self.generator(self.latent(len(real), real.device))
        with self.autocast():
            logits = self.discriminator(torch.cat([real, fake.to(real.dtype)]))  # (2B, 1)
        real_logits, fake_logits = logits.split(len(real))
        loss = _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
        self.optimizer_step(loss, self.d_optimizer, self.d_parameters)
        self.extra.add(
            len(real),
            d_loss=loss.detach(),
            d_real=torch.sigmoid(real_logits.detach().float()).mean(),
            d_fake=torch.sigmoid(fake_logits.detach().float()).mean(),
        )
        return loss.detach()

    def generator_step(self, count: int, device: torch.device) -> torch.Tensor:
        """One G update with the non-saturating loss BCE(D(G(z)), 1); D is not touched."""
        self.discriminator.requires_grad_(False)  # no gradients for D's weights (and no work)
        try:
            with self.autocast():
                logits = self.discriminator(self.generator(self.latent(count, device)))
            loss = _bce(logits, 1.0)
            self.optimizer_step(loss, self.g_optimizer, self.g_parameters)
        finally:
            self.discriminator.requires_grad_(True)
        self.extra.add(count, g_loss=loss.detach())
        return loss.detach()

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch  # labels are never read
        d_loss = self.discriminator_step(images)
        g_loss = self.generator_step(len(images), images.device)
        # "loss" is the sum of both players' losses (each is also kept per epoch in `extra`)
        return {"loss": d_loss + g_loss, "count": torch.tensor(len(images))}

    @torch.inference_mode()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """D's loss on held-out real images and as many generated ones, plus G's loss."""
        images, _ = batch
        with self.autocast():
            fake = self.generator(self.latent(len(images), images.device, eval=True))
            logits = self.discriminator(torch.cat([images, fake.to(images.dtype)]))
        real_logits, fake_logits = logits.float().split(len(images))
        d_loss = _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
        g_loss = _bce(fake_logits, 1.0)
        return pretext_eval_sums((d_loss + g_loss) * len(images), len(images))

    @torch.inference_mode()
    def pictures(self, images: torch.Tensor, count: int = 64) -> dict[str, ImageGrid]:
        """A grid of generated samples in [0, 1] (G's Tanh output mapped from [-1, 1])."""
        was_training = self.model.training
        self.model.eval()
        try:
            samples = self.generator(self.latent(count, images.device, eval=True)).float()
        finally:
            self.model.train(was_training)
        return {"gan_samples": ImageGrid((samples.view(count, 1, 28, 28) + 1) / 2, "GAN samples")}
