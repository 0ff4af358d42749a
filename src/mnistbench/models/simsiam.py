"""SimSiam self-supervised CNN probed by LightGBM (study A `simsiam_lgbm`).

Encoder: three [conv3x3 pad 1, ReLU, maxpool2] stages (32, 64, 128 channels), flattened to 1152
(no BatchNorm), 92,672 parameters. Projector Linear(1152,2048) BN ReLU Linear(2048,2048);
predictor Linear(2048,512) BN ReLU Linear(512,2048); 8,755,200 parameters in all, without the
linear probe head Linear(1152, 10). Published: 98.24% with LightGBM on the encoder output,
~47 s per pretraining epoch on CUDA.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model
from mnistbench.objectives.simsiam import SimSiamObjective
from mnistbench.options import StageOption
from mnistbench.recipes import Recipe, lightgbm_probe, linear_probe, pretext

# Which probe the run ends with: the published LightGBM alone (its one score is the run's
# figure), or the linear probe every pretrained family shares.
PROBE = StageOption(
    "probe",
    str,
    "lightgbm",
    help="the probe: 'lightgbm' (published) or 'linear' (the linear probe other families get)",
    choices=("lightgbm", "linear"),
)


def _stage(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]


class SimSiam(nn.Module):
    """Encoder + projector + predictor; `forward_features` is the 1152-d encoder output."""

    def __init__(self, num_classes: int = 10, dim: int = 2048):
        super().__init__()
        self.encoder = nn.Sequential(
            *_stage(1, 32), *_stage(32, 64), *_stage(64, 128), nn.Flatten()
        )  # (B, 1, 28, 28) -> (B, 128, 3, 3) -> (B, 1152)
        features = 128 * 3 * 3
        self.projector = nn.Sequential(
            nn.Linear(features, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim)
        )
        self.predictor = nn.Sequential(
            nn.Linear(dim, dim // 4), nn.BatchNorm1d(dim // 4), nn.ReLU(), nn.Linear(dim // 4, dim)
        )
        self.num_features = features
        self.head = nn.Linear(features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@register_model(
    family="simsiam",
    architecture="SimSiam CNN encoder 32-64-128 (1152-d) + projector/predictor; LightGBM probe",
    # SimSiam for the run's epochs; then LightGBM on the frozen 1152-d encoder output, as the
    # study (its score is the run's figure: no other probe's epochs enter the maximum over
    # epochs). --model-option probe=linear: the shared linear probe instead; views=combined:
    # the earlier views; lgbm_train_size=N.
    recipe=Recipe(
        stages=(pretext(SimSiamObjective), lightgbm_probe("probe")),
        defaults={
            "epochs": 5,
            "batch_size": 512,
            "optimizer": "adam",
            "lr": 1e-3,
            # Stated so today's runs hash apart from those recorded before (combined views, a
            # linear probe before LightGBM, no options).
            "model_options": {"views": "torchvision"},
        },
        variant=PROBE,
        variants={"linear": (pretext(SimSiamObjective), linear_probe("probe", epochs=10))},
    ),
    tags=("pretrain",),
)
def simsiam_lgbm(num_classes: int = 10) -> SimSiam:
    return SimSiam(num_classes=num_classes)
