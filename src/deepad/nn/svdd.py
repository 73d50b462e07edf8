"""Bias-free feature map for Deep SVDD, and the mirrored decoder used to pre-train it."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from deepad.nn.mlp import MLP


class SVDDNet(nn.Module):
    """``phi: d -> hidden -> latent`` without any bias term.

    Ruff et al. (2018, Prop. 2): with a bias in the last layer the network
    can output the constant ``c`` for every input and reach zero loss
    without learning anything, so every layer here is bias-free.
    """

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        *,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = MLP(n_features, hidden_dims, latent_dim, activation=activation, dropout=dropout, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class SVDDAutoEncoder(nn.Module):
    """``SVDDNet`` followed by a mirrored bias-free decoder, for the paper's autoencoder pre-training."""

    def __init__(
        self,
        net: SVDDNet,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        *,
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.decoder = MLP(
            latent_dim, list(hidden_dims)[::-1], n_features, activation=activation, dropout=dropout, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.net(x))
