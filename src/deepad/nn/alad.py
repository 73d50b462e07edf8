"""ALAD's networks (Zenati et al., ICDM 2018): encoder, generator and three discriminators."""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrize import cached

from deepad.nn.mlp import MLP

__all__ = ["Discriminator", "ALADNet"]


class Discriminator(nn.Module):
    """Joint discriminator on a concatenated pair: ``features`` (hidden layers) then a 1-unit logit ``head``.

    Hidden layers are ``Linear -> LeakyReLU(0.2) -> Dropout``; with
    ``spectral_norm`` every linear layer is spectrally normalised (the
    ALAD paper's stabilised variant).  In eval mode spectral normalisation
    reuses its stored singular vectors, so outputs are deterministic.
    """

    def __init__(
        self, in_dim: int, hidden_dims: Sequence[int], *, dropout: float = 0.2, spectral_norm: bool = True
    ) -> None:
        super().__init__()

        def linear(a: int, b: int) -> nn.Module:
            layer = nn.Linear(a, b)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = []
        prev = int(in_dim)
        for width in hidden_dims:
            layers += [linear(prev, int(width)), nn.LeakyReLU(0.2)]
            if dropout and dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            prev = int(width)
        self.features = nn.Sequential(*layers)
        self.head = linear(prev, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logit, features)`` of the pair ``(a, b)``; ``logit`` has shape ``(n,)``."""
        f = self.features(torch.cat([a, b], dim=1))
        return self.head(f).squeeze(1), f


class ALADNet(nn.Module):
    """Encoder ``E: x -> z``, generator ``G: z -> x`` and discriminators ``D_xz``, ``D_xx``, ``D_zz``."""

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        disc_hidden_dims: Sequence[int],
        *,
        activation: str = "leaky_relu",
        dropout: float = 0.2,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.encoder = MLP(n_features, hidden_dims, latent_dim, activation=activation)
        self.generator = MLP(latent_dim, list(hidden_dims)[::-1], n_features, activation=activation)
        kw = dict(dropout=dropout, spectral_norm=spectral_norm)
        self.d_xz = Discriminator(n_features + latent_dim, disc_hidden_dims, **kw)
        self.d_xx = Discriminator(2 * n_features, disc_hidden_dims, **kw)
        self.d_zz = Discriminator(2 * latent_dim, disc_hidden_dims, **kw)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.generator.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d_xz.parameters(), *self.d_xx.parameters(), *self.d_zz.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cycle reconstruction ``G(E(x))``."""
        return self.generator(self.encoder(x))

    def adversarial_logits(
        self, x: torch.Tensor, z: torch.Tensor, *, detach_generators: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the three discriminators on their "real" and "fake" pairs, each of shape ``(3, n)``.

        Rows are ``D_xz``: ``(x, E(x))`` vs ``(G(z), z)``; ``D_xx``: ``(x, x)``
        vs ``(x, G(E(x)))``; ``D_zz``: ``(z, z)`` vs ``(z, E(G(z)))``.  Real and
        fake pairs go through each discriminator as one batch (three calls,
        not six), and spectrally normalised weights are computed once.
        ``detach_generators`` runs ``E`` and ``G`` without gradients (the
        discriminator step).
        """
        n = x.shape[0]
        with torch.no_grad() if detach_generators else contextlib.nullcontext():
            z_hat = self.encoder(x)
            x_rec, x_gen = self.generator(torch.cat([z_hat, z])).split(n)
            z_rec = self.encoder(x_gen)
        with cached():
            xz, _ = self.d_xz(torch.cat([x, x_gen]), torch.cat([z_hat, z]))
            xx, _ = self.d_xx(torch.cat([x, x]), torch.cat([x, x_rec]))
            zz, _ = self.d_zz(torch.cat([z, z]), torch.cat([z, z_rec]))
        logits = torch.stack([xz, xx, zz])
        return logits[:, :n], logits[:, n:]

    def feature_matching_score(self, x: torch.Tensor) -> torch.Tensor:
        """``||f_xx(x, x) - f_xx(x, G(E(x)))||_1`` per row, ``f_xx`` = ``D_xx``'s last hidden layer."""
        n = x.shape[0]
        with cached():
            _, f = self.d_xx(torch.cat([x, x]), torch.cat([x, self(x)]))
        return (f[:n] - f[n:]).abs().sum(dim=1)
