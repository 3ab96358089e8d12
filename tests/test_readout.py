"""Linear read-outs of the selected heads (``SAVClassifier(readout=...)``, ``savs.readout``), each checked against
an independent fit on the same columns: scikit-learn's own pipeline for logistic, an explicit F x F shrinkage LDA
(scikit-learn's Ledoit-Wolf) for lda; and the save / load round trip of a pipeline holding one."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import safetensors.numpy
from conftest import make_examples
from scipy.special import softmax
from sklearn.covariance import ledoit_wolf
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from savs import SAVClassifier, SAVPipeline, fit_sav
from savs.extract import extract_heads
from savs.identity import digest, json_digest
from savs.pipeline import FORMAT_VERSION, SavedSAVError
from savs.readout import C_GRID

L, H, D = 4, 5, 6


def _data(n_classes: int, shots: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Few-shot X (n, L, H, D) with labels, and 30 queries; heads (1, 2) and (3, 0) carry the label, weakly."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), shots)
    dirs = rng.normal(size=(n_classes, D))

    def draw(labels: np.ndarray) -> np.ndarray:
        X = rng.normal(size=(len(labels), L, H, D))
        X[:, 1, 2] += dirs[labels]
        X[:, 3, 0] += 0.5 * dirs[labels]
        return X

    return draw(y), y, draw(rng.integers(0, n_classes, 30))


def _columns(clf: SAVClassifier, X: np.ndarray) -> np.ndarray:
    """The selected heads' vectors, concatenated in rank order: (n, k * D)."""
    layer, head = clf.heads_.T
    return X[:, layer, head].reshape(len(X), -1)


def _folds(y: np.ndarray, n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """The i-th example of each class in fold i mod n_folds (SAVClassifier's documented folds), as (train, test)."""
    rank = np.array([np.sum(y[:i] == y[i]) for i in range(len(y))])
    fold = rank % n_folds
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in np.unique(fold)]


@pytest.mark.parametrize(("n_classes", "shots", "k"), [(2, 6, 3), (4, 5, 2), (3, 2, 5)])
def test_logistic_equals_scikit_learn_on_the_same_columns(n_classes: int, shots: int, k: int) -> None:
    X, y, Q = _data(n_classes, shots)
    clf = SAVClassifier(n_heads=k, readout="logistic").fit(X, y)
    ref = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=C_GRID,
            l1_ratios=(0.0,),
            cv=_folds(y),
            scoring="neg_log_loss",
            max_iter=2000,
            use_legacy_attributes=False,
        ),  # fmt: skip
    ).fit(_columns(clf, X), y)
    np.testing.assert_array_equal(clf.predict(Q), ref.predict(_columns(clf, Q)))
    # With more features than shots ours fits in the shots' row basis: the same optimum, which lbfgs reaches only up
    # to its tolerance (its stopping test is not rotation-invariant); with fewer, the very same fit.
    atol = 2e-3 if k * D > len(y) else 1e-12
    np.testing.assert_allclose(clf.predict_proba(Q), ref.predict_proba(_columns(clf, Q)), rtol=0, atol=atol)
    assert clf.readout_.regularization == ref[-1].C_


