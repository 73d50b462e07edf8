"""Variational autoencoder network (Gaussian encoder, Gaussian decoder mean)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from deepad.nn.mlp import MLP

#: ``log sigma^2`` of the encoder is clamped to this range: exp() of an
#: unbounded logvar overflows float32 on outliers far from the training data.
LOGVAR_RANGE = (-12.0, 12.0)


class VAENet(nn.Module):
    """Encoder ``d -> hidden -> 2*latent`` giving ``(mu, logvar)``; decoder ``latent -> reversed(hidden) -> d``.

    The decoder outputs the mean of a Gaussian observation model; its
    variance is the detector's business, not the network's.
    """

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        *,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.encoder = MLP(n_features, hidden_dims, 2 * self.latent_dim, activation=activation, dropout=dropout)
        self.decoder = MLP(self.latent_dim, list(hidden_dims)[::-1], n_features, activation=activation, dropout=dropout)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Reparameterised draw ``z = mu + sigma * eps`` with one noise row per data row."""
        return mu + torch.exp(0.5 * logvar) * eps

    def decode_shared(self, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Decode ``z_s = mu + sigma * eps_s`` for each of the S rows of ``eps``; returns ``(n, S, d)``."""
        std = torch.exp(0.5 * logvar)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * eps.unsqueeze(0)
        n, s, k = z.shape
        return self.decoder(z.reshape(n * s, k)).reshape(n, s, -1)

    @staticmethod
    def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per row, in closed form."""
        return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the posterior mean (no sampling)."""
        mu, _ = self.encode(x)
        return self.decoder(mu)
