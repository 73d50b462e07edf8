"""Fully connected blocks shared by the tabular detectors."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


def activation_layer(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}") from None


class MLP(nn.Sequential):
    """``Linear -> [BatchNorm] -> activation -> [Dropout]`` for each hidden width, then a final ``Linear``.

    ``bias=False`` removes every bias term (and batch-norm's affine shift),
    which Deep SVDD needs: a network with biases can map everything to the
    centre and reach zero loss without learning anything (Ruff et al., 2018,
    Prop. 2).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int,
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        bias: bool = True,
        batch_norm: bool = False,
        final_activation: str | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        prev = int(in_dim)
        for width in hidden_dims:
            layers.append(nn.Linear(prev, int(width), bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(width), affine=bias))
            layers.append(activation_layer(activation))
            if dropout and dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            prev = int(width)
        layers.append(nn.Linear(prev, int(out_dim), bias=bias))
        if final_activation:
            layers.append(activation_layer(final_activation))
        super().__init__(*layers)


class AutoEncoderNet(nn.Module):
    """Encoder ``d -> hidden -> latent`` and a mirrored decoder ``latent -> reversed(hidden) -> d``."""

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = MLP(
            n_features, hidden_dims, latent_dim, activation=activation, dropout=dropout, batch_norm=batch_norm
        )
        self.decoder = MLP(
            latent_dim,
            list(hidden_dims)[::-1],
            n_features,
            activation=activation,
            dropout=dropout,
            batch_norm=batch_norm,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
