"""Contrastive divergence (CD-k) for one RBM of a deep belief net, without autograd.

The CD-k estimate of the log-likelihood gradient (Hinton 2002; the practical recipe of Hinton
2010, UTML TR 2010-003, sections 3-4): positive statistics <v h> under the data, negative
statistics after k steps of block Gibbs sampling started at the data. Hidden states are
sampled while the chain runs and the last hidden update uses probabilities. The visible
reconstruction is sampled to binary states (`sample_visible=True`, study A's DBN:
`v1 = rbm.sample_v_given_h(h0)`) or kept as probabilities, which lowers sampling noise without
biasing the rule much (Hinton 2010, 3.2-3.3; mnistbench's earlier recipe, the "improved" DBN).
The update is the plain one, p += lr * (positive - negative) / batch: an SGD step without
momentum or weight decay on the negated estimate, so the engine sees an optimizer and logs lr.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mnistbench.objectives.base import Batch, ImageGrid, Objective
from mnistbench.objectives.pretext import EpochMeans, pretext_eval_sums


class ContrastiveDivergenceObjective(Objective):
    """CD-k on `model.rbms[layer]`; the RBMs below it are fixed maps to its visible input.

    `model` is a DBN-like module with `rbms` (each with `hidden_probabilities`,
    `visible_probabilities`, `weight`, `visible_bias`, `hidden_bias`) and
    `visible_input(x, layer)`. The step's "loss" is the mean squared reconstruction error per
    visible unit of the last Gibbs step, the figure RBM code traditionally reports (it is not
    the objective CD follows, but it falls as the model learns).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: int = 0,
        *,
        k: int = 1,  # Gibbs steps per update (CD-1 in study A)
        lr: float = 0.05,  # plain CD learning rate (study A)
        seed: int = 0,
        sample_visible: bool = True,  # binary visible reconstruction (study A)
    ):
        super().__init__(model)  # no autocast: 0/1 samples and small updates want fp32
        if k < 1:
            raise ValueError(f"CD needs at least one Gibbs step, got k={k}")
        self.rbm = model.rbms[layer]
        self.layer = layer
        self.k = k
        self.lr = lr
        self.seed = seed
        self.sample_visible = sample_visible
        self._generator: torch.Generator | None = None
        self.extra = EpochMeans()  # per-epoch means of extra figures (epoch_figures)

    def configure_optimizers(
        self, build: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    ) -> list[torch.optim.Optimizer]:
        # `build` (the run's optimizer, Adam for fine-tuning) is not CD's rule: plain SGD is
        params = [self.rbm.weight, self.rbm.visible_bias, self.rbm.hidden_bias]
        self.optimizers = [torch.optim.SGD(params, lr=self.lr, momentum=0.0)]
        return self.optimizers

    def _sample(self, probabilities: torch.Tensor) -> torch.Tensor:
        if self._generator is None or self._generator.device != probabilities.device:
            self._generator = torch.Generator(probabilities.device).manual_seed(self.seed)
        return torch.bernoulli(probabilities, generator=self._generator)

    @torch.no_grad()
    def gibbs(
        self, v0: torch.Tensor, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """k steps of block Gibbs from the data: (p(h|v0), v_k, p(h|v_k)), all (B, units);
        v_k is binary where the visibles are sampled (`sample_visible`), else p(v|h).

        With `sample` False the chain is mean-field (deterministic), used for evaluation.
        """
        rbm = self.rbm
        h0 = rbm.hidden_probabilities(v0)
        h = self._sample(h0) if sample else h0
        for _ in range(self.k):
            vk = rbm.visible_probabilities(h)
            if sample and self.sample_visible:
                vk = self._sample(vk)
            hk = rbm.hidden_probabilities(vk)
            h = self._sample(hk) if sample else hk
        return h0, vk, hk

    @torch.no_grad()
    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch  # labels are never read
        (optimizer,) = self.optimizers
        v0 = self.model.visible_input(images, self.layer)  # (B, visible) in [0, 1]
        h0, vk, hk = self.gibbs(v0)
        n = v0.shape[0]
        rbm = self.rbm
        # the gradient of -log p(v) as CD estimates it; SGD's p -= lr * grad is the CD rule
        rbm.weight.grad = (hk.t() @ vk - h0.t() @ v0) / n  # (hidden, visible)
        rbm.visible_bias.grad = (vk - v0).mean(dim=0)
        rbm.hidden_bias.grad = (hk - h0).mean(dim=0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        error = (v0 - vk).pow(2).mean()
        self.extra.add(n, hidden_activation=h0.mean())
        return {"loss": error, "count": torch.tensor(n)}

    @torch.no_grad()
    def eval_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        images, _ = batch
        v0 = self.model.visible_input(images, self.layer)
        _, vk, _ = self.gibbs(v0, sample=False)
        per_image = (v0 - vk).pow(2).mean(dim=1)  # (B,)
        return pretext_eval_sums(per_image.sum(), len(images))

    @torch.no_grad()
    def reconstruction_error(self, visible: torch.Tensor) -> float:
        """Mean squared error of the deterministic one-step reconstruction of `visible`."""
        _, vk, _ = self.gibbs(visible, sample=False)
        return float((visible - vk).pow(2).mean())

    @torch.no_grad()
    def pictures(self, images: torch.Tensor, count: int = 64) -> dict[str, ImageGrid]:
        """First-layer filters as images: the weights of `count` hidden units of RBM 1, each
        scaled to [0, 1] on its own range (upper layers' weights are not images)."""
        if self.layer != 0 or self.rbm.visible_size != images[0].numel():
            return {}
        weights = self.rbm.weight[:count].float()  # (count, H*W)
        low = weights.min(dim=1, keepdim=True).values
        high = weights.max(dim=1, keepdim=True).values
        scaled = (weights - low) / (high - low).clamp_min(1e-12)
        filters = scaled.reshape(-1, *images.shape[1:])  # (count, 1, H, W)
        title = f"DBN: RBM 1 filters of {len(filters)} hidden units, each scaled"
        return {"rbm1_filters": ImageGrid(filters, title, 16)}
