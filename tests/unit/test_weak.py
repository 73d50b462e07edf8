"""Weakly supervised detectors (DeepSAD, DevNet): a handful of labelled anomalies must help."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import deepad
from deepad.detectors import BoostedDetector, DeepSAD, DevNet, LocalGlobalEnsemble
from deepad.detectors.devnet import balanced_epoch

from conftest import FAST_PARAMS

WEAK = {"DeepSAD": DeepSAD, "DevNet": DevNet, "BoostedDetector": BoostedDetector}
# settings for the "labels help" check: defaults, DeepSAD a little shorter
HELP_PARAMS = {"DeepSAD": dict(epochs=30), "DevNet": dict(), "BoostedDetector": dict(iterations=300)}


def shifted_type(seed: int, n_normal: int, n_anomalies: int, d: int = 16, shift: float = 3.0):
    """Normal rows ~ N(0, I_d); anomalies of one known type: feature 0 shifted by ``shift``.

    In 16 dimensions one shifted feature barely changes a row's overall
    outlyingness, so unsupervised detectors find these anomalies poorly;
    a few labelled examples show which direction matters.
    """
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n_normal, d))
    anomalies = rng.normal(size=(n_anomalies, d))
    anomalies[:, 0] += shift
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(n_normal, dtype=int), np.ones(n_anomalies, dtype=int)]
    return X, y


@pytest.fixture(scope="module")
def weak_data():
    X_train, y_train = shifted_type(0, 600, 20)
    X_test, y_test = shifted_type(1, 300, 60)  # held-out anomalies of the same type
    labels = np.full(len(y_train), -1.0)
    labels[np.flatnonzero(y_train == 1)[:8]] = 1  # 8 labelled anomalies, the other 12 unlabelled
    return X_train, labels, X_test, y_test


def make(name, **extra):
    return WEAK[name](**{**FAST_PARAMS[name], "random_state": 0, **extra})


@pytest.mark.parametrize("name", sorted(WEAK))
def test_labels_help_on_held_out_anomalies_of_the_labelled_type(name, weak_data):
    X_train, labels, X_test, y_test = weak_data
    params = {"random_state": 0, **HELP_PARAMS[name]}
    with_labels = WEAK[name](**params).fit(X_train, labels)
    without = WEAK[name](**params).fit(X_train)
    auc_labels = roc_auc_score(y_test, with_labels.decision_function(X_test))
    auc_none = roc_auc_score(y_test, without.decision_function(X_test))
    assert auc_labels > 0.75, f"{name} with 8 labels: ROC-AUC {auc_labels:.3f}"
    assert auc_labels > auc_none + 0.1, f"{name}: labels {auc_labels:.3f} vs none {auc_none:.3f}"


@pytest.mark.parametrize("name", sorted(WEAK))
def test_nan_and_minus_one_both_mean_unlabelled(name, weak_data):
    X_train, labels, X_test, _ = weak_data
    with_nan = np.where(labels == -1, np.nan, labels)
    a = make(name).fit(X_train, labels)
    b = make(name).fit(X_train, with_nan)
    np.testing.assert_array_equal(a.decision_function(X_test), b.decision_function(X_test))
    assert a.n_labelled_anomalies_ == 8


@pytest.mark.parametrize("name", sorted(WEAK))
def test_bad_labels_rejected_with_row(name, weak_data):
    X_train, labels, _, _ = weak_data
    bad = labels.copy()
    bad[5] = 2
    with pytest.raises(ValueError, match=r"row 5 holds .*2"):
        make(name).fit(X_train, bad)
    with pytest.raises(ValueError, match=rf"y has {len(labels) - 1} entries but X has {len(labels)} rows"):
        make(name).fit(X_train, labels[:-1])
    text = labels.astype(object)
    text[7] = "fraud"
    with pytest.raises(ValueError, match=r"row 7 holds 'fraud', not a number"):
        make(name).fit(X_train, text)


@pytest.mark.parametrize("name", sorted(WEAK))
def test_y_none_works_and_is_deterministic(name, planted):
    X_train, X_test, y_test = planted
    a = make(name).fit(X_train)
    b = make(name).fit(X_train, None)
    s = a.decision_function(X_test)
    np.testing.assert_array_equal(s, b.decision_function(X_test))
    assert roc_auc_score(y_test, s) > 0.9
    assert a.n_labelled_anomalies_ == 0


def test_deep_sad_without_labels_is_deep_svdd_objective(planted):
    """y=None and all-unlabelled y give the same model: the labelled term vanishes."""
    X_train, X_test, _ = planted
    a = make("DeepSAD").fit(X_train)
    b = make("DeepSAD").fit(X_train, np.full(len(X_train), -1))
    np.testing.assert_array_equal(a.decision_function(X_test), b.decision_function(X_test))
    np.testing.assert_array_equal(a.center_, b.center_)
    assert np.all(np.abs(a.center_) >= DeepSAD.center_eps)


def test_deep_sad_labelled_anomalies_pushed_away_and_normals_pulled_in(weak_data):
    X_train, labels, _, _ = weak_data
    y = labels.copy()
    y[:20] = 0  # some labelled normal rows too
    det = make("DeepSAD", epochs=30).fit(X_train, y)
    assert det.n_labelled_normals_ == 20
    d = det.decision_scores_
    assert d[y == 1].min() > np.median(d[y == -1])
    assert np.median(d[y == 0]) < np.median(d[y == 1])


def test_devnet_pseudo_labels_only_without_real_labels(weak_data):
    X_train, labels, _, _ = weak_data
    sup = make("DevNet").fit(X_train, labels)
    assert (sup.n_labelled_anomalies_, sup.n_pseudo_labelled_, sup.n_synthetic_) == (8, 0, 0)
    uns = make("DevNet").fit(X_train)
    k = round(DevNet.pseudo_fraction * len(X_train))
    assert uns.n_pseudo_labelled_ == k
    assert uns.n_synthetic_ == DevNet.box_rows_per_pseudo_label * k


def test_devnet_scores_labelled_anomalies_beyond_the_margin(weak_data):
    X_train, labels, _, _ = weak_data
    det = make("DevNet", epochs=20).fit(X_train, labels)
    s = det.decision_scores_
    # normal rows are anchored near the reference mean 0; labelled ones pushed towards >= margin
    assert abs(np.median(s[labels == -1])) < 1.0
    assert np.median(s[labels == 1]) > 0.5 * det.margin


def test_devnet_balanced_sampler_yields_half_anomalies_per_batch(weak_data):
    """Record the epoch orders the Trainer really uses and check every batch's composition."""
    X_train, labels, _, _ = weak_data
    orders = []
    det = make("DevNet", epochs=3, batch_size=32)
    original = DevNet._sampler

    def recording(self, data):
        sample = original(self, data)

        def wrapped(train_index, generator):
            order = sample(train_index, generator)
            orders.append(order.clone())
            return order

        return wrapped

    DevNet._sampler = recording
    try:
        det.fit(X_train, labels)
    finally:
        DevNet._sampler = original
    assert len(orders) == 3
    anomalies = set(np.flatnonzero(labels == 1).tolist())
    n_unlabelled = int((labels != 1).sum())
    for order in orders:
        batches = order.split(32)
        assert all(b.numel() == 32 for b in batches)
        for b in batches:
            assert sum(int(i) in anomalies for i in b) == 16
        others = [int(i) for i in order if int(i) not in anomalies]
        # each unlabelled row is used at least once per epoch (the last batch wraps around)
        assert set(others) == set(range(len(labels))) - anomalies
        assert len(others) < n_unlabelled + 16


