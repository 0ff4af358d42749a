"""SimSiam (Chen & He 2021): two augmented views, a predictor, and a stop-gradient.

loss = -1/2 [cos(p1, sg(z2)) + cos(p2, sg(z1))], z = projector(encoder(view)), p = predictor(z).
The stop-gradient on z is what keeps the two-branch network from collapsing (paper, sec. 4.1).
Views are made on the device, batched (data.augment.simsiam_view_torchvision: study A's
torchvision pipeline; `views=combined` the earlier one-resample views); the encoder runs once on
both views stacked (it has no BatchNorm, so that changes nothing), the projector and predictor
once per view, so their BatchNorm sees each view's batch as in the original. As published
(DataLoader drop_last=True), a last batch smaller than the run's batch size is skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mnistbench.data.augment import simsiam_view, simsiam_view_torchvision
from mnistbench.objectives.base import Batch, ImageGrid, StageInputs
from mnistbench.objectives.pretext import EpochMeans, PretextObjective, pretext_eval_sums
from mnistbench.options import StageOption

VIEWS = StageOption(
    "views",
    str,
    "torchvision",
    help="'torchvision': study A's crop, flip, then nearest-neighbour affine; 'combined': one "
    "bilinear resample of the three (mnistbench's earlier views)",
    choices=("torchvision", "combined"),
)
_VIEW_MAKERS = {"torchvision": simsiam_view_torchvision, "combined": simsiam_view}


def simsiam_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """Per-sample symmetric negative cosine similarity (B,), with z1 and z2 detached."""
    return -0.5 * (
        F.cosine_similarity(p1, z2.detach(), dim=-1) + F.cosine_similarity(p2, z1.detach(), dim=-1)
    )


class SimSiamObjective(PretextObjective):
    """Negative cosine between each view's prediction and the other view's projection.

    `mean`/`std` describe the data's scaling (pixels = x * std + mean), so views pad with
    black; `seed` seeds the views. Batches of fewer than `min_batch` images are skipped
    (the recipe passes the run's batch size: the published drop_last; BatchNorm needs 2).
    """

    name = "simsiam"
    requires = ("encoder", "projector", "predictor")
    options = (VIEWS,)

    def __init__(
        self,
        *args,
        mean: float = 0.0,
        std: float = 1.0,
        seed: int = 0,
        min_batch: int = 2,
        views: str = "torchvision",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.view = _VIEW_MAKERS[views]
        self.mean, self.std = mean, std
        self.fill = -mean / std  # the scaled value of a black pixel
        self.seed = seed
        self.min_batch = max(2, min_batch)
        self._last_loss: torch.Tensor | None = None
        self._generators: dict[tuple[torch.device, bool], torch.Generator] = {}
        self.extra = EpochMeans()

    @classmethod
    def for_stage(cls, model, inputs: StageInputs, **options) -> SimSiamObjective:
        return cls(
            model,
            **inputs.precision_kwargs(),
            mean=inputs.mean,
            std=inputs.std,
            seed=inputs.seed,
            # published drop_last (a split smaller than one batch still trains)
            min_batch=min(inputs.batch_size, inputs.train_size),
            **options,
        )

    def views(self, images: torch.Tensor, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent random views of the batch."""
        key = (images.device, train)
        if key not in self._generators:
            self._generators[key] = torch.Generator(images.device).manual_seed(
                self.seed + (0 if train else 1)
            )
        generator = self._generators[key]
        return (
            self.view(images, generator, fill=self.fill),
            self.view(images, generator, fill=self.fill),
        )

    def losses(self, images: torch.Tensor, train: bool = True) -> torch.Tensor:
        """Per-image SimSiam loss (B,) on two fresh views."""
        model = self.model
        v1, v2 = self.views(images, train)
        with self.autocast():
            h = model.encoder(torch.cat([v1, v2]))  # (2B, 1, 28, 28) -> (2B, 1152)
            h1, h2 = h.split(len(images))
            z1, z2 = model.projector(h1), model.projector(h2)  # (B, 2048) each
            p1, p2 = model.predictor(z1), model.predictor(z2)
        return simsiam_loss(p1.float(), p2.float(), z1.float(), z2.float())

    def batch_loss(self, images: torch.Tensor) -> torch.Tensor:
        return self.losses(images).mean()

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch
        if len(images) < self.min_batch:  # drop_last: no update from a short last batch
            # The engine weights "loss" by the batch's length: the previous batch's loss keeps
            # the epoch mean close to the trained batches' mean (0 would pull it towards 0).
            skipped = self._last_loss if self._last_loss is not None else torch.zeros(())
            return {"loss": skipped.to(images.device), "count": torch.tensor(0)}
        result = super().step(batch)
        self._last_loss = result["loss"]
        return result

    @torch.inference_mode()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch
        return pretext_eval_sums(self.losses(images, train=False).sum(), len(images))

    @torch.inference_mode()
    def pictures(self, images: torch.Tensor, count: int = 16) -> dict[str, ImageGrid]:
        """Originals over two rows of their random views, in [0, 1] (for a look at the views)."""
        originals = images[:count]
        v1, v2 = self.views(originals, train=False)
        rows = torch.cat([originals, v1, v2]) * self.std + self.mean
        grid = ImageGrid(rows.clamp(0, 1), "SimSiam views", 16, ("image", "view 1", "view 2"))
        return {"simsiam_views": grid}
