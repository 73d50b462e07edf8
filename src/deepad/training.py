"""The one training loop every neural detector uses.

Detectors describe *what* to optimise as a list of :class:`Step` objects (a
loss over a mini-batch and the parameters it updates); the :class:`Trainer`
owns *how*: batching, validation split, early stopping with best-weight
restore, weight decay, learning-rate schedule, gradient clipping, device
placement, progress bars and callbacks.  A plain autoencoder has one step;
an adversarial model (ALAD) has two -- discriminators, then generator and
encoder -- and still goes through the same loop.

Batches are taken by slicing tensors with a seeded permutation instead of a
``DataLoader``: for tabular data the per-batch Python overhead of a
``DataLoader`` dominates training time, and slicing keeps the whole epoch a
handful of tensor operations.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

logger = logging.getLogger("deepad.training")

__all__ = [
    "Step",
    "Trainer",
    "Callback",
    "History",
    "EarlyStopping",
    "TensorBoardLogger",
    "resolve_device",
    "torch_context",
    "default_threads",
]

Batch = tuple[torch.Tensor, ...]


# --------------------------------------------------------------------------- environment
def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; an unavailable explicit choice is an error."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but CUDA is not available; use device='auto' or 'cpu'.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={name!r} was requested but Apple MPS is not available; use 'auto' or 'cpu'.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps', got {name!r}.")
    return dev


#: Below this many multiply-adds per step (batch rows x parameters) one thread is used.
SMALL_WORK = 20_000_000


def default_threads(work: int | None = None) -> int:
    """CPU threads for torch when the user does not choose.

    Small tabular networks do little arithmetic per step, so splitting each
    matmul over threads buys little and costs synchronisation: on the bundled
    cardio data (AutoEncoder, batch 256, 30 epochs, 2-core machine) one
    thread took 0.30 s wall / 0.30 s CPU and two threads 0.34 s wall /
    0.68 s CPU.  So steps smaller than :data:`SMALL_WORK` multiply-adds
    (``work`` = batch rows x parameters) run on one thread; bigger ones use
    up to 4 cores.  ``DEEPAD_NUM_THREADS`` overrides both.
    """
    env = os.environ.get("DEEPAD_NUM_THREADS")
    if env:
        return max(1, int(env))
    if work is not None and work < SMALL_WORK:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@contextlib.contextmanager
def torch_context(
    seed: int | None, device: torch.device, n_threads: int | None, work: int | None = None
) -> Iterator[None]:
    """Seed torch and cap its threads *locally*; both are restored on exit.

    ``torch.random.fork_rng`` saves and restores the global CPU (and CUDA)
    generator states, so fitting a detector never changes the random stream
    a user's own code sees.
    """
    previous_threads = torch.get_num_threads()
    n = default_threads(work) if n_threads is None else int(n_threads)
    if n < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads}.")
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(previous_threads)


# --------------------------------------------------------------------------- callbacks
class Callback:
    """Hooks into the training loop.  Return ``True`` from ``on_epoch_end`` to stop training."""

    def on_train_begin(self, trainer: "Trainer", module: nn.Module) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, float]) -> bool | None:
        return None

    def on_train_end(self, trainer: "Trainer", module: nn.Module) -> None:
        pass


class History(Callback):
    """Per-epoch losses (``train_<step>``, ``val_<step>``, ``lr``) as lists of floats."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, trainer, module):
        self.history = {}

    def on_epoch_end(self, trainer, epoch, logs):
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))


class EarlyStopping(Callback):
    """Stop when the monitored validation loss has not improved by ``min_delta`` for ``patience`` epochs.

    Keeps a copy of the best weights and restores them at the end, so the
    model a detector scores with is the one that generalised best, not the
    last one trained.
    """

    def __init__(self, monitor: str, patience: int = 10, min_delta: float = 1e-4, restore_best: bool = True):
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.best = math.inf
        self.best_epoch = -1
        self._best_state: dict | None = None
        self._module: nn.Module | None = None

    def on_train_begin(self, trainer, module):
        self.best, self.best_epoch, self._best_state, self._module = math.inf, -1, None, module

    def on_epoch_end(self, trainer, epoch, logs):
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return None
        if value < self.best - self.min_delta * max(1.0, abs(self.best) if math.isfinite(self.best) else 1.0):
            self.best, self.best_epoch = value, epoch
            if self.restore_best and self._module is not None:
                self._best_state = copy.deepcopy(self._module.state_dict())
            return None
        return epoch - self.best_epoch >= self.patience

    def on_train_end(self, trainer, module):
        if self.restore_best and self._best_state is not None:
            module.load_state_dict(self._best_state)


