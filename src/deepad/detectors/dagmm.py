"""Deep Autoencoding Gaussian Mixture Model (DAGMM)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from deepad.detectors._neural import NeuralDetector
from deepad.nn.dagmm import DAGMMNet, gmm_energy, gmm_parameters, stable_cholesky
from deepad.training import Step, batched_apply, torch_context


class DAGMM(NeuralDetector):
    """Autoencoder and Gaussian mixture trained jointly; the anomaly score is the sample energy.

    Paper: Zong et al., "Deep Autoencoding Gaussian Mixture Model for
    Unsupervised Anomaly Detection" (ICLR 2018).

    Why it works: a compression network (autoencoder) maps each row to
    ``z = [z_c, ||x - x̂|| / ||x||, cos(x, x̂)]`` -- a low-dimensional code
    plus two reconstruction-error features -- and an estimation network
    assigns ``z`` soft memberships over ``n_components`` Gaussians.  Both are
    trained end to end on

        ``||x - x̂||² + lambda_energy · mean_i E(z_i) + lambda_cov · Σ_k Σ_j 1/Σ_kjj``

    where the mixture (phi, mu, Sigma) is estimated from the memberships of
    each mini-batch.  Normal rows end up in dense mixture regions with small
    reconstruction error; anomalies land in low-density regions *or*
    reconstruct badly, and both raise the energy.

    Scoring rule: ``score(x) = E(z) = -log Σ_k phi_k N(z; mu_k, Sigma_k)``
    under *fixed* mixture parameters ``phi_``, ``mu_``, ``cov_`` estimated
    once from the whole training set after training (eval mode, no dropout).
    Fixing them makes the score deterministic and independent of batch
    composition, unlike re-estimating the mixture from the scored batch.
    ``cov_`` includes the ``cov_eps · I`` stabiliser used in training.  The
    energy is computed from Cholesky factors in float64.

    Parameters beyond the shared neural vocabulary (see
    :class:`~deepad.detectors._neural.NeuralDetector`):

    n_components:
        number of mixture components (the paper uses 2-4).
    estimation_hidden_dims:
        hidden widths of the estimation network; ``dropout`` applies there
        (the paper: one layer of 10 units, dropout 0.5).
    lambda_energy, lambda_cov:
        loss weights; the paper's 0.1 and 0.005 by default.
    cov_eps:
        added to every covariance diagonal for numerical stability.
    activation:
        hidden activation of all networks (the paper uses tanh).

    ``preprocessing`` defaults to ``"minmax"``: the relative reconstruction
    distance divides by ``||x||``, which standardised data makes tiny for the
    most typical rows (those near the mean).  :meth:`encode` returns the full
    ``z`` the mixture is fitted on; :meth:`component_memberships` the soft
    assignments.  Training uses full mini-batches only (a 1-row batch has a
    degenerate covariance).
    """

    def __init__(
        self,
        hidden_dims: Sequence[int] = (60, 30, 10),
        latent_dim: int = 1,
        *,
        n_components: int = 4,
        estimation_hidden_dims: Sequence[int] = (10,),
        activation: str = "tanh",
        dropout: float = 0.5,
        lambda_energy: float = 0.1,
        lambda_cov: float = 0.005,
        cov_eps: float = 1e-6,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        patience: int = 10,
        lr_schedule: str | None = None,
        preprocessing: str | None = "minmax",
        contamination: float = 0.1,
        device: str = "auto",
        n_threads: int | None = None,
        random_state=None,
        verbose: bool = False,
    ):
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.n_components = n_components
        self.estimation_hidden_dims = estimation_hidden_dims
        self.activation = activation
        self.dropout = dropout
        self.lambda_energy = lambda_energy
        self.lambda_cov = lambda_cov
        self.cov_eps = cov_eps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.preprocessing = preprocessing
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ hooks
    def _check_params(self) -> None:
        if int(self.n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}.")
        if int(self.latent_dim) < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}.")
        for name in ("lambda_energy", "lambda_cov"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not float(self.cov_eps) > 0:
            raise ValueError(f"cov_eps must be > 0, got {self.cov_eps}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    def _fit(self, X, y, seed, callbacks=None):
        self._check_params()
        super()._fit(X, y, seed, callbacks=callbacks)

    def _build_module(self, n_features: int) -> DAGMMNet:
        return DAGMMNet(
            n_features,
            list(self.hidden_dims),
            int(self.latent_dim),
            int(self.n_components),
            list(self.estimation_hidden_dims),
            activation=self.activation,
            dropout=float(self.dropout),
        )

    def _make_trainer(self, device, callbacks):
        trainer = super()._make_trainer(device, callbacks)
        trainer.drop_last = True
        return trainer

    def _steps(self, module: DAGMMNet, data):
        lambda_energy, lambda_cov, cov_eps = float(self.lambda_energy), float(self.lambda_cov), float(self.cov_eps)

        def dagmm_loss(batch):
            x = batch[0]
            x_hat, z, gamma = module(x)
            # The mixture algebra runs in float64: covariances of a few
            # dozen rows are badly conditioned in float32.
            z64, gamma64 = z.double(), gamma.double()
            phi, mu, cov = gmm_parameters(z64, gamma64, cov_eps)
            energy = gmm_energy(z64, phi, mu, cov)
            penalty = (1.0 / cov.diagonal(dim1=-2, dim2=-1)).sum()
            recon = ((x - x_hat) ** 2).sum(dim=1).mean()
            return recon + (lambda_energy * energy.mean() + lambda_cov * penalty).to(recon.dtype)

        return [Step("loss", dagmm_loss, list(module.parameters()))]

    def _after_training(self, module: DAGMMNet, data) -> None:
        """Mixture parameters over the whole training set, once, with the trained networks in eval mode."""
        module.eval()
        k = int(self.n_components)
        out = torch.as_tensor(
            batched_apply(lambda xb: torch.cat(module(xb)[1:], dim=1), data[0], device=data[0].device)
        )
        z, gamma = out[:, :-k], out[:, -k:]
        gamma = gamma / gamma.sum(dim=1, keepdim=True)  # exact in float64: phi_ sums to 1
        phi, mu, cov = gmm_parameters(z, gamma, float(self.cov_eps))
        stable_cholesky(cov)  # fail now, with a clear message, rather than at scoring time
        self.phi_ = phi.numpy()
        self.mu_ = mu.numpy()
        self.cov_ = cov.numpy()

    def _score_batch(self, module: DAGMMNet, xb: torch.Tensor) -> torch.Tensor:
        _, z = module.represent(xb)
        dev = xb.device
        phi, mu, cov = (torch.as_tensor(a, dtype=torch.float64, device=dev) for a in (self.phi_, self.mu_, self.cov_))
        return gmm_energy(z.double(), phi, mu, cov)

    def _encode_batch(self, module: DAGMMNet, xb: torch.Tensor) -> torch.Tensor:
        return module.represent(xb)[1]

    # ------------------------------------------------------------------ extras
    def component_memberships(self, X) -> np.ndarray:
        """Soft memberships ``gamma`` of each row over the mixture components, shape ``(n, n_components)``."""
        Xv = self._validate_for_scoring(X)
        self.module_.eval()
        with torch_context(None, self._device, self.n_threads):
            gamma = batched_apply(lambda xb: self.module_(xb)[2], self._transform(Xv), device=self._device)
        return gamma / gamma.sum(axis=1, keepdims=True)
