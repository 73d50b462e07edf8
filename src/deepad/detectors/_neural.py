"""Shared machinery of the neural detectors: scaling, seeding, the trainer call and batched scoring.

A neural detector subclasses :class:`NeuralDetector` and supplies

* ``_build_module(n_features)`` -- a fresh, untrained ``nn.Module``;
* ``_steps(module, data)`` -- what to optimise (one :class:`~deepad.training.Step`
  for most models, several for adversarial ones);
* ``_score_batch(module, xb)`` -- per-row anomaly scores of a batch.

and optionally ``_before_training`` (e.g. Deep SVDD's centre) and
``_after_training`` (e.g. DAGMM's mixture parameters).  Nothing here loops
over epochs: :class:`~deepad.training.Trainer` is the only training loop.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from deepad.base import BaseDetector, check_finite
from deepad.data.scaling import fit_scaler
from deepad.training import Step, Trainer, batched_apply, resolve_device, torch_context


class NeuralDetector(BaseDetector):
    """Base of all neural detectors.  Hyper-parameters shared by every subclass:

    epochs, batch_size, lr, weight_decay, dropout, hidden_dims, latent_dim:
        the common training and architecture vocabulary.
    validation_fraction, patience:
        held-out fraction for early stopping (best weights are restored);
        ``validation_fraction=0`` trains for exactly ``epochs``.
    lr_schedule:
        ``None``, ``"cosine"`` or ``"plateau"``.
    preprocessing:
        ``"standard"`` (default), ``"robust"``, ``"minmax"`` or ``None``;
        fitted on the training data and saved with the model.
    device:
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    n_threads:
        CPU threads torch may use while this detector runs (``None``: see
        :func:`deepad.training.default_threads`); restored afterwards.
    random_state:
        seed; the same seed gives bit-identical scores on the same device.
    verbose:
        show a progress bar over epochs.
    """

    _min_samples_fit = 4
    #: Name of the step whose validation loss drives early stopping (default: the first).
    _monitor_step: str | None = None

    # ------------------------------------------------------------------ hooks for subclasses
    def _build_module(self, n_features: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _steps(self, module: nn.Module, data: Sequence[torch.Tensor]) -> list[Step]:  # pragma: no cover
        raise NotImplementedError

    def _score_batch(self, module: nn.Module, xb: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _training_data(self, X_t: torch.Tensor, y: np.ndarray | None) -> tuple[torch.Tensor, ...]:
        return (X_t,)

    def _before_training(self, module: nn.Module, data: tuple[torch.Tensor, ...], generator: torch.Generator) -> None:
        pass

    def _after_training(self, module: nn.Module, data: tuple[torch.Tensor, ...]) -> None:
        pass

    def _sampler(self, data: tuple[torch.Tensor, ...]):
        return None

    # ------------------------------------------------------------------ shared implementation
    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Scale with the training statistics and cast to float32 (the networks' precision).

        A finite float64 value can still be too large for float32; that is
        reported with its location instead of turning into inf inside torch.
        """
        return self._batch_transform(X.shape[0], X)(X, 0)  # the whole array as one batch: one arithmetic, one check

    @staticmethod
    def _check_float32_range(X: np.ndarray, scaled: np.ndarray, start: int) -> None:
        too_large = np.abs(scaled) > np.finfo(np.float32).max
        if too_large.any():
            r, c = map(int, np.argwhere(too_large)[0])
            raise ValueError(
                f"X has a value too large for this model at row {start + r}, column {c} ({X[r, c]:g}, "
                f"{scaled[r, c]:.3g} after scaling); check the units of that column."
            )

    #: values per tile of the centre and scale (~128 KiB of float64 each, in L2): see :meth:`_batch_transform`
    _tile_values: int = 16_384

    def _batch_transform(self, batch_size: int, source: np.ndarray | None = None):
        """``prepare(rows, start)`` for :func:`~deepad.training.batched_apply`: :meth:`_transform` of one batch.

        The same float64 arithmetic as :meth:`_transform`, ``(x - centre) / scale`` rounded once to float32 (so
        the same float32 values, bit for bit), in two buffers reused across batches.  Row-major rows are read as
        rows of ``k`` records against a centre and a scale tiled ``k`` times, so NumPy's inner loop runs over
        ``k * d`` values instead of the ``d`` of one record, and the division writes float32 directly instead of
        a float64 result cast afterwards: on 400,000 x 30 rows, 12-16 ms instead of 20-34 ms
        (``benchmarks/throughput.py --sections 3``).  The exact checks run only on a batch whose float32 values
        reach the float32 limit or are NaN: first :func:`~deepad.base.check_finite` on ``source``, the whole
        array the batches come from (so a detector with ``_checks_finite`` reports NaN and infinity with the
        words, row and count of validation, without a separate pass over the input), then the range check.
        """
        center, scale = self.scaler_center_, self.scaler_scale_
        d = center.shape[-1]
        buf64 = np.empty(batch_size * d, dtype=np.float64)
        buf32 = np.empty((batch_size, d), dtype=np.float32)
        limit = np.finfo(np.float32).max
        flat = center.ndim == 1 and scale.ndim == 1  # one centre and scale per column (not images, not windows)
        k = max(1, min(batch_size, self._tile_values // max(d, 1)))  # records per tile
        if flat:
            tiled_center, tiled_scale = np.tile(center, k), np.tile(scale, k)

        def scale_into(rows: np.ndarray, out: np.ndarray) -> None:
            n = rows.shape[0]
            if flat and n >= k and rows.flags.c_contiguous:  # k records at a time, then the rest below
                m = n // k * k
                scratch = buf64[: m * d].reshape(-1, k * d)
                np.subtract(rows[:m].reshape(-1, k * d), tiled_center, out=scratch)
                np.divide(scratch, tiled_scale, out=out[:m].reshape(-1, k * d), casting="unsafe")
                rows, out, n = rows[m:], out[m:], n - m
            elif flat and n > 1 and rows.strides[0] == rows.itemsize:  # column-major: a column at a time
                scratch = buf64[: n * d].reshape(d, n)
                np.subtract(rows.T, center[:, None], out=scratch)
                np.divide(scratch, scale[:, None], out=out.T, casting="unsafe")
                return
            if n:
                scratch = buf64[: n * d].reshape(n, d)
                np.subtract(rows, center, out=scratch)
                np.divide(scratch, scale, out=out, casting="unsafe")

        def prepare(rows: np.ndarray, start: int) -> np.ndarray:
            out = buf32[: rows.shape[0]]
            with np.errstate(over="ignore"):  # a value beyond float32 is reported just below
                scale_into(rows, out)
            if out.size and not (out.max() < limit and out.min() > -limit):  # NaN fails both comparisons
                if source is not None:
                    check_finite(source)
                self._check_float32_range(rows, (rows - center) / scale, start)
            return out

        return prepare

    def _make_trainer(self, device: torch.device, callbacks) -> Trainer:
        return Trainer(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            lr_schedule=self.lr_schedule,
            device=device,
            verbose=self.verbose,
            callbacks=tuple(callbacks or ()),
            monitor=f"val_{self._monitor_step}" if self._monitor_step else None,
        )

    def _fit(self, X: np.ndarray, y: np.ndarray | None, seed: int, callbacks=None) -> None:
        self.scaler_center_, self.scaler_scale_ = fit_scaler(X, self.preprocessing, constant="evidence")
        device = resolve_device(self.device)
        # Build once to size the work per step, which decides the thread count.
        with torch_context(seed, device, 1):
            n_params = sum(p.numel() for p in self._build_module(X.shape[1]).parameters())
        self._train(X, y, seed, callbacks, device, module_shape=X.shape[1], work=n_params * int(self.batch_size))

    def _train(self, X, y, seed: int, callbacks, device: torch.device, *, module_shape, work: int | None) -> None:
        """The one training body every neural detector shares: build, hand the steps to the Trainer, keep the result.

        ``module_shape`` is what :meth:`_build_module` takes (a feature count,
        or an image shape); ``work`` sizes the thread count (None: do not size).
        """
        with torch_context(seed, device, self.n_threads, work=work):
            generator = torch.Generator().manual_seed(seed)
            module = self._build_module(module_shape).to(device)
            X_t = torch.as_tensor(self._transform(X))
            data = tuple(t.to(device) for t in self._training_data(X_t, y))
            self._before_training(module, data, generator)
            trainer = self._make_trainer(device, callbacks)
            history = trainer.fit(
                module, self._steps(module, data), data, generator=generator, sampler=self._sampler(data)
            )
            module.eval()
            self._after_training(module, data)
        self.module_ = module
        self.history_ = history
        self.n_epochs_ = int(trainer.epochs_run_)

    @property
    def _device(self) -> torch.device:
        return next(self.module_.parameters()).device

    #: rows per inference batch
    _inference_batch_size: int = 4096

    @property
    def _inference_work(self) -> int:
        return 4096 * sum(p.numel() for p in self.module_.parameters())

    def _apply(self, fn, X: np.ndarray) -> np.ndarray:
        """Run ``fn(module, batch)`` over validated raw rows ``X`` in inference mode, batched."""
        if any(m.training for m in self.module_.modules()):  # eval() walks and sets every submodule: ~0.1 ms a call
            self.module_.eval()
        bs = self._inference_batch_size
        # inference_mode rather than batched_apply's no_grad: no version counters or views tracked per tensor
        # (DeepSVDD, 400,000 x 30 rows: 5 ms of 90 ms CPU); nothing of a batch outlives its copy into the output.
        with torch_context(None, self._device, self.n_threads, work=self._inference_work), torch.inference_mode():
            return batched_apply(
                lambda xb: fn(self.module_, xb),
                X,
                device=self._device,
                batch_size=bs,
                prepare=self._batch_transform(max(1, min(bs, X.shape[0])), X),  # buffers no larger than the input
            )

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._apply(self._score_batch, X)

    def to(self, device: str) -> "NeuralDetector":
        """Move a fitted model to another device (e.g. a GPU-trained model to ``"cpu"``)."""
        self.module_.to(resolve_device(device))
        return self

    def encode(self, X) -> np.ndarray:
        """Latent representation of each row (for plots and kNN-in-latent-space), where the model has one."""
        Xv = self._validate_for_scoring(X)
        if getattr(self.module_, "encoder", None) is None:
            raise AttributeError(f"{type(self).__name__} has no encoder.")
        return self._apply(self._encode_batch, Xv)

    def _encode_batch(self, module: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        return module.encoder(xb)

    def _new_module(self, name: str) -> nn.Module:
        """An untrained module of the right shape, for :func:`deepad.load` to fill with saved weights."""
        return self._build_module(self.n_features_in_)