class TensorBoardLogger(Callback):
    """Write every logged value to TensorBoard (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: str, prefix: str = "") -> None:
        self.log_dir, self.prefix = log_dir, prefix
        self._writer = None

    def on_train_begin(self, trainer, module):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ImportError("TensorBoard logging needs the 'tensorboard' package: pip install tensorboard") from exc
        self._writer = SummaryWriter(self.log_dir)

    def on_epoch_end(self, trainer, epoch, logs):
        for key, value in logs.items():
            self._writer.add_scalar(f"{self.prefix}{key}", value, epoch)

    def on_train_end(self, trainer, module):
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()


# --------------------------------------------------------------------------- trainer
def _in_batches(idx: torch.Tensor, batch_size: int, drop_last: bool = False) -> list[torch.Tensor]:
    """Consecutive batches of ``idx``; a last batch of a single row joins the one before it.

    One row cannot be batch-normalised (torch raises), and its gradient is
    the noisiest step of the epoch; ``n % batch_size == 1`` happens for 1 in
    ``batch_size`` data sizes.  ``drop_last`` drops any incomplete last batch.
    """
    stop = idx.numel()
    if drop_last and stop > batch_size:
        stop -= stop % batch_size
    batches = list(idx[:stop].split(batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _adam(parameters: list[nn.Parameter], **options) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step where torch supports it for these parameters.

    Tabular networks are small, so a step's cost is mostly per-tensor
    overhead, and the default Adam updates each parameter tensor with about
    ten separate operations.  The fused update does the same arithmetic in
    one pass: on a 3-64-32-16 autoencoder with batch norm (22 parameter
    tensors, batch 64, one CPU thread) a training step took 1.2 ms instead of
    1.8 ms.  Devices or dtypes without a fused kernel keep the default.
    """
    fusable = bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)
    if fusable:
        try:
            return torch.optim.Adam(parameters, fused=True, **options)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - a torch build without the kernel
            pass
    return torch.optim.Adam(parameters, **options)