def test_balanced_epoch_odd_batch_and_reproducible():
    anomalies, others = torch.arange(3), torch.arange(3, 50)
    a = balanced_epoch(anomalies, others, 7, torch.Generator().manual_seed(0))
    b = balanced_epoch(anomalies, others, 7, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    for batch in a.split(7):
        assert batch.numel() == 7 and int((batch < 3).sum()) == 3


@pytest.mark.parametrize("name", sorted(WEAK))
def test_weakly_fitted_model_round_trips(name, weak_data, tmp_path):
    X_train, labels, X_test, _ = weak_data
    det = make(name).fit(X_train, labels)
    det.save(tmp_path / "m")
    loaded = deepad.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(X_test), det.decision_function(X_test))
    np.testing.assert_array_equal(loaded.decision_function(X_train), det.decision_scores_)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("DeepSAD", dict(eta=0), "eta must be a positive"),
        ("DeepSAD", dict(latent_dim=0), "latent_dim must be a positive integer"),
        ("DevNet", dict(margin=-1.0), "margin must be a positive"),
        ("DevNet", dict(n_reference=1), "n_reference must be None or an integer >= 2"),
        ("DevNet", dict(batch_size=1), "batch_size >= 2"),
        ("BoostedDetector", dict(iterations=0), "iterations must be a positive integer"),
        ("BoostedDetector", dict(label_pseudocount=-1), "label_pseudocount must be a number >= 0"),
        ("BoostedDetector", dict(learning_rate=2.0), "learning_rate must be None or in"),
        ("BoostedDetector", dict(combine="max"), "combine must be one of 'bulk', 'rank', 'probability'"),
        ("BoostedDetector", dict(unsup_weight=-0.1), "unsup_weight must be a number >= 0"),
    ],
)
def test_bad_hyper_parameters_rejected(name, params, match, planted):
    with pytest.raises(ValueError, match=match):
        make(name, **params).fit(planted[0])


