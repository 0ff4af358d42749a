"""Deep belief network: a stack of restricted Boltzmann machines, then a linear classifier.

Study A `dbn`: RBM 784-512 and RBM 512-512 (W ~ N(0, 0.01^2), zero biases) pretrained greedily
with CD-1 (objectives/contrastive_divergence.py, a stage per RBM, binary visible
reconstructions), then a Linear(512, 10) on the top layer's hidden probabilities, fine-tuned
with everything else (Adam 1e-3, no gradient clipping); 671,002 parameters, 98.44%.
`--model-option variant=improved` is mnistbench's earlier recipe: mean-field visible
reconstructions and a 5-epoch linear probe of the head before fine-tuning (it was run with
--grad-clip 1.0). References: Hinton, Osindero & Teh (2006), "A fast learning algorithm for
deep belief nets"; Hinton (2010), "A practical guide to training RBMs" (UTML TR 2010-003).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from mnistbench.models.registry import register_model
from mnistbench.options import StageOption
from mnistbench.recipes import Recipe, contrastive_divergence, cross_entropy, linear_probe

CD_LEARNING_RATE = 0.05  # plain CD update, study A
CD_GIBBS_STEPS = 1  # CD-1
CD_EPOCHS = 5  # per RBM, study A

VARIANT = StageOption(
    "variant",
    str,
    "study",
    help="'study': study A's stages (CD-1 with binary visibles, then fine-tune all); "
    "'improved': mean-field visibles and a 5-epoch linear probe before fine-tuning",
    choices=("study", "improved"),
)


def _pretraining(sample_visible: bool) -> tuple:
    return tuple(
        contrastive_divergence(
            layer, f"pretrain_rbm{layer + 1}", CD_EPOCHS, CD_LEARNING_RATE, CD_GIBBS_STEPS,
            sample_visible,
        )
        for layer in (0, 1)
    )  # fmt: skip


class RBM(nn.Module):
    """Bernoulli-Bernoulli RBM, energy E(v, h) = -v.b_v - h.b_h - h W v.

    `weight` is (hidden, visible), laid out like nn.Linear's, so the up pass is F.linear.
    Contrastive divergence updates these tensors directly (no autograd); the classifier's
    fine-tuning reaches `weight` and `hidden_bias` through autograd like any Linear.
    """

    def __init__(self, visible: int, hidden: int, init_std: float = 0.01):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(hidden, visible) * init_std)
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))

    @property
    def visible_size(self) -> int:
        return self.weight.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[0]

    def hidden_probabilities(self, visible: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v): (B, visible) -> (B, hidden)."""
        return torch.sigmoid(F.linear(visible, self.weight, self.hidden_bias))

    def visible_probabilities(self, hidden: torch.Tensor) -> torch.Tensor:
        """p(v = 1 | h): (B, hidden) -> (B, visible)."""
        return torch.sigmoid(F.linear(hidden, self.weight.t(), self.visible_bias))

    def free_energy(self, visible: torch.Tensor) -> torch.Tensor:
        """F(v) = -v.b_v - sum_j softplus(W_j v + b_j), per row: (B, visible) -> (B,)."""
        return -visible @ self.visible_bias - F.softplus(
            F.linear(visible, self.weight, self.hidden_bias)
        ).sum(dim=1)


class DBN(nn.Module):
    """RBMs stacked bottom-up; the classifier reads the top RBM's hidden probabilities."""

    def __init__(self, sizes: tuple[int, ...] = (784, 512, 512), num_classes: int = 10):
        super().__init__()
        self.rbms = nn.ModuleList(RBM(v, h) for v, h in itertools.pairwise(sizes))
        self.num_features = sizes[-1]
        self.head = nn.Linear(sizes[-1], num_classes)

    def visible_input(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """What RBM `layer` sees: the pixels (layer 0) or the hidden probabilities below it."""
        v = x.flatten(1)  # (B, 1, 28, 28) -> (B, 784)
        for rbm in self.rbms[:layer]:
            v = rbm.hidden_probabilities(v)
        return v

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.visible_input(x, len(self.rbms))  # (B, 784) -> (B, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="dbn",
    architecture="RBM 784-512, RBM 512-512 (CD-1 greedy pretraining), FC 512-10",
    # Study A's DBN (dbn_mnist.py): CD-1 at lr 0.05 for 5 epochs per RBM (batch = the run's,
    # 64), the visible reconstruction sampled to 0/1, RBM 2 on RBM 1's hidden probabilities;
    # then "fine-tune all" with the run's optimizer (Adam 1e-3, no clipping) for the run's
    # epochs (--epochs, 10 by default) from a freshly initialised head.
    recipe=Recipe(
        stages=(*_pretraining(sample_visible=True), cross_entropy("finetune")),
        defaults={
            "epochs": 10,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 1e-3,
            # Stated so today's runs hash apart from those recorded before the variants
            # existed (the improved stages, with grad_clip 1.0 and no options).
            "model_options": {"variant": "study"},
        },
        variant=VARIANT,
        variants={
            "improved": (
                *_pretraining(sample_visible=False),
                linear_probe("probe", epochs=5, grad_clip=1.0),
                cross_entropy("finetune"),
            )
        },
    ),
    # CD updates the RBMs without autograd, and the classifier never reads the visible biases
    tags=("no_autograd",),
    input_scaling="unit",  # Bernoulli visible units: pixels in [0, 1], not binarised
)
def dbn(num_classes: int = 10) -> DBN:
    return DBN(num_classes=num_classes)