@dataclass
class Step:
    """One optimisation step per mini-batch: minimise ``loss(batch)`` over ``parameters``.

    ``loss`` must return the *mean* loss over the batch (a 0-d tensor).
    ``lr`` overrides the trainer's learning rate for this step;
    ``weight_decay`` overrides its L2 penalty (e.g. 0 for a discriminator).
    """

    name: str
    loss: Callable[[Batch], torch.Tensor]
    parameters: Sequence[nn.Parameter]
    lr: float | None = None
    weight_decay: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Trainer:
    """Mini-batch training with validation, early stopping and callbacks.

    Parameters mirror the detectors' vocabulary: ``epochs``, ``batch_size``,
    ``lr``, ``weight_decay`` (L2 penalty added by Adam), ``validation_fraction``
    (held out for early stopping; 0 disables both), ``patience``,
    ``lr_schedule`` (``None``, ``"cosine"`` or ``"plateau"``),
    ``grad_clip`` (max gradient norm), ``device`` and ``verbose`` (a tqdm
    progress bar over epochs).
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    validation_fraction: float = 0.1
    patience: int = 10
    min_delta: float = 1e-4
    lr_schedule: str | None = None
    grad_clip: float | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    verbose: bool = False
    callbacks: Sequence[Callback] = ()
    monitor: str | None = None
    drop_last: bool = False

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (0.0 <= float(self.validation_fraction) < 1.0):
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.lr_schedule not in (None, "none", "cosine", "plateau"):
            raise ValueError(f"lr_schedule must be None, 'cosine' or 'plateau', got {self.lr_schedule!r}")
        self.history = History()

    # ---------------------------------------------------------------- helpers
    def split(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Seeded train/validation index split; validation is empty when the fraction or the data is too small."""
        perm = torch.randperm(n, generator=generator)
        n_val = int(round(n * float(self.validation_fraction)))
        if n_val < 2 or n - n_val < 2:
            return perm, perm[:0]
        return perm[n_val:], perm[:n_val]

    def _batches(self, idx: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
        if generator is not None:
            idx = idx[torch.randperm(idx.numel(), generator=generator)]
        return _in_batches(idx, int(self.batch_size), self.drop_last)

    # ---------------------------------------------------------------- main loop
    def fit(
        self,
        module: nn.Module,
        steps: Sequence[Step],
        data: Sequence[torch.Tensor],
        *,
        generator: torch.Generator,
        train_index: torch.Tensor | None = None,
        val_index: torch.Tensor | None = None,
        sampler: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ) -> dict[str, list[float]]:
        """Train ``module`` on ``data`` (tensors sharing the first dimension); return the loss history.

        ``sampler(train_index, generator)`` may replace the plain shuffle
        each epoch (DevNet's balanced batches use it); it returns the
        indices of one epoch in batch order.
        """
        data = tuple(t.to(self.device) for t in data)
        n = data[0].shape[0]
        if train_index is None:
            train_index, val_index = self.split(n, generator)
        val_index = val_index if val_index is not None else train_index[:0]
        has_val = val_index.numel() > 0
        monitor = self.monitor or (f"val_{steps[0].name}" if has_val else None)

        optimizers = [
            _adam(
                list(s.parameters),
                lr=s.lr or self.lr,
                betas=s.betas,
                weight_decay=self.weight_decay if s.weight_decay is None else s.weight_decay,
            )
            for s in steps
        ]
        schedulers = []
        if self.lr_schedule == "cosine":
            schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=int(self.epochs)) for o in optimizers]
        elif self.lr_schedule == "plateau":
            schedulers = [
                torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=max(1, self.patience // 3))
                for o in optimizers
            ]

        # Early stopping runs before user callbacks so it snapshots the weights
        # that produced the logged validation loss, whatever callbacks do next.
        callbacks: list[Callback] = [self.history]
        if monitor is not None and has_val and self.patience and self.patience > 0:
            callbacks.append(EarlyStopping(monitor, patience=int(self.patience), min_delta=self.min_delta))
        callbacks.extend(self.callbacks)
        for cb in callbacks:
            cb.on_train_begin(self, module)

        progress = None
        if self.verbose:
            from deepad.data.progress import progress_bar

            progress = progress_bar(int(self.epochs), "training", unit="epoch", enabled=True)
        self.epochs_run_ = 0
        start = time.perf_counter()
        try:
            for epoch in range(int(self.epochs)):
                module.train()
                sums = [0.0] * len(steps)
                count = 0
                order = sampler(train_index, generator) if sampler is not None else None
                batches = (
                    _in_batches(order, int(self.batch_size), self.drop_last)
                    if order is not None
                    else self._batches(train_index, generator)
                )
                for bidx in batches:
                    bidx = bidx.to(self.device)
                    batch = tuple(t[bidx] for t in data)
                    for i, (step, opt) in enumerate(zip(steps, optimizers)):
                        opt.zero_grad(set_to_none=True)
                        loss = step.loss(batch)
                        if not torch.isfinite(loss):
                            raise FloatingPointError(
                                f"training diverged: loss '{step.name}' became {loss.item()} at epoch {epoch}. "
                                "Lower lr, standardise the inputs, or raise weight_decay."
                            )
                        loss.backward()
                        if self.grad_clip:
                            nn.utils.clip_grad_norm_(step.parameters, float(self.grad_clip))
                        opt.step()
                        sums[i] += float(loss.detach()) * bidx.numel()
                    count += bidx.numel()
                logs = {f"train_{s.name}": v / max(count, 1) for s, v in zip(steps, sums)}
                if has_val:
                    logs.update(self.evaluate(module, steps, data, val_index))
                logs["lr"] = optimizers[0].param_groups[0]["lr"]
                for sched in schedulers:
                    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                        sched.step(logs.get(monitor, logs[f"train_{steps[0].name}"]))
                    else:
                        sched.step()
                self.epochs_run_ = epoch + 1
                stop = False
                for cb in callbacks:
                    stop = bool(cb.on_epoch_end(self, epoch, logs)) or stop
                if progress is not None:
                    progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "lr"}, refresh=False)
                    progress.update(1)
                logger.debug("epoch %d %s", epoch, logs)
                if stop:
                    break
        finally:
            if progress is not None:
                progress.close()
        for cb in callbacks:
            cb.on_train_end(self, module)
        module.eval()
        self.fit_seconds_ = time.perf_counter() - start
        return self.history.history

    @torch.no_grad()
    def evaluate(
        self, module: nn.Module, steps: Sequence[Step], data: Sequence[torch.Tensor], index: torch.Tensor
    ) -> dict[str, float]:
        """Mean of every step's loss on ``index``, in eval mode (no dropout)."""
        was_training = module.training
        module.eval()
        sums = [0.0] * len(steps)
        for bidx in self._batches(index.to(self.device), None):
            batch = tuple(t[bidx] for t in data)
            for i, s in enumerate(steps):
                sums[i] += float(s.loss(batch)) * bidx.numel()
        module.train(was_training)
        return {f"val_{s.name}": v / max(index.numel(), 1) for s, v in zip(steps, sums)}