@pytest.mark.parametrize(
    ("n_classes", "shots", "k", "shrinkage"), [(2, 6, 3, "auto"), (4, 2, 5, "auto"), (3, 4, 2, 0.3)]
)
def test_lda_equals_the_explicit_shrunk_covariance_solution(n_classes: int, shots: int, k: int, shrinkage) -> None:
    """Woodbury in the examples' span = forming the F x F pooled covariance, Ledoit-Wolf's by scikit-learn."""
    X, y, Q = _data(n_classes, shots, seed=1)
    clf = SAVClassifier(n_heads=k, readout="lda", shrinkage=shrinkage).fit(X, y)
    scaler = StandardScaler().fit(_columns(clf, X))
    S, T = scaler.transform(_columns(clf, X)), scaler.transform(_columns(clf, Q))
    means = np.stack([S[y == c].mean(axis=0) for c in range(n_classes)])
    centred = S - means[y]
    if shrinkage == "auto":
        sigma, lam = ledoit_wolf(centred, assume_centered=True)
    else:
        within = centred.T @ centred / len(S)
        lam = shrinkage
        sigma = (1 - lam) * within + lam * np.trace(within) / S.shape[1] * np.eye(S.shape[1])
    coef = np.linalg.solve(sigma, means.T).T  # (C, F)
    logits = T @ coef.T - 0.5 * np.sum(means * coef, axis=1) + np.log(np.bincount(y) / len(y))
    np.testing.assert_allclose(clf.predict_proba(Q), softmax(logits, axis=1), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(Q), logits.argmax(axis=1))
    assert clf.readout_.regularization == pytest.approx(lam)


