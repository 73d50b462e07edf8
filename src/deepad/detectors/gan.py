"""GAN-based image detector: GANomaly, with a grid of generated samples saved during training."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from deepad.base import check_int_param
from deepad.detectors._image import ImageNeuralDetector
from deepad.detectors.images import _check_widths
from deepad.nn.gan import GANomalyNet
from deepad.training import Callback, Step, TensorBoardLogger, Trainer, batched_apply

__all__ = ["GANomaly", "SampleGrid", "sample_grid_image"]

_OUTPUTS = ("tanh", None)


class GANomaly(ImageNeuralDetector):
    """GANomaly: an adversarially trained encoder-decoder-encoder; the score is reconstruction plus discriminator feature residual.

    Paper: Akcay, Atapour-Abarghouei & Breckon, "GANomaly: Semi-Supervised
    Anomaly Detection via Adversarial Training" (ACCV 2018).

    Why it works: the generator ``G = (E, Dec, E2)`` learns to rebuild
    normal images ``x -> z = E(x) -> x̂ = Dec(z) -> ẑ = E2(x̂)`` while a
    discriminator ``D`` tells ``x`` from ``x̂``.  The adversarial
    (feature-matching) loss makes ``x̂`` look like a real normal image, not a
    blurry average, so an image of another kind is rebuilt as the nearest
    *normal* image: its pixels, and the discriminator's features of it,
    differ from the rebuilt ones.

    Training, as in the paper: per mini-batch two
    :class:`~deepad.training.Step` s through the shared trainer --

    * discriminator: ``BCE(D(x), 1) + BCE(D(x̂), 0)`` (halved);
    * generator: ``w_adv ||f(x) - f(x̂)||^2 + w_con |x - x̂|_1 + w_enc ||z - ẑ||^2``
      (each term a mean over its elements) with the paper's weights
      ``adversarial_weight=1``, ``contextual_weight=50``, ``encoder_weight=1``;
      ``f`` is ``D``'s last feature map (before its logit).

    Adam with betas ``(0.5, 0.999)`` and lr 2e-4 (DCGAN's settings, as the
    paper).  GAN losses do not fall towards a minimum, so there is no
    validation split or early stopping: training runs exactly ``epochs``.
    Not reproduced from the reference code: re-initialising ``D`` when its
    loss collapses below 1e-5 (never happened in our MNIST runs).

    Scoring rule (one forward pass in eval mode: batch norm uses its running
    statistics, there is no noise or dropout, so scores are deterministic and
    independent of the batch):

    ``score(x) = R(x) / R_train + feature_weight * F(x) / F_train``, with

    * ``R(x) = mean_pixels (x - x̂)^2`` -- the reconstruction residual;
    * ``F(x) = mean_features (f(x) - f(x̂))^2`` -- the discriminator feature
      residual (f-AnoGAN's "izi_f" score, Schlegl et al., 2019, uses the same
      pair);
    * ``R_train``, ``F_train`` -- their means over the training images
      (``score_scale_``), so the two terms are in comparable units and
      ``feature_weight`` is their relative weight.

    The paper scores ``||z - ẑ||^2``; on one-class MNIST the residuals above
    rank better (the study, and the choice of ``latent_dim=32`` and 15
    epochs: ``docs/design/ganomaly.md``).  Measured (``DEEPAD_NUM_THREADS=1
    python benchmarks/run_images.py /work/shared/datasets/mnist --detectors
    GANomaly --seeds 3``): mean ROC-AUC 0.962 over the ten digits, 3 seeds.

    :meth:`anomaly_map` is ``|x - x̂|`` averaged over channels, ``(N, H, W)``;
    :meth:`reconstruct` returns ``x̂``.

    Architecture (DCGAN, as the paper, but for any image size):
    ``len(hidden_dims)`` stages of ``4x4 stride-2 conv -> batch norm -> leaky
    ReLU`` and a last conv whose kernel spans what is left, for ``E``, ``E2``
    and ``D`` (``D`` uses ``disc_hidden_dims``, default the same widths), and
    the transposed mirror for ``Dec`` (:mod:`deepad.nn.gan`).

    Pixel range: as in DCGAN and the paper, the decoder ends in ``tanh`` and
    the images are mapped to ``[-1, 1]``: ``preprocessing="minmax"`` (the
    default) maps each channel's training range ``[min, max]`` there (saved
    as ``scaler_center_``/``scaler_scale_``), whatever the loader did
    (``[0, 1]`` pixels or standardised ones).  This matters: the flat
    background of digits then sits at ``tanh``'s saturated end and is
    rebuilt exactly, so the residual is the digit's shape alone (measured:
    ``docs/design/ganomaly.md``).  ``preprocessing`` may
    also be ``"standard"`` or ``None`` (then set ``output_activation=None``
    for unbounded pixels).

    Sample grids: with ``sample_dir`` set, every ``sample_every`` epochs (and
    after the last) a PNG ``samples_epoch{NNNN}.png`` is written there: row 1
    holds 8 fixed training images, row 2 their reconstructions ``x̂``, row 3
    images *generated* by the decoder from codes drawn from a Gaussian fitted
    to the training codes ``E(x)`` (fixed noise, so the grids of successive
    epochs are comparable).  When a :class:`~deepad.training.TensorBoardLogger`
    is passed in ``fit(..., callbacks=[...])`` the same grid goes to
    TensorBoard as image ``samples``.  Drawing the grids uses its own seeded
    NumPy generator and eval mode, so it does not change training.  Paths
    written are listed in ``sample_paths_``.
    """

    def __init__(
        self,
        hidden_dims: Sequence[int] = (32, 64),
        latent_dim: int = 32,
        *,
        disc_hidden_dims: Sequence[int] | None = None,
        adversarial_weight: float = 1.0,
        contextual_weight: float = 50.0,
        encoder_weight: float = 1.0,
        feature_weight: float = 1.0,
        output_activation: str | None = "tanh",
        epochs: int = 15,
        batch_size: int = 64,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        lr_schedule: str | None = None,
        preprocessing: str | None = "minmax",
        sample_dir: str | None = None,
        sample_every: int = 5,
        contamination: float = 0.1,
        device: str = "auto",
        n_threads: int | None = None,
        random_state=None,
        verbose: bool = False,
    ):
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.disc_hidden_dims = disc_hidden_dims
        self.adversarial_weight = adversarial_weight
        self.contextual_weight = contextual_weight
        self.encoder_weight = encoder_weight
        self.feature_weight = feature_weight
        self.output_activation = output_activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.preprocessing = preprocessing
        self.sample_dir = sample_dir
        self.sample_every = sample_every
        self.contamination = contamination
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        _check_widths(self.hidden_dims)
        if self.disc_hidden_dims is not None:
            try:
                _check_widths(self.disc_hidden_dims)
            except ValueError as exc:
                raise ValueError(str(exc).replace("hidden_dims", "disc_hidden_dims", 1)) from None
        check_int_param(self.latent_dim, "latent_dim", allowed="a positive integer")
        check_int_param(self.sample_every, "sample_every", allowed="a positive integer")
        for name in ("adversarial_weight", "contextual_weight", "encoder_weight", "feature_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if self.output_activation not in _OUTPUTS:
            raise ValueError(f"output_activation must be 'tanh' or None, got {self.output_activation!r}.")

    def _fit(self, X, y, seed, callbacks=None) -> None:
        self._check_params()
        self._sample_callback = None
        try:
            super()._fit(X, y, seed, callbacks=callbacks)
        finally:
            grid = self.__dict__.pop("_sample_callback", None)
        self.sample_paths_ = [] if grid is None else [str(p) for p in grid.paths]

    # ------------------------------------------------------------------ model
    def _build_module(self, image_shape) -> nn.Module:
        c, h, w = (int(v) for v in image_shape)
        disc = None if self.disc_hidden_dims is None else list(self.disc_hidden_dims)
        return GANomalyNet(c, (h, w), list(self.hidden_dims), int(self.latent_dim), disc, output=self.output_activation)

    def _fit_scaler(self, X: np.ndarray) -> None:
        if self.preprocessing != "minmax":
            if self.preprocessing not in ("standard", None):
                raise ValueError(
                    "preprocessing must be 'minmax' (training pixel range -> [-1, 1]), 'standard' "
                    f"(per-channel standardisation) or None for GANomaly, got {self.preprocessing!r}."
                )
            return super()._fit_scaler(X)
        lo = X.min(axis=(0, 2, 3)).astype(np.float64)
        hi = X.max(axis=(0, 2, 3)).astype(np.float64)
        half = (hi - lo) / 2.0
        self.scaler_center_ = (lo + hi) / 2.0
        self.scaler_scale_ = np.where(half > 1e-12, half, 1.0)

    def _make_trainer(self, device, callbacks) -> Trainer:
        # No validation split and no early stopping (see the class docstring); full batches
        # only, so batch norm never sees a batch of one image.  The sample grid runs before
        # the user's callbacks so its last grid reaches TensorBoard before the logger closes.
        own = [self._sample_callback] if getattr(self, "_sample_callback", None) is not None else []
        return Trainer(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            validation_fraction=0.0,
            patience=0,
            lr_schedule=self.lr_schedule,
            device=device,
            verbose=self.verbose,
            callbacks=(*own, *(callbacks or ())),
            drop_last=True,
        )

    def _before_training(self, module, data, generator) -> None:
        # Wanted when images go to a directory or to TensorBoard; decided in on_train_begin
        # for the latter, so the callback is always built (it costs nothing unless it writes).
        X = data[0]
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed_), 0x5A3B]))
        pick = np.sort(rng.choice(X.shape[0], size=min(256, X.shape[0]), replace=False))
        noise = rng.standard_normal((8, int(self.latent_dim))).astype(np.float32)
        self._sample_callback = SampleGrid(X[torch.as_tensor(pick)], noise, self.sample_dir, int(self.sample_every))

    def _steps(self, module: GANomalyNet, data):
        w_adv, w_con, w_enc = float(self.adversarial_weight), float(self.contextual_weight), float(self.encoder_weight)

        def discriminator_loss(batch):
            x = batch[0]
            with torch.no_grad():
                x_hat = module(x)[0]
            real, _ = module.discriminate(x)
            fake, _ = module.discriminate(x_hat)
            return 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))

        def generator_loss(batch):
            x = batch[0]
            x_hat, z, z_hat = module(x)
            _, f_real = module.discriminate(x)
            _, f_fake = module.discriminate(x_hat)
            return (
                w_adv * (f_real.detach() - f_fake).pow(2).mean()
                + w_con * (x - x_hat).abs().mean()
                + w_enc * (z - z_hat).pow(2).mean()
            )

        betas = (0.5, 0.999)
        return [
            Step("discriminator", discriminator_loss, module.discriminator_parameters(), betas=betas, weight_decay=0.0),
            Step("generator", generator_loss, module.generator_parameters(), betas=betas),
        ]

    @staticmethod
    def _residuals(module: GANomalyNet, xb: torch.Tensor) -> torch.Tensor:
        """``(B, 2)``: mean squared pixel residual and mean squared discriminator feature residual."""
        x_hat = module(xb)[0]
        _, f = module.discriminate(torch.cat([xb, x_hat]))
        n = xb.shape[0]
        return torch.stack([(xb - x_hat).pow(2).flatten(1).mean(1), (f[:n] - f[n:]).pow(2).flatten(1).mean(1)], 1)

    def _after_training(self, module, data) -> None:
        parts = batched_apply(
            lambda xb: self._residuals(module, xb),
            data[0],
            device=data[0].device,
            batch_size=int(self.score_batch_size),
        )
        ref = parts.mean(axis=0)
        self.score_scale_ = np.where(ref > 1e-12, ref, 1.0).astype(np.float64)

    # ------------------------------------------------------------------ scoring
    def _score_batch(self, module, xb):
        parts = self._residuals(module, xb)
        scale = torch.as_tensor(self.score_scale_, dtype=parts.dtype, device=parts.device)
        weights = torch.tensor([1.0, float(self.feature_weight)], dtype=parts.dtype, device=parts.device)
        return (parts / scale * weights).sum(dim=1)

    def score_parts(self, X) -> np.ndarray:
        """``(N, 2)``: the reconstruction residual ``R(x)`` and the feature residual ``F(x)`` (unscaled)."""
        return self._batched(self._residuals, self._validate_for_scoring(X))

    def _reconstruct_batch(self, module, xb):
        return module(xb)[0]

    def _anomaly_map_batch(self, module, xb):
        return (xb - module(xb)[0]).abs().mean(dim=1)

    def _encode_batch(self, module, xb):
        return module.encoder(xb)


# --------------------------------------------------------------------------- sample grids
def sample_grid_image(
    rows: Sequence[np.ndarray], *, lo: float | None = None, hi: float | None = None, pad: int = 2, min_cell: int = 32
) -> np.ndarray:
    """Tile rows of ``(n, C, H, W)`` images into one ``uint8`` RGB array ``(height, width, 3)``.

    Pixel values are mapped linearly from ``[lo, hi]`` (default: the range of
    the first row) to ``[0, 255]`` and clipped, so every row is shown on the
    same scale.  Grey images are repeated over RGB; images with other than
    1 or 3 channels show their channel mean.  Small images are enlarged
    (nearest neighbour) to at least ``min_cell`` pixels.
    """
    rows = [np.asarray(r, dtype=np.float64) for r in rows]
    if not rows or any(r.ndim != 4 for r in rows):
        raise ValueError("sample_grid_image takes a non-empty list of (n, C, H, W) arrays.")
    lo = float(rows[0].min()) if lo is None else float(lo)
    hi = float(rows[0].max()) if hi is None else float(hi)
    span = hi - lo if hi - lo > 1e-12 else 1.0
    _, c, h, w = rows[0].shape
    k = max(1, -(-int(min_cell) // max(h, w)))  # integer zoom
    ch, cw = h * k, w * k
    n_cols = max(r.shape[0] for r in rows)
    grid = np.full((len(rows) * (ch + pad) + pad, n_cols * (cw + pad) + pad, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            img = img if img.shape[0] == 3 else np.repeat(img.mean(axis=0, keepdims=True), 3, axis=0)
            pix = np.clip((img - lo) / span, 0.0, 1.0).transpose(1, 2, 0)
            pix = np.repeat(np.repeat(pix, k, axis=0), k, axis=1)
            top, left = pad + i * (ch + pad), pad + j * (cw + pad)
            grid[top : top + ch, left : left + cw] = np.round(pix * 255).astype(np.uint8)
    return grid


class SampleGrid(Callback):
    """Writes GANomaly's sample grid (inputs, reconstructions, generated images) every ``every`` epochs.

    Goes to ``directory`` as PNG when it is set, and to every
    :class:`~deepad.training.TensorBoardLogger` among the trainer's callbacks.
    ``images`` are training images in the network's units; the first 8 are
    shown, all of them fit the Gaussian the generated codes are drawn from
    (``mean + std * noise``, ``noise`` fixed).
    """

    def __init__(self, images: torch.Tensor, noise: np.ndarray, directory: str | None, every: int) -> None:
        self.images, self.noise, self.directory, self.every = images, noise, directory, int(every)
        self.paths: list[Path] = []
        self._module: GANomalyNet | None = None
        self._last = 0

    def _tensorboards(self, trainer) -> list[TensorBoardLogger]:
        return [
            cb
            for cb in trainer.callbacks
            if isinstance(cb, TensorBoardLogger) and getattr(cb, "_writer", None) is not None
        ]

    def on_train_begin(self, trainer, module):
        self._module, self._last, self.paths = module, 0, []
        if self.directory is not None:
            Path(self.directory).mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer, epoch, logs):
        if (epoch + 1) % self.every == 0:
            self._write(trainer, epoch + 1)
        return None

    def on_train_end(self, trainer, module):
        done = int(getattr(trainer, "epochs_run_", 0))
        if done and self._last != done:
            self._write(trainer, done)

    @torch.no_grad()
    def rows(self) -> list[np.ndarray]:
        """``[inputs, reconstructions, generated]``, each ``(n, C, H, W)`` in the network's units."""
        module = self._module
        was_training = module.training
        module.eval()
        try:
            device = next(module.parameters()).device
            codes = torch.as_tensor(
                batched_apply(module.encoder, self.images, device=device, batch_size=64), dtype=torch.float32
            )
            mean, std = codes.mean(0), codes.std(0) if codes.shape[0] > 1 else torch.ones_like(codes[0])
            z = mean + std * torch.as_tensor(self.noise)
            shown = self.images[: self.noise.shape[0]].to(device)
            rec = module(shown)[0]
            gen = module.decoder(z.to(device))
            return [t.detach().to("cpu", torch.float64).numpy() for t in (shown, rec, gen)]
        finally:
            module.train(was_training)

    def _write(self, trainer, epoch: int) -> None:
        boards = self._tensorboards(trainer)
        if self.directory is None and not boards:
            return
        grid = sample_grid_image(self.rows())
        if self.directory is not None:
            from PIL import Image

            path = Path(self.directory) / f"samples_epoch{epoch:04d}.png"
            Image.fromarray(grid).save(path)
            self.paths.append(path)
        for board in boards:
            board._writer.add_image(f"{board.prefix}samples", grid, epoch, dataformats="HWC")
        self._last = epoch
