"""The torch networks of the neural window detectors in :mod:`deepad.detectors.series`.

:class:`_GRUNet` is :class:`~deepad.detectors.series.GRUForecaster`'s next-step
forecaster and :class:`_TCNAutoEncoderNet` is
:class:`~deepad.detectors.series.TCNAutoEncoder`'s window autoencoder.  Saved
models hold only their ``state_dict`` (the detector rebuilds the network with
``_build_module``), so no class path of theirs is recorded in ``model.json``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class _GRUNet(nn.Module):
    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(
            n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.head = nn.Linear(hidden, n_features)

    def forward(self, history: torch.Tensor) -> torch.Tensor:  # (b, w-1, d) -> (b, d)
        out, _ = self.gru(history)
        return self.head(out[:, -1, :]) + history[:, -1, :]  # predict the change from the last value


class _TCNAutoEncoderNet(nn.Module):
    def __init__(self, n_features: int, channels: Sequence[int], latent: int, kernel_size: int, dropout: float):
        super().__init__()

        def block(c_in, c_out, dilation, act=True):
            layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, kernel_size, padding="same", dilation=dilation)]
            if act:
                layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
            return layers

        enc: list[nn.Module] = []
        c = n_features
        for i, h in enumerate(channels):
            enc += block(c, int(h), 2**i)
            c = int(h)
        enc += block(c, latent, 1, act=False)
        dec: list[nn.Module] = []
        c = latent
        for i, h in reversed(list(enumerate(channels))):
            dec += block(c, int(h), 2**i)
            c = int(h)
        dec += block(c, n_features, 1, act=False)
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # (b, w, d) -> (b, w, d)
        x = windows.transpose(1, 2)
        return self.decoder(self.encoder(x)).transpose(1, 2)