def test_readout_learns_what_the_vote_cannot() -> None:
    """A label carried by one quiet coordinate next to three loud noise coordinates: nearest-mean votes are swamped by
    the noise (near chance), a standardised linear read-out weighs the quiet coordinate up."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    y_test = np.repeat([0, 1], 100)

    def draw(labels: np.ndarray) -> np.ndarray:
        X = rng.normal(size=(len(labels), 2, 2, 4))
        X[:, 0, 0, 1:] *= 10  # loud noise
        X[:, 0, 0, 0] = np.where(labels == 1, 1.0, -1.0) + 0.3 * rng.normal(size=len(labels))
        return X

    X, Q = draw(y), draw(y_test)
    vote = SAVClassifier(heads=[(0, 0)]).fit(X, y).score(Q, y_test)
    logistic = SAVClassifier(heads=[(0, 0)], readout="logistic").fit(X, y).score(Q, y_test)
    lda = SAVClassifier(heads=[(0, 0)], readout="lda").fit(X, y).score(Q, y_test)
    assert logistic > 0.95 and lda > 0.95 and vote < 0.75, (vote, logistic, lda)


@pytest.mark.parametrize("readout", ["logistic", "lda"])
def test_compact_and_calibration_keep_the_readout(readout: str) -> None:
    X, y, Q = _data(3, 6)
    clf = SAVClassifier(n_heads=3, readout=readout).fit(X, y)
    small = clf.compact()
    layer, head = clf.heads_.T
    np.testing.assert_array_equal(small.predict(Q[:, layer, head][:, :, None]), clf.predict(Q))
    np.testing.assert_allclose(small.predict_proba(Q[:, layer, head][:, :, None]), clf.predict_proba(Q))
    calibrated = SAVClassifier(n_heads=3, readout=readout, calibration="temperature").fit(X, y)
    assert calibrated.calibration_scale_ > 0
    np.testing.assert_array_equal(calibrated.predict(Q), clf.predict(Q))  # calibration changes probabilities only
    log_p = np.log(clf.predict_proba(Q))
    np.testing.assert_allclose(calibrated.predict_proba(Q), softmax(calibrated.calibration_scale_ * log_p, axis=1))


def test_vote_is_the_default_and_unchanged() -> None:
    X, y, Q = _data(3, 6)
    default, vote = SAVClassifier(n_heads=3).fit(X, y), SAVClassifier(n_heads=3, readout="vote").fit(X, y)
    assert default.readout == "vote" and default.readout_ is None
    np.testing.assert_array_equal(default.predict_proba(Q), vote.predict_proba(Q))
    np.testing.assert_array_equal(default.predict_proba(Q) * 3 % 1, 0)  # vote shares of 3 heads


def test_bad_readout_and_too_few_shots_are_refused() -> None:
    X, y, _ = _data(3, 2)
    with pytest.raises(ValueError, match=r"readout must be one of \('vote', 'logistic', 'lda'\); got 'svm'"):
        SAVClassifier(readout="svm").fit(X, y)
    with pytest.raises(ValueError, match=r"readout='lda' needs at least 2 examples per class"):
        SAVClassifier(readout="lda").fit(X[::2], y[::2])
    assert SAVClassifier(readout="logistic").examples_needed() == {"readout='logistic'": 2}


# ----- a pipeline with a read-out: fit_sav, save, load -------------------------------------------------------
def _three_classes(examples: list) -> list:
    """Relabel to three classes: a multi-row coefficient matrix (two classes have one row, whatever its layout)."""
    return [replace(e, label=str(i % 3)) for i, e in enumerate(examples)]


@pytest.fixture
def saved_logistic(tiny_adapter, tmp_path):
    adapter = tiny_adapter("llava")
    shots = _three_classes(make_examples(12, with_images=True, seed=1))
    pipe = fit_sav(adapter, shots, n_heads=3, readout="logistic")
    pipe.save(tmp_path / "sav")
    return adapter, pipe, tmp_path / "sav"


@pytest.mark.usefixtures("one_thread")
def test_fit_sav_readout_round_trips_without_pickle(saved_logistic) -> None:
    adapter, pipe, path = saved_logistic
    queries = make_examples(6, with_images=True, seed=2)
    meta = json.loads((path / "sav.json").read_text())
    assert meta["readout"] == "logistic" and meta["format"] == FORMAT_VERSION
    arrays = safetensors.numpy.load((path / "sav.safetensors").read_bytes())
    assert {"readout_mean", "readout_scale", "readout_coef", "readout_intercept"} <= set(arrays)
    loaded = SAVPipeline.load(path, adapter=adapter)
    np.testing.assert_allclose(
        loaded.predict_proba(queries, progress=False), pipe.predict_proba(queries, progress=False)
    )
    shots = _three_classes(make_examples(12, with_images=True, seed=1))
    full = SAVClassifier(n_heads=3, readout="logistic").fit(extract_heads(adapter, shots, progress=False),
                                                             [e.label for e in shots])  # fmt: skip
    np.testing.assert_array_equal(loaded.classifier.readout_.coef, full.readout_.coef)
    Xq = extract_heads(adapter, queries, progress=False)
    np.testing.assert_array_equal(loaded.predict(queries, progress=False), full.predict(Xq))


def _rewrite(path, arrays_change=None, meta_change=None) -> None:
    """Edit a saved SAV's arrays and/or JSON, keeping its checksum consistent (so the field check is what fails)."""
    arrays = safetensors.numpy.load((path / "sav.safetensors").read_bytes())
    if arrays_change:
        arrays_change(arrays)
    data = safetensors.numpy.save(arrays)
    (path / "sav.safetensors").write_bytes(data)
    meta = json.loads((path / "sav.json").read_text())
    meta["arrays_sha256"] = digest(data)
    if meta_change:
        meta_change(meta)
    meta["json_sha256"] = json_digest({k: v for k, v in meta.items() if k != "json_sha256"})
    (path / "sav.json").write_text(json.dumps(meta))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    ("arrays_change", "meta_change", "message"),
    [
        (lambda a: a.pop("readout_coef"), None, "sav.safetensors: readout: readout_coef: missing"),
        (lambda a: a.update(readout_scale=-a["readout_scale"]), None, "readout_scale: expected positive"),
        (lambda a: a.update(readout_mean=a["readout_mean"][:2]), None, r"readout_mean: expected .* shape \(48,\)"),
        (lambda a: a["readout_intercept"].__setitem__(0, np.nan), None, "readout_intercept: 1 values are NaN"),
        (None, lambda m: m.update(readout="svm"), "sav.json: readout: 'svm' is not one of"),
        (None, lambda m: m.pop("readout"), "sav.json: readout: missing"),
    ],
)
def test_load_refuses_a_bad_readout(saved_logistic, arrays_change, meta_change, message) -> None:
    adapter, _, path = saved_logistic
    _rewrite(path, arrays_change, meta_change)
    with pytest.raises(SavedSAVError, match=message):
        SAVPipeline.load(path, adapter=adapter)
