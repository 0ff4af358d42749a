"""Multi-layer perceptrons on flattened 28x28 images.

Study A `mlp`: 784-512-256-10, Kaiming-normal init, 535,818 parameters, 97.81% after 3 epochs.
Study B `mlp_784_512`: 784-512-10, PyTorch's default init, 407,050 parameters; the study gives
no accuracy figure we can cite, so none is registered.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from mnistbench.models.registry import register_model


class MLP(nn.Module):
    """Fully connected ReLU network; `forward_features` is the last hidden layer."""

    def __init__(
        self,
        hidden: tuple[int, ...],
        num_classes: int = 10,
        in_features: int = 784,
        kaiming_init: bool = True,  # False keeps nn.Linear's default (study B's tutorial code)
    ):
        super().__init__()
        widths = (in_features, *hidden)
        self.hidden = nn.Sequential(
            *[
                layer
                for w_in, w_out in itertools.pairwise(widths)
                for layer in (nn.Linear(w_in, w_out), nn.ReLU(inplace=True))
            ]
        )
        self.num_features = widths[-1]
        self.head = nn.Linear(self.num_features, num_classes)
        for module in self.modules() if kaiming_init else ():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x.flatten(1))  # (B, 1, 28, 28) -> (B, 784) -> (B, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


_STUDY_A = {"epochs": 3, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "grad_clip": 1.0}


@register_model(
    family="mlp",
    architecture="MLP 784-512-256-10, ReLU, Kaiming-normal",
    recipe=_STUDY_A,
)
def mlp(num_classes: int = 10) -> MLP:
    return MLP(hidden=(512, 256), num_classes=num_classes)


_STUDY_B = {"epochs": 5, "batch_size": 64, "optimizer": "adam", "lr": 1e-3}


@register_model(
    family="mlp",
    architecture="MLP 784-512-10, ReLU",
    recipe=_STUDY_B,
)
def mlp_784_512(num_classes: int = 10) -> MLP:
    return MLP(hidden=(512,), num_classes=num_classes, kaiming_init=False)