@torch.no_grad()
def batched_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    X: np.ndarray | torch.Tensor,
    *,
    device: torch.device,
    batch_size: int = 4096,
    prepare: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> np.ndarray:
    """Apply ``fn`` to ``X`` in large batches under ``no_grad``; return a NumPy array.

    Inference batches are large (4096 rows by default) because no gradient
    memory is kept; the input is moved to the device batch by batch so a big
    scoring job never holds a second full copy on the device.

    ``prepare(rows, start)``, if given, turns each NumPy batch of ``X`` into
    the float32 array ``fn`` sees (``start`` is the batch's first row, for
    error messages).  Preparing batch by batch keeps the work in cache: on
    400,000 x 30 rows, standardising the whole array first took 0.11 s,
    half the AutoEncoder's 0.22 s forward pass, and batch by batch 0.04 s
    (``benchmarks/throughput.py``).
    The array it returns may be a buffer reused for the next batch: ``fn``'s
    output is copied (to float64) before the next batch is prepared.
    """
    if prepare is None:
        X_t = torch.as_tensor(X, dtype=torch.float32) if isinstance(X, np.ndarray) else X

        def batch(start: int) -> torch.Tensor:
            return X_t[start : start + batch_size]
    else:

        def batch(start: int) -> torch.Tensor:
            return torch.from_numpy(prepare(X[start : start + batch_size], start))

    # Each batch's result is written (float32 -> float64, as .to(torch.float64) converts) straight into the one
    # output array, instead of a float64 copy per batch and a concatenation of them.
    out: np.ndarray | None = None
    for start in range(0, X.shape[0], batch_size):
        res = forward_rows(fn, batch(start).to(device)).detach()
        if out is None:
            out = np.empty((X.shape[0], *res.shape[1:]), dtype=np.float64)
        torch.from_numpy(out[start : start + res.shape[0]]).copy_(res)
    return out if out is not None else np.empty((0,), dtype=np.float64)


def forward_rows(fn: Callable[[torch.Tensor], torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
    """``fn(xb)``, with a one-row batch run as two copies of the row, so a row scores the same in any batch.

    BLAS multiplies a one-row batch by a matrix-vector kernel that sums in
    another order than the matrix-matrix kernel used for every larger batch;
    the difference (about 1e-7 in float32) is enough to send a row down
    another branch of a Deep Isolation Forest tree (a 9e-4 score change on
    ADBench Stamps: ``benchmarks/score_batching.py``).  Two rows take the
    matrix-matrix kernel.
    """
    if xb.shape[0] != 1:
        return fn(xb)
    return fn(xb.expand(2, *xb.shape[1:]).contiguous())[:1]