def test_devnet_analytic_reference_works(weak_data):
    X_train, labels, X_test, y_test = weak_data
    det = make("DevNet", n_reference=None).fit(X_train, labels)
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.75


def test_boosted_without_labels_ranks_like_its_unsupervised_ensemble(planted):
    """No labelled anomaly: w = 0, the score is a strictly increasing function of the ensemble's score."""
    X_train, X_test, _ = planted
    boosted = make("BoostedDetector").fit(X_train, np.full(len(X_train), -1))
    ensemble = LocalGlobalEnsemble(n_neighbors_global=50, deep_weight=0.0).fit(X_train)  # its two kNN views only
    assert boosted.weight_ == 0.0 and boosted.plain_classifier_ is None
    b, e = boosted.decision_function(X_test), ensemble.decision_function(X_test)
    order = np.argsort(e, kind="stable")
    assert np.all(np.diff(b[order]) >= 0)
    assert len(np.unique(b)) == len(np.unique(e))


def test_boosted_weight_grows_with_the_number_of_labels(weak_data):
    X_train, labels, X_test, y_test = weak_data
    few = labels.copy()
    few[np.flatnonzero(labels == 1)[1:]] = -1  # one labelled anomaly
    one = make("BoostedDetector", label_pseudocount=3, combine="rank").fit(X_train, few)
    eight = make("BoostedDetector", label_pseudocount=3, combine="rank").fit(X_train, labels)
    assert one.n_labelled_anomalies_ == 1 and eight.n_labelled_anomalies_ == 8
    assert one.weight_ == pytest.approx(1 / (1 + 3)) and eight.weight_ == pytest.approx(8 / (8 + 3))
    assert make("BoostedDetector", combine="rank").fit(X_train, few).weight_ == 1.0  # the classifiers alone
    # the members' probabilities enter as ranks among the unlabelled training rows
    for ref in (eight.plain_reference_, eight.augmented_reference_):
        assert np.all(np.diff(ref) >= 0) and ref.shape[0] == int((labels != 1).sum())
    # the augmented member sees the features plus the ensemble's two views and score
    assert eight.augmented_classifier_.feature_importances_.shape == (X_train.shape[1] + 3,)


def test_boosted_ties_broken_by_the_unsupervised_score(weak_data):
    """Rank rule: rows beyond every training row tie in both CDFs; the more unusual one must still rank higher."""
    X_train, labels, _, _ = weak_data
    det = make("BoostedDetector", combine="rank").fit(X_train, labels)
    far = np.tile(X_train[labels == 1][:1], (2, 1))
    far[:, 0] += np.array([20.0, 40.0])
    s = det.decision_function(far)
    assert s[1] > s[0]
    assert s.max() <= 1.0 + 0.5 / (labels != 1).sum()


def test_boosted_damaged_classifier_file_is_a_model_format_error(weak_data, tmp_path):
    from deepad.persistence import ModelFormatError

    X_train, labels, _, _ = weak_data
    make("BoostedDetector").fit(X_train, labels).save(tmp_path / "m")
    (tmp_path / "m" / "plain_classifier_.cbm").write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="plain_classifier_.cbm is missing or damaged"):
        deepad.load(tmp_path / "m")


def test_boosted_probability_combination_is_the_members_mean_probability(weak_data):
    X_train, labels, X_test, y_test = weak_data
    det = make("BoostedDetector", combine="probability").fit(X_train, labels)
    s = det.decision_function(X_test)
    aug = np.column_stack([X_test, det.ensemble_.view_scores(X_test), det.ensemble_.decision_function(X_test)])
    mean_p = 0.5 * (
        det.plain_classifier_.predict_proba(X_test)[:, 1] + det.augmented_classifier_.predict_proba(aug)[:, 1]
    )
    np.testing.assert_allclose(s, mean_p, atol=1e-9)
    assert roc_auc_score(y_test, s) > 0.75


