"""``refit``: train a saved model again on recent rows -- from its saved weights where it has them -- and say so.

When normal has moved so far that the model no longer ranks rows well
(the feature tests of :func:`~deepad.drift.detect_drift` keep firing after
:func:`~deepad.drift.recalibrate`), the detector itself has to learn the
new normal.  ``refit`` keeps what the user chose -- the schema, the
detector class and its parameters, the preprocessing options, the
threshold rule -- and fits them on the new rows (optionally only the
``retain`` most recent ones: a retention window).  A neural detector whose
training has no stage before the loop (the autoencoders, VAE, DAGMM, ...)
continues from the saved weights (*warm start*: the network starts where
it stopped, and ``epochs`` more epochs follow, usually far fewer being
needed); every other detector is refitted from scratch, and the version
history says which happened and why.  ``deepad train DATA --warm-start
MODEL_DIR [--retain N]`` is the command line.
"""

from __future__ import annotations

import copy

import numpy as np

from deepad.training import Callback

__all__ = ["refit", "WarmStart", "warm_start_reason"]


class WarmStart(Callback):
    """Training callback: load saved weights into the module when training begins.

    With ``old_names`` / ``new_names`` (the encoded features the weights
    were trained on, and those of the new rows) a changed layout is mapped
    by name: along each axis that follows the number of input features
    (found by building a module one feature wider with ``build``), a
    feature the saved model had takes its saved weights, a new one keeps
    the fresh initialisation, a dropped one is dropped.  ``loaded`` says
    afterwards whether the weights were loaded; ``reason`` why not.
    """

    def __init__(self, state_dict: dict, old_names=None, new_names=None, build=None):
        self.state_dict, self.old_names, self.new_names, self.build = state_dict, old_names, new_names, build
        self.loaded, self.reason, self.mapped = False, None, None

    def on_train_begin(self, trainer, module) -> None:
        if self.loaded:
            return
        own = module.state_dict()
        if set(own) != set(self.state_dict):
            self.reason = "the network's layers differ from the saved model's; refitted from scratch"
            return
        if self.old_names is None or list(self.old_names) == list(self.new_names):
            if any(tuple(own[k].shape) != tuple(v.shape) for k, v in self.state_dict.items()):
                self.reason = "the network's shape differs from the saved model's; refitted from scratch"
                return
            module.load_state_dict(self.state_dict)
            self.loaded = True
            return
        merged = self._mapped(own)
        if merged is not None:
            module.load_state_dict(merged)
            self.loaded = True

    def _mapped(self, own: dict) -> dict | None:
        import torch

        new_names = list(self.new_names)
        with torch.random.fork_rng():
            wider = self.build(len(new_names) + 1).state_dict()
        where = {name: i for i, name in enumerate(self.old_names)}
        pairs = [(i, where[n]) for i, n in enumerate(new_names) if n in where]
        to_idx = torch.as_tensor([i for i, _ in pairs], dtype=torch.long)
        from_idx = torch.as_tensor([j for _, j in pairs], dtype=torch.long)
        merged = {}
        for key, fresh in own.items():
            saved = self.state_dict[key]
            axes = [a for a in range(fresh.dim()) if wider[key].shape[a] != fresh.shape[a]]
            others_match = (
                all(saved.shape[a] == fresh.shape[a] for a in range(fresh.dim()) if a not in axes)
                and saved.dim() == fresh.dim()
            )
            if len(axes) > 1 or not others_match or (axes and saved.shape[axes[0]] != len(self.old_names)):
                self.reason = f"cannot map the saved weights {key!r} to the new features; refitted from scratch"
                return None
            if not axes:
                merged[key] = saved
                continue
            out = fresh.clone()
            out.index_copy_(axes[0], to_idx, saved.index_select(axes[0], from_idx))
            merged[key] = out
        self.mapped = {
            "kept": len(pairs),
            "new": len(new_names) - len(pairs),
            "dropped": len(self.old_names) - len(pairs),
        }
        return merged


def warm_start_reason(detector) -> str | None:
    """``None`` when ``detector`` (a fitted deepad detector) can continue from its weights, else why it cannot."""
    from deepad.detectors._neural import NeuralDetector

    if not isinstance(detector, NeuralDetector) or getattr(detector, "module_", None) is None:
        return f"{type(detector).__name__} has no network weights to continue from; refitted from scratch"
    if type(detector)._before_training is not NeuralDetector._before_training:
        return (
            f"{type(detector).__name__} sets part of its state before training (a centre, a pre-training stage) "
            "from the network it starts with; refitted from scratch so that state matches the weights"
        )
    return None


