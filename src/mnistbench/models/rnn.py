"""Recurrent networks that read an image row by row: 28 rows of 28 pixels as 28 time steps.

Study B `rnn_rows`: one nn.RNN(28, 128) layer with tanh, the last step's hidden state into
Linear(128, 10); 21,514 parameters. The study also offers LSTM and GRU cells (`lstm_rows`
82,186 and `gru_rows` 61,962 parameters, counted). Study B states no accuracy we can cite.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistbench.models.registry import register_model

_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RowRNN(nn.Module):
    """One recurrent layer over image rows; `forward_features` is the last step's hidden state."""

    def __init__(
        self, cell: str = "rnn", row_width: int = 28, hidden: int = 128, num_classes: int = 10
    ):
        super().__init__()
        # batch_first: the time axis is dim 1, one step per image row, top row first
        self.rnn = _CELLS[cell](row_width, hidden, batch_first=True)
        self.num_features = hidden
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, H, C, W) -> (B, H, C*W): time axis = dim 1 (H = 28 rows),
        # features = the row's pixels; a view for the 1-channel images used here.
        rows = x.permute(0, 2, 1, 3).flatten(2)
        outputs, _ = self.rnn(rows)  # (B, T=28, hidden): top-layer state after every row
        return outputs[:, -1]  # (B, hidden): after the last (bottom) row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


_STUDY_B = {"epochs": 5, "batch_size": 64, "optimizer": "adam", "lr": 1e-3}


@register_model(
    family="rnn",
    architecture="RNN(28, 128) tanh over 28 rows, last step -> FC 128-10",
    recipe=_STUDY_B,
)
def rnn_rows(num_classes: int = 10) -> RowRNN:
    return RowRNN("rnn", num_classes=num_classes)


@register_model(
    family="rnn",
    architecture="LSTM(28, 128) over 28 rows, last step -> FC 128-10",
    recipe=_STUDY_B,
)
def lstm_rows(num_classes: int = 10) -> RowRNN:
    return RowRNN("lstm", num_classes=num_classes)


@register_model(
    family="rnn",
    architecture="GRU(28, 128) over 28 rows, last step -> FC 128-10",
    recipe=_STUDY_B,
)
def gru_rows(num_classes: int = 10) -> RowRNN:
    return RowRNN("gru", num_classes=num_classes)