def test_boosted_plain_member_is_catboost_with_its_own_defaults(weak_data):
    """Issue #5: an explicit l2_leaf_reg (even CatBoost's default 3) switches CatBoost's data-size learning rate
    off (0.03 fixed); the plain member must be exactly the CatBoost a user gets with defaults."""
    from catboost import CatBoostClassifier

    X_train, labels, X_test, _ = weak_data
    det = make("BoostedDetector").fit(X_train, labels)
    ref = CatBoostClassifier(
        iterations=FAST_PARAMS["BoostedDetector"]["iterations"],
        random_seed=0,
        thread_count=1,
        verbose=0,
        allow_writing_files=False,
    ).fit(X_train, (labels == 1).astype(int))
    rate = det.plain_classifier_.get_all_params()["learning_rate"]
    assert rate == pytest.approx(ref.get_all_params()["learning_rate"]) and rate != pytest.approx(0.03)
    np.testing.assert_array_equal(det.plain_classifier_.predict_proba(X_test), ref.predict_proba(X_test))
    # setting l2_leaf_reg is passed on (and, as in CatBoost, fixes the rate)
    fixed = make("BoostedDetector", l2_leaf_reg=3.0).fit(X_train, labels)
    assert fixed.plain_classifier_.get_all_params()["l2_leaf_reg"] == pytest.approx(3.0)
    assert fixed.plain_classifier_.get_all_params()["learning_rate"] == pytest.approx(0.03)


def test_boosted_bulk_rule_is_catboost_log_odds_plus_bounded_unsupervised_score(weak_data):
    """Issue 22's rule: score = CatBoost's log-odds + unsup_weight * atan(z), z the ensemble's score standardised
    by the median and IQR of the unlabelled rows' leave-one-out scores."""
    from catboost import CatBoostClassifier

    X_train, labels, X_test, y_test = weak_data
    det = make("BoostedDetector").fit(X_train, labels)
    assert det.combine == "bulk" and det.augmented_classifier_ is None
    ref = CatBoostClassifier(
        iterations=FAST_PARAMS["BoostedDetector"]["iterations"],
        random_seed=0,
        thread_count=1,
        verbose=0,
        allow_writing_files=False,
    ).fit(X_train, (labels == 1).astype(int))
    log_odds = ref.predict(X_test, prediction_type="RawFormulaVal")
    ens = LocalGlobalEnsemble(n_neighbors_global=50).fit(X_train)
    loo = ens.decision_scores_[labels != 1]
    q25, med, q75 = np.percentile(loo, [25, 50, 75])
    z = (ens.decision_function(X_test) - med) / (q75 - q25)
    # the weight: unsup_weight x (2 AUC - 1 of the ensemble on the labelled anomalies, clipped to [0, 1]) x the
    # spread of CatBoost's log-odds over the unlabelled training rows
    auc = roc_auc_score(np.r_[np.zeros(len(loo)), np.ones(8)], np.r_[loo, ens.decision_scores_[labels == 1]])
    assert det.unsup_gini_ == pytest.approx(np.clip(2 * auc - 1, 0, 1), abs=2 / len(loo))
    spread = ref.predict(X_train[labels != 1], prediction_type="RawFormulaVal").std()
    assert det.unsup_coef_ == pytest.approx(det.unsup_weight * det.unsup_gini_ * spread, rel=1e-9)
    expected = log_odds + det.unsup_coef_ * np.arctan(z)
    np.testing.assert_allclose(det.decision_function(X_test), expected, rtol=0, atol=1e-9)
    assert roc_auc_score(y_test, det.decision_function(X_test)) > 0.75


def test_boosted_bulk_rule_keeps_the_classifiers_top_of_the_list(weak_data):
    """The unsupervised term is bounded by unsup_coef_ * pi / 2, so it never reorders rows whose log-odds differ by
    more than unsup_coef_ * pi; with unsup_weight=0 the ranking is CatBoost's exactly."""
    X_train, labels, X_test, _ = weak_data
    det = make("BoostedDetector").fit(X_train, labels)
    s = det.decision_function(X_test)
    log_odds = det.plain_classifier_.predict(X_test, prediction_type="RawFormulaVal")
    i, j = np.triu_indices(len(s), 1)
    assert det.unsup_coef_ > 0
    far = np.abs(log_odds[i] - log_odds[j]) > det.unsup_coef_ * np.pi
    assert far.any()
    assert np.all(np.sign(s[i] - s[j])[far] == np.sign(log_odds[i] - log_odds[j])[far])
    zero = make("BoostedDetector", unsup_weight=0.0).fit(X_train, labels)
    np.testing.assert_array_equal(
        zero.decision_function(X_test), zero.plain_classifier_.predict(X_test, prediction_type="RawFormulaVal")
    )
