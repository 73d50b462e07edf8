"""The shared trainer: early stopping, callbacks, schedules, devices, threads and seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import deepad.detectors as D
from deepad.detectors._neural import NeuralDetector
from deepad.training import Callback, Step, Trainer, default_threads, resolve_device, torch_context

from conftest import FAST_PARAMS

NEURAL = sorted(
    n
    for n in D.__all__
    if n != "DEFAULT" and isinstance(getattr(D, n), type) and issubclass(getattr(D, n), NeuralDetector)
)


def _regression_problem(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    return X, y


def _linear_steps(model):
    return [Step("loss", lambda b: ((model(b[0]) - b[1]) ** 2).mean(), list(model.parameters()))]


def test_trainer_learns_and_records_history():
    X, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    trainer = Trainer(epochs=40, batch_size=32, lr=0.05, validation_fraction=0.2, patience=100)
    history = trainer.fit(model, _linear_steps(model), (X, y), generator=torch.Generator().manual_seed(0))
    assert set(history) == {"train_loss", "val_loss", "lr"}
    assert len(history["train_loss"]) == trainer.epochs_run_ == 40
    assert history["val_loss"][-1] < 0.01 * history["val_loss"][0]
    assert not model.training, "trainer leaves the model in eval mode"


def test_early_stopping_stops_and_restores_best_weights():
    X, y = _regression_problem()
    model = nn.Linear(4, 1)

    class Worsen(Callback):
        """After epoch 3, perturb weights so validation loss rises: early stopping must restore epoch-3 weights."""

        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 3:
                self.best = {k: v.clone() for k, v in model.state_dict().items()}
            if epoch >= 3:
                with torch.no_grad():
                    model.weight.add_(5.0)

    worsen = Worsen()
    trainer = Trainer(epochs=50, batch_size=64, lr=1e-4, validation_fraction=0.25, patience=3, callbacks=[worsen])
    history = trainer.fit(model, _linear_steps(model), (X, y), generator=torch.Generator().manual_seed(0))
    assert trainer.epochs_run_ < 50
    assert np.argmin(history["val_loss"]) <= 3
    # The restored weights are those that gave the best validation loss (before the perturbation).
    best_epoch = int(np.argmin(history["val_loss"]))
    if best_epoch == 3:
        for k, v in model.state_dict().items():
            assert torch.equal(v, worsen.best[k])


def test_callback_can_stop_training():
    X, y = _regression_problem()
    model = nn.Linear(4, 1)

    class StopAt2(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            return epoch == 1

    trainer = Trainer(epochs=20, validation_fraction=0, callbacks=[StopAt2()])
    trainer.fit(model, _linear_steps(model), (X, y), generator=torch.Generator().manual_seed(0))
    assert trainer.epochs_run_ == 2


def test_cosine_schedule_lowers_learning_rate():
    X, y = _regression_problem()
    model = nn.Linear(4, 1)
    trainer = Trainer(epochs=10, lr=0.01, lr_schedule="cosine", validation_fraction=0)
    history = trainer.fit(model, _linear_steps(model), (X, y), generator=torch.Generator().manual_seed(0))
    assert history["lr"][0] == pytest.approx(0.01)
    assert history["lr"][-1] < 0.001


def test_weight_decay_shrinks_weights():
    X = torch.randn(128, 4, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(128, 1)
    norms = {}
    for wd in (0.0, 1.0):
        torch.manual_seed(0)
        model = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(1.0)
        steps = [Step("loss", lambda b: (model(b[0]) * 0).sum(), list(model.parameters()))]
        Trainer(epochs=20, lr=0.05, weight_decay=wd, validation_fraction=0).fit(
            model, steps, (X, y), generator=torch.Generator().manual_seed(0)
        )
        norms[wd] = float(model.weight.detach().norm())
    assert norms[0.0] == pytest.approx(2.0)
    assert norms[1.0] < 1.0


def test_divergence_is_reported_clearly():
    X, y = _regression_problem()
    model = nn.Linear(4, 1)
    steps = [Step("loss", lambda b: (model(b[0]) * float("nan")).mean(), list(model.parameters()))]
    with pytest.raises(FloatingPointError, match="training diverged: loss 'loss'"):
        Trainer(epochs=2, validation_fraction=0).fit(model, steps, (X, y), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(lr_schedule="warp"), "lr_schedule"),
    ],
)
def test_trainer_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(**kwargs)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises((ValueError, RuntimeError)):
        resolve_device("tpu")


def test_torch_context_restores_global_state():
    state, threads = torch.get_rng_state().clone(), torch.get_num_threads()
    with torch_context(123, torch.device("cpu"), 1):
        a = torch.rand(3)
        assert torch.get_num_threads() == 1
    with torch_context(123, torch.device("cpu"), 1):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_default_threads_small_work_uses_one(monkeypatch):
    monkeypatch.delenv("DEEPAD_NUM_THREADS", raising=False)
    assert default_threads(work=1000) == 1
    assert default_threads(work=None) >= 1
    monkeypatch.setenv("DEEPAD_NUM_THREADS", "3")
    assert default_threads(work=1000) == 3


# ------------------------------------------------------------------ every neural detector
def _training_input(name, planted):
    """The planted table, or for image detectors 48 grey 12x12 images (they take (N, H, W) arrays)."""
    from deepad.detectors._image import ImageNeuralDetector

    if issubclass(getattr(D, name), ImageNeuralDetector):
        return np.random.default_rng(0).uniform(0, 1, size=(48, 12, 12)).astype(np.float32)
    return planted[0]


@pytest.mark.parametrize("name", NEURAL)
def test_parameters_change_during_training(name, planted):
    X_train = _training_input(name, planted)
    det = getattr(D, name)(**{**FAST_PARAMS[name], "random_state": 0}).fit(X_train)
    with torch_context(det.seed_, torch.device("cpu"), 1):
        initial = det._new_module("module_")
    trained = det.module_.state_dict()
    changed = [
        k for k, v in initial.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, trained[k])
    ]
    assert changed, f"{name}: no parameter changed during training"
    assert det.n_epochs_ >= 1 and det.history_


@pytest.mark.parametrize("name", NEURAL)
def test_history_and_callbacks_reach_every_neural_detector(name, planted):
    X_train = _training_input(name, planted)
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(dict(logs))

    det = getattr(D, name)(**{**FAST_PARAMS[name], "random_state": 0})
    det.fit(X_train, callbacks=[Spy()])
    assert len(seen) == det.n_epochs_
    assert all(any(k.startswith("train_") for k in logs) for logs in seen)


def test_dropout_and_validation_split_are_used(planted):
    X_train, _, _ = planted
    det = D.AutoEncoder(
        **{**FAST_PARAMS["AutoEncoder"], "dropout": 0.3, "validation_fraction": 0.2, "random_state": 0}
    ).fit(X_train)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in det.module_.modules())
    assert "val_loss" in det.history_
    no_val = D.AutoEncoder(**{**FAST_PARAMS["AutoEncoder"], "validation_fraction": 0.0, "random_state": 0}).fit(X_train)
    assert "val_loss" not in no_val.history_ and no_val.n_epochs_ == FAST_PARAMS["AutoEncoder"]["epochs"]


def test_fit_on_unavailable_device_fails_clearly(planted):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        D.AutoEncoder(**FAST_PARAMS["AutoEncoder"], device="cuda").fit(planted[0])


def test_progress_bar_when_verbose(planted, capsys, monkeypatch):
    import deepad.data.progress

    D.AutoEncoder(**{**FAST_PARAMS["AutoEncoder"], "verbose": True, "epochs": 3}).fit(planted[0])
    assert capsys.readouterr().err == ""  # in a log (not a terminal) a bar appears only after 30 s
    monkeypatch.setattr(deepad.data.progress, "LOG_DELAY_S", 0.0)
    D.AutoEncoder(**{**FAST_PARAMS["AutoEncoder"], "verbose": True, "epochs": 3}).fit(planted[0])
    assert "training" in capsys.readouterr().err


@pytest.mark.parametrize("name", NEURAL)
def test_values_beyond_float32_are_reported_not_turned_into_inf(name, planted):
    X_train = _training_input(name, planted)
    det = getattr(D, name)(**{**FAST_PARAMS[name], "random_state": 0}).fit(X_train)
    if X_train.ndim == 3:  # images: the pixel is named by image, channel, row and column
        bad = X_train[:6].astype(np.float64)
        bad[4, 2, 3] = 1e300
        with pytest.raises(ValueError, match="too large for float32 in image 4 \\(channel 0, row 2"):
            det.decision_function(bad)
        return
    bad = planted[1].copy()
    bad[4, 2] = 1e300
    with pytest.raises(ValueError, match="too large for this model at row 4, column 2"):
        det.decision_function(bad)


def test_adam_is_fused_on_cpu_and_matches_the_default_update():
    from deepad.training import _adam

    torch.manual_seed(0)
    a = nn.Linear(5, 3)
    b = nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    fused = _adam(list(a.parameters()), lr=1e-2, weight_decay=1e-4)
    plain = torch.optim.Adam(list(b.parameters()), lr=1e-2, weight_decay=1e-4)
    assert fused.defaults["fused"] is True
    x = torch.randn(32, 5)
    for _ in range(20):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_last_batch_of_one_row_joins_the_batch_before_it():
    from deepad.training import _in_batches

    sizes = [b.numel() for b in _in_batches(torch.arange(129), 64)]
    assert sizes == [64, 65] and sum(sizes) == 129
    assert [b.numel() for b in _in_batches(torch.arange(130), 64)] == [64, 64, 2]
    assert [b.numel() for b in _in_batches(torch.arange(1), 64)] == [1]
    assert [b.numel() for b in _in_batches(torch.arange(130), 64, drop_last=True)] == [64, 64]


@pytest.mark.parametrize("n_rows", [129, 257])
def test_batch_norm_autoencoder_fits_when_rows_leave_one_over(n_rows):
    """n % batch_size == 1 used to end each epoch with a one-row batch, which batch norm rejects deep inside torch."""
    X = np.random.default_rng(0).normal(size=(n_rows, 4))
    det = D.AutoEncoder(epochs=2, random_state=0).fit(X)  # batch 128, batch norm on
    assert det.batch_size == 128 and det.batch_norm
    assert np.isfinite(det.decision_function(X)).all()