def _warm_reason(warm: WarmStart) -> str:
    if not warm.mapped:
        return "continued training from the saved weights"
    m = warm.mapped
    return (
        f"continued training from the saved weights; the encoded features changed, mapped by name: {m['kept']} "
        f"kept their weights, {m['new']} new (fresh weights), {m['dropped']} dropped"
    )


def _rule(model) -> tuple[str, dict]:
    """The saved model's threshold rule as ``apply_threshold_rule`` takes it."""
    method = dict(getattr(model, "threshold_method_", {}) or {})
    name = method.get("method")
    if name == "fpr":
        return "fpr", {"fpr": float(method["fpr"])}
    if name in ("pot", "pot_risk"):
        return "pot", {"pot_risk": float(method.get("pot_risk", 1e-3))}
    return "contamination", {}


def refit(
    model,
    X,
    *,
    warm_start: bool = True,
    retain: int | None = None,
    calibration=None,
    params: dict | None = None,
    note: str | None = None,
    path=None,
    **fit_params,
):
    """A new model: ``model``'s settings fitted on ``X`` (its last ``retain`` rows), warm-started where it can be.

    ``model``: a fitted :class:`~deepad.pipeline.TabularDetector` (tables)
    or deepad detector (arrays).  ``retain``: keep only the ``retain`` last
    rows of ``X`` (in its order: a retention window of the most recent
    rows).  ``warm_start``: a neural detector continues training from the
    saved weights (see :func:`warm_start_reason` for which can);
    otherwise, or with ``warm_start=False``, the detector is fitted from
    scratch.  ``calibration``: clean held-out rows to calibrate the new
    model's p-values on (as ``deepad train --calibration-fraction``).
    ``params``: detector parameters to change for this fit (e.g. fewer
    ``epochs`` for a warm start).  The threshold rule (contamination, FPR
    or POT and its value) is the saved model's.  The new model's
    ``version_history_`` is the old one's plus one entry (``action``:
    ``"warm-start"`` or ``"refit"``, rows, retain, the reason, thresholds
    before and after, your ``note``); ``path`` saves it there.
    ``fit_params`` go to ``fit`` (e.g. ``callbacks``).  The old model is
    not changed.
    """
    from sklearn.base import clone

    from deepad.data.readers import to_frame
    from deepad.drift.recalibrate import history, record_version
    from deepad.thresholds import apply_threshold_rule

    past = history(model)
    tabular = hasattr(model, "preprocessor_state_")
    fitted = model.detector_ if tabular else model
    if retain is not None:
        if isinstance(retain, bool) or not isinstance(retain, (int, np.integer)) or retain < 1:
            raise ValueError(f"retain must be a positive number of rows, got {retain!r}.")
        if tabular:
            X = to_frame(X)
            X = X.iloc[-int(retain) :].reset_index(drop=True)
        else:
            X = np.asarray(X)[-int(retain) :]
    new = clone(model)
    template = new.detector if tabular else new
    if tabular and template is None:  # DEFAULT: fix the class the saved model used
        template = new.detector = clone(fitted)
    if params:
        template.set_params(**params)
    why = warm_start_reason(fitted) if warm_start else "warm_start=False: refitted from scratch"
    warm = None
    if why is None:
        old_names = new_names = None
        if tabular:  # the weights mean the saved model's encoded features: map a changed layout by name
            old_names = list(model.feature_names_out_)
            new_names = list(new._new_preprocessor().fit(X).feature_names_out_)
        warm = WarmStart(copy.deepcopy(fitted.module_.state_dict()), old_names, new_names, template._build_module)
        new.fit(X, **{**fit_params, "callbacks": [*fit_params.get("callbacks", ()), warm]})
        if tabular and list(new.feature_names_out_) != new_names:  # a training sample encoded differently
            why = "the training sample's encoded features differ from the retained rows'; refitted from scratch"
        elif not warm.loaded:
            why = warm.reason or "the weights were not loaded; refitted from scratch"
        if why is not None:
            warm = None
            new = clone(new)
    if warm is None:
        new.fit(X, **fit_params)
    if calibration is not None:
        new.calibrate(calibration)
    method, options = _rule(model)
    apply_threshold_rule(new, method, **options)
    n_rows = len(new.decision_scores_)
    entry = {
        "rows": int(n_rows),
        **({"retain": int(retain)} if retain is not None else {}),
        "detector": type(new.detector_ if tabular else new).__name__,
        "reason": _warm_reason(warm) if why is None else why,
        "threshold_before": float(model.threshold_),
        "threshold": float(new.threshold_),
        "rule": new.threshold_method_.get("method"),
        **({"calibration_rows": int(len(new.calibration_scores_))} if calibration is not None else {}),
        **({"params": dict(params)} if params else {}),
        **({"note": str(note)} if note else {}),
    }
    record_version(new, past, "warm-start" if why is None else "refit", entry, path)
    return new
