"""Denoising pretext task (study A's U-Net): reconstruct the clean image from x + 0.5·N(0, 1).

The published U-Net compared an output whose range did not match its target's (its images
were Normalize(0.1307, 0.3081)-scaled, spanning [-0.42, 2.82]). Here the noise is added in the
same normalised space as published (std 0.5 there is 0.154 in pixel units), but the model's
output is a sigmoid in pixel space [0, 1] and the target is the clean image mapped back to
[0, 1], so output and target live in the same range and a perfect reconstruction is reachable.
"""

from __future__ import annotations

import torch

from mnistbench.objectives.base import Batch, ImageGrid, StageInputs
from mnistbench.objectives.pretext import EpochMeans, PretextObjective, pretext_eval_sums


class DenoisingObjective(PretextObjective):
    """MSE between sigmoid(model.denoise_logits(x + noise)) and the clean pixels in [0, 1].

    `mean`/`std` describe the data's scaling (DeviceData.mean/std): pixels = x * std + mean.
    `noise_std` is in the data's scaled units (the published 0.5 on normalised images).
    """

    name = "denoising"
    requires = ("denoise_logits",)

    def __init__(
        self,
        *args,
        mean: float,
        std: float,
        noise_std: float = 0.5,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.mean, self.std = mean, std
        self.noise_std = noise_std
        self.seed = seed
        self._generators: dict[tuple[torch.device, bool], torch.Generator] = {}
        self.extra = EpochMeans()

    @classmethod
    def for_stage(cls, model, inputs: StageInputs, **options) -> DenoisingObjective:
        return cls(
            model,
            **inputs.precision_kwargs(),
            mean=inputs.mean,
            std=inputs.std,
            seed=inputs.seed,
            **options,
        )

    def _noise(self, images: torch.Tensor, train: bool = True) -> torch.Tensor:
        key = (images.device, train)
        if key not in self._generators:
            # separate streams for training and evaluation noise, both seeded
            self._generators[key] = torch.Generator(images.device).manual_seed(
                self.seed + (0 if train else 1)
            )
        noise = torch.randn(images.shape, generator=self._generators[key], device=images.device)
        return images + self.noise_std * noise

    def to_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Scaled images back to pixel values in [0, 1]."""
        return images * self.std + self.mean

    def losses(self, images: torch.Tensor, train: bool = True) -> torch.Tensor:
        """Per-image mean squared error (B,) between the denoised output and the clean pixels."""
        with self.autocast():
            output = torch.sigmoid(self.model.denoise_logits(self._noise(images, train)))
        error = (output.float() - self.to_pixels(images)).pow(2)
        return error.flatten(1).mean(dim=1)

    def batch_loss(self, images: torch.Tensor) -> torch.Tensor:
        return self.losses(images).mean()

    @torch.inference_mode()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch
        return pretext_eval_sums(self.losses(images, train=False).sum(), len(images))

    @torch.inference_mode()
    def pictures(self, images: torch.Tensor, count: int = 16) -> dict[str, ImageGrid]:
        """Rows of clean, noisy and denoised images, in [0, 1]."""
        was_training = self.model.training
        self.model.eval()
        try:
            clean = images[:count]
            noisy = self._noise(clean, train=False)
            denoised = torch.sigmoid(self.model.denoise_logits(noisy).float())
        finally:
            self.model.train(was_training)
        rows = [self.to_pixels(clean), self.to_pixels(noisy).clamp(0, 1), denoised]
        labels = ("clean", "noisy", "denoised")
        return {"unet_denoising": ImageGrid(torch.cat(rows), "U-Net denoising", 16, labels)}
