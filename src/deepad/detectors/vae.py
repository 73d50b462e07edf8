"""Variational autoencoder anomaly detector."""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import torch
from torch import nn

from deepad.base import check_int_param
from deepad.detectors._neural import NeuralDetector
from deepad.nn.vae import VAENet
from deepad.training import Step, batched_apply, torch_context


class VAE(NeuralDetector):
    """Variational autoencoder; the anomaly score is the negative ELBO of the row.

    Papers: Kingma & Welling, "Auto-Encoding Variational Bayes" (ICLR 2014);
    as an anomaly detector, An & Cho, "Variational autoencoder based anomaly
    detection using reconstruction probability" (SNU tech. report, 2015).

    Model: Gaussian encoder ``q(z|x) = N(mu(x), diag(sigma^2(x)))``, standard
    normal prior, Gaussian decoder ``p(x|z) = N(x̂(z), I)`` on the
    preprocessed (by default standardised) features.  The observation
    variance is *fixed* at 1: on standardised data that is the scale of
    every feature, and a learned variance lets the model shrink it on
    easy features until their likelihood dominates the score.  With unit
    variance the reconstruction negative log-likelihood is
    ``||x - x̂||^2 / 2`` (dropping the constant ``d/2 log 2 pi``).

    Training minimises ``E_q[||x - x̂(z)||^2 / 2] + beta * KL(q(z|x) || p(z))``
    with one reparameterised draw per row (``beta=1`` is the ELBO; ``beta>1``
    is the beta-VAE of Higgins et al., 2017).

    Scoring rule: the negative ELBO, an upper bound on ``-log p(x)``, so
    rows the model finds improbable score high -- both rows it cannot
    reconstruct and rows whose code lies far out in the latent prior::

        score(x) = 1/S sum_s ||x - x̂(mu(x) + sigma(x) * eps_s)||^2 / 2  +  KL(q(z|x) || N(0, I))

    The S = ``n_samples`` noise vectors ``eps_s`` are *common random
    numbers*: one ``(n_samples, latent_dim)`` matrix drawn from the seed at
    fit time and kept as ``mc_noise_`` (saved with the model).  Every row is
    scored with the same draws, so a row's score is deterministic and does
    not depend on which other rows share its batch, and differences between
    rows are not blurred by Monte-Carlo noise.  The KL term is unweighted
    in the score (it is the ELBO) whatever ``beta`` was used in training.

    :meth:`feature_errors` gives the per-feature expected squared error
    ``1/S sum_s (x_j - x̂_j)^2``, for explanations.

    ``batch_size`` defaults to 256: on six ADBench sets it halved the fit
    time of 128 for a mean one-class ROC-AUC of 0.934 instead of 0.937.

    Parameters beyond the shared neural vocabulary (see
    :class:`~deepad.detectors._neural.NeuralDetector`): ``beta`` (KL weight
    in training), ``n_samples`` (Monte-Carlo draws in scoring) and
    ``activation``.
    """

    _scores_any_layout = True  # scored through NeuralDetector._apply: rows are copied batch by batch
    _checks_finite = True  # ... and each batch's float32 range check also finds NaN and infinity

    def __init__(
        self,
        hidden_dims: Sequence[int] = (64, 32),
        latent_dim: int = 8,
        *,
        beta: float = 1.0,
        n_samples: int = 10,
        activation: str = "relu",
        dropout: float = 0.0,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.1,
        patience: int = 10,
        lr_schedule: str | None = None,
        preprocessing: str | None = "standard",
        contamination: float = 0.1,
        device: str = "auto",
        n_threads: int | None = None,
        random_state=None,
        verbose: bool = False,
    ):
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.beta = beta
        self.n_samples = n_samples
        self.activation = activation
        self.dropout = dropout
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

    # ------------------------------------------------------------------ validation and fitting
    def _check_params(self) -> None:
        check_int_param(self.latent_dim, "latent_dim", allowed="a positive integer")
        check_int_param(self.n_samples, "n_samples", allowed="a positive integer (Monte-Carlo draws per row)")
        if not isinstance(self.beta, numbers.Real) or not np.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f"beta must be a finite number >= 0 (the KL weight), got {self.beta!r}.")

    def _fit(self, X, y, seed, callbacks=None) -> None:
        self._check_params()
        # Common random numbers for scoring, drawn from the seed with NumPy's own
        # generator (global RNG untouched) and saved with the model.
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE1B0]))
        self.mc_noise_ = rng.standard_normal((int(self.n_samples), int(self.latent_dim))).astype(np.float32)
        super()._fit(X, y, seed, callbacks=callbacks)

    def _build_module(self, n_features: int) -> nn.Module:
        return VAENet(
            n_features, list(self.hidden_dims), int(self.latent_dim), activation=self.activation, dropout=self.dropout
        )

    def _noise(self, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(self.mc_noise_, dtype=torch.float32, device=device)

    def _neg_elbo_terms(self, module: VAENet, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row ``(reconstruction NLL averaged over the common draws, KL)``."""
        mu, logvar = module.encode(xb)
        recon = module.decode_shared(mu, logvar, self._noise(xb.device))
        nll = 0.5 * (recon - xb.unsqueeze(1)).pow(2).sum(dim=-1).mean(dim=1)
        return nll, module.kl_divergence(mu, logvar)

    def _steps(self, module, data):
        beta = float(self.beta)

        def neg_elbo(batch):
            x = batch[0]
            if not module.training:
                # validation (early stopping): the low-variance common-random-number estimate
                nll, kl = self._neg_elbo_terms(module, x)
                return (nll + beta * kl).mean()
            mu, logvar = module.encode(x)
            recon = module.decoder(module.sample(mu, logvar, torch.randn_like(mu)))
            nll = 0.5 * (recon - x).pow(2).sum(dim=1)
            return (nll + beta * module.kl_divergence(mu, logvar)).mean()

        return [Step("loss", neg_elbo, list(module.parameters()))]

    @property
    def _inference_batch_size(self) -> int:
        """Rows per scoring batch: about 16,384 reconstructions (rows x ``n_samples``), a power of two, 64-4096.

        Each row is decoded ``n_samples`` times; at the neural detectors' 4,096 rows the ``(rows, S, d)``
        reconstructions outgrow the cache: 400,000 x 30 rows, S = 10, one thread, CPU s: 2.38 at 4,096 rows,
        1.08 at 1,024 (0.78 -> ~1 of the bare forward pass), scores bit-identical
        (``benchmarks/throughput.py --sections 3``).
        """
        fixed = self.__dict__.get("_inference_batch_rows")  # set explicitly (tests of batch invariance)
        if fixed is not None:
            return int(fixed)
        per_batch = max(1, 16_384 // max(1, int(self.n_samples)))
        return int(min(4096, max(64, 1 << (per_batch.bit_length() - 1))))

    @_inference_batch_size.setter
    def _inference_batch_size(self, rows: int) -> None:
        self.__dict__["_inference_batch_rows"] = int(rows)

    def _score_batch(self, module, xb: torch.Tensor) -> torch.Tensor:
        nll, kl = self._neg_elbo_terms(module, xb)
        return nll + kl

    def _encode_batch(self, module, xb: torch.Tensor) -> torch.Tensor:
        return module.encode(xb)[0]

    # ------------------------------------------------------------------ explanations
    def feature_errors(self, X) -> np.ndarray:
        """Per-feature expected squared reconstruction error ``1/S sum_s (x_j - x̂_{s,j})^2``, shape ``(n, d)``.

        Uses the same common draws as the score: half a row's sum is the
        reconstruction part of its score (the rest is the KL term).
        """
        Xv = self._validate_for_scoring(X)
        self.module_.eval()

        def errors(xb):
            mu, logvar = self.module_.encode(xb)
            recon = self.module_.decode_shared(mu, logvar, self._noise(xb.device))
            return (recon - xb.unsqueeze(1)).pow(2).mean(dim=1)

        bs = self._inference_batch_size
        with torch_context(None, self._device, self.n_threads):
            return batched_apply(errors, Xv, device=self._device, batch_size=bs, prepare=self._batch_transform(bs, Xv))
