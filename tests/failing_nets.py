"""An outside model that builds, passes the probe batch, then breaks on its second training
step: a trial that fails while it trains (tests/test_executors.py), in any worker process."""

from torch import nn


class BreaksWhileTraining(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.head = nn.Linear(28 * 28, num_classes)
        self.training_steps = 0

    def forward(self, x):
        if self.training:
            self.training_steps += 1
            if self.training_steps > 1:
                raise RuntimeError("this model breaks on its second training step")
        return self.head(x.flatten(1))  # (B, 1, 28, 28) -> (B, 784) -> (B, classes)


def breaks_while_training(num_classes: int = 10) -> nn.Module:
    return BreaksWhileTraining(num_classes)
