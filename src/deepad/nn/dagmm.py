"""DAGMM's networks and the Gaussian-mixture algebra it trains through (Zong et al., ICLR 2018).

Everything here is plain, vectorised torch: no loops over rows or mixture
components, Cholesky factors instead of matrix inverses and determinants.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from deepad.nn.mlp import MLP

__all__ = ["DAGMMNet", "gmm_parameters", "gmm_energy", "stable_cholesky"]


class DAGMMNet(nn.Module):
    """Compression network (autoencoder) plus estimation network.

    ``forward(x)`` returns ``(x_hat, z, gamma)``: the reconstruction, the
    representation ``z = [z_c, relative Euclidean distance, cosine
    similarity]`` (``latent_dim + 2`` columns) and the soft mixture
    memberships ``gamma`` (rows sum to 1).
    """

    def __init__(
        self,
        n_features: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        n_components: int,
        estimation_hidden_dims: Sequence[int],
        *,
        activation: str = "tanh",
        dropout: float = 0.5,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.eps = float(eps)
        self.encoder = MLP(n_features, hidden_dims, latent_dim, activation=activation)
        self.decoder = MLP(latent_dim, list(hidden_dims)[::-1], n_features, activation=activation)
        self.estimation = MLP(
            latent_dim + 2, estimation_hidden_dims, n_components, activation=activation, dropout=dropout
        )

    def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_hat, z)`` with ``z = [z_c, ||x - x_hat|| / ||x||, cos(x, x_hat)]`` (paper, eq. 3)."""
        z_c = self.encoder(x)
        x_hat = self.decoder(z_c)
        x_norm = x.norm(dim=1)
        rel = (x - x_hat).norm(dim=1) / x_norm.clamp_min(self.eps)
        cos = nn.functional.cosine_similarity(x, x_hat, dim=1, eps=self.eps)
        return x_hat, torch.cat([z_c, rel.unsqueeze(1), cos.unsqueeze(1)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_hat, z = self.represent(x)
        gamma = torch.softmax(self.estimation(z), dim=1)
        return x_hat, z, gamma


def gmm_parameters(
    z: torch.Tensor, gamma: torch.Tensor, cov_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixture weights, means and covariances from soft memberships (paper, eq. 5).

    ``phi_k = mean_i gamma_ik``, ``mu_k = sum_i gamma_ik z_i / sum_i gamma_ik``,
    ``Sigma_k = sum_i gamma_ik (z_i - mu_k)(z_i - mu_k)^T / sum_i gamma_ik + cov_eps * I``.
    The ``cov_eps * I`` term keeps every ``Sigma_k`` positive definite (the
    paper adds a small value to the diagonal for the same reason).
    """
    weight = gamma.sum(dim=0)  # (K,)
    phi = weight / gamma.shape[0]
    denom = weight.clamp_min(torch.finfo(z.dtype).tiny).unsqueeze(1)
    mu = gamma.T @ z / denom  # (K, D)
    diff = z.unsqueeze(1) - mu.unsqueeze(0)  # (N, K, D)
    cov = torch.einsum("nk,nki,nkj->kij", gamma, diff, diff) / denom.unsqueeze(2)
    eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return phi, mu, cov + float(cov_eps) * eye


def stable_cholesky(cov: torch.Tensor, max_tries: int = 6) -> torch.Tensor:
    """Lower Cholesky factors of a stack of covariances; adds growing diagonal jitter only if one fails."""
    L, info = torch.linalg.cholesky_ex(cov)
    if not bool((info > 0).any()):
        return L
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    scale = cov.diagonal(dim1=-2, dim2=-1).abs().mean().clamp_min(1.0).detach()
    jitter = 1e-6
    for _ in range(max_tries):
        L, info = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        if not bool((info > 0).any()):
            return L
        jitter *= 10.0
    raise FloatingPointError(
        "DAGMM covariance matrix is not positive definite even with jitter; raise cov_eps or lower lr."
    )


def gmm_energy(
    z: torch.Tensor, phi: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor, chol: torch.Tensor | None = None
) -> torch.Tensor:
    """Sample energy ``E(z) = -log sum_k phi_k N(z; mu_k, Sigma_k)`` for each row (paper, eq. 6).

    Uses the Cholesky factor ``L_k`` (``Sigma_k = L_k L_k^T``):
    Mahalanobis terms by triangular solves and ``log|Sigma_k| = 2 sum log diag L_k``,
    combined with ``logsumexp`` -- no explicit inverse or determinant, so it
    stays finite where the paper's direct formula under/overflows.
    """
    L = stable_cholesky(cov) if chol is None else chol  # (K, D, D)
    diff = (z.unsqueeze(0) - mu.unsqueeze(1)).transpose(1, 2)  # (K, D, N)
    sol = torch.linalg.solve_triangular(L, diff, upper=False)  # (K, D, N)
    maha = (sol**2).sum(dim=1)  # (K, N)
    log_det = 2.0 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(dim=1)  # (K,)
    d = z.shape[1]
    log_prob = -0.5 * (maha + log_det.unsqueeze(1) + d * math.log(2.0 * math.pi))
    log_phi = torch.log(phi.clamp_min(torch.finfo(phi.dtype).tiny)).unsqueeze(1)
    return -torch.logsumexp(log_phi + log_prob, dim=0)
