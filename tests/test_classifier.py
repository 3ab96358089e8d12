"""Tests for SAVClassifier: hand-worked cases, synthetic recovery, a naive reference, sklearn checks."""

from __future__ import annotations

import doctest
import warnings
from collections import Counter

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import savs.classifier
from savs.classifier import SAVClassifier

# ---------------------------------------------------------------------------------------------------------
# 1. Hand-worked example: 2 layers x 2 heads x d=2, classes cat < dog < owl, two shots each.
# Flat heads (layer-major): h0=(0,0), h1=(0,1), h2=(1,0), h3=(1,1). Per head, the six training vectors:
#   h0: cat (1,0),(3,0)  dog (0,1),(0,3)  owl (-1,0),(-3,0)  -> means (2,0),(0,2),(-2,0): all right, 6/6
#   h1: cat (1,0),(1,0)  dog (0,1),(0,1)  owl (1,0),(1,0)    -> cat and owl means equal: the nearest-mean tie
#       goes to cat (first class), so both owls are wrong: 4/6 (same with leave-one-out)
#   h2: cat (1,0),(1,0)  dog (0,1),(0,1)  owl (0,1),(0,1)    -> dog/owl tie goes to dog: 4/6 (same with LOO)
#   h3: cat (1,0),(1,0)  dog (0,1),(0,1)  owl (-2,0),(1,1)   -> owl mean (-.5,.5); owl (1,1) has cosine 1 to
#       both cat and dog, tie -> cat, wrong: 5/6. Leave-one-out: owl (-2,0) vs the other owl (1,1) scores
#       -sqrt2 < 0 (dog), and owl (1,1) vs (-2,0) scores -1 < 1 (cat): both wrong, 4/6.
# In-sample ranking (stable, ties layer-major): h0 (1), h3 (5/6), h1 (4/6), h2 (4/6).
# ---------------------------------------------------------------------------------------------------------
HAND_HEADS = {  # flat head -> the six training vectors, in the order of HAND_Y
    (0, 0): [(1, 0), (3, 0), (0, 1), (0, 3), (-1, 0), (-3, 0)],
    (0, 1): [(1, 0), (1, 0), (0, 1), (0, 1), (1, 0), (1, 0)],
    (1, 0): [(1, 0), (1, 0), (0, 1), (0, 1), (0, 1), (0, 1)],
    (1, 1): [(1, 0), (1, 0), (0, 1), (0, 1), (-2, 0), (1, 1)],
}
HAND_Y = np.array(["cat", "cat", "dog", "dog", "owl", "owl"])
# Queries, per head (h0, h1, h2, h3). Votes in in-sample rank order (h0, h3, h1, h2):
#   q1: h0 (0,1)->dog, h3 (1,0)->cat, h1 (1,0)->cat (cat/owl tie), h2 (0,1)->dog (dog/owl tie)
#       -> 2-2 tie between cat and dog; h0 (rank 1) voted dog -> dog.
#   q2: all (-1,0): h0->owl, h3->owl (cosine .71 beats 0 and -1), h1->dog (0 beats -1, -1), h2->dog (dog/owl
#       tie at 0) -> 2-2 tie between dog and owl; h0 voted owl -> owl (argmax of vote shares would say dog).
#   q3: all (1,0): every head votes cat.
HAND_QUERIES = {
    (0, 0): [(0, 1), (-1, 0), (1, 0)],
    (0, 1): [(1, 0), (-1, 0), (1, 0)],
    (1, 0): [(0, 1), (-1, 0), (1, 0)],
    (1, 1): [(1, 0), (-1, 0), (1, 0)],
}


def _grid(per_head: dict[tuple[int, int], list[tuple[int, int]]]) -> np.ndarray:
    """Stack {(layer, head): [vector per example]} into an (n, 2, 2, 2) float array."""
    n = len(next(iter(per_head.values())))
    X = np.zeros((n, 2, 2, 2))
    for (layer, head), vectors in per_head.items():
        X[:, layer, head] = vectors
    return X


X_HAND, Q_HAND = _grid(HAND_HEADS), _grid(HAND_QUERIES)


def test_hand_worked_in_sample_scores_selection_votes_and_ties() -> None:
    """Exact head scores, ranking, per-head votes and tie-broken predictions on the hand-worked example."""
    clf = SAVClassifier(n_heads="all").fit(X_HAND, HAND_Y)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "owl"])
    np.testing.assert_array_equal(clf.head_scores_, [[6 / 6, 4 / 6], [4 / 6, 5 / 6]])
    np.testing.assert_array_equal(clf.heads_, [[0, 0], [1, 1], [0, 1], [1, 0]])
    np.testing.assert_array_equal(clf.class_means_[:, 0, 0], [[2, 0], [0, 2], [-2, 0]])
    np.testing.assert_array_equal(clf.class_means_[:, 1, 1], [[1, 0], [0, 1], [-0.5, 0.5]])
    np.testing.assert_array_equal(clf.head_votes(Q_HAND), [[1, 0, 0, 1], [2, 2, 1, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(clf.predict(Q_HAND), ["dog", "owl", "cat"])
    np.testing.assert_array_equal(clf.predict_proba(Q_HAND), [[0.5, 0.5, 0], [0, 0.5, 0.5], [1, 0, 0]])
    # Fewer heads: top 1 = h0; top 2 = h0, h3 (1-1 ties on q1 -> h0's dog); top 3 adds h1 (q1 -> 2 cats).
    expected = {1: ["dog", "owl", "cat"], 2: ["dog", "owl", "cat"], 3: ["cat", "owl", "cat"]}
    for k, preds in expected.items():
        np.testing.assert_array_equal(SAVClassifier(n_heads=k).fit(X_HAND, HAND_Y).predict(Q_HAND), preds)
    # The default (20 heads) clips to the 4 available.
    assert SAVClassifier().fit(X_HAND, HAND_Y).heads_.shape == (4, 2)


def test_hand_worked_leave_one_out() -> None:
    """Leave-one-out drops h3 (its owl class only looks separable in-sample) to the bottom of the ranking."""
    clf = SAVClassifier(n_heads="all", scoring="leave_one_out").fit(X_HAND, HAND_Y)
    np.testing.assert_array_equal(clf.head_scores_, [[6 / 6, 4 / 6], [4 / 6, 4 / 6]])
    np.testing.assert_array_equal(clf.heads_, [[0, 0], [0, 1], [1, 0], [1, 1]])
    # Class means are the full-data means whatever the scoring rule.
    np.testing.assert_array_equal(clf.class_means_[:, 1, 1], [[1, 0], [0, 1], [-0.5, 0.5]])


def test_given_heads_bypass_selection_and_keep_their_order() -> None:
    """heads= fixes the voters in the given order: q1's 1-1 tie now goes to h3's cat, not h0's dog."""
    clf = SAVClassifier(heads=[(1, 1), (0, 0)]).fit(X_HAND, HAND_Y)
    np.testing.assert_array_equal(clf.heads_, [[1, 1], [0, 0]])
    np.testing.assert_array_equal(clf.head_scores_, [[6 / 6, 4 / 6], [4 / 6, 5 / 6]])
    np.testing.assert_array_equal(clf.head_votes(Q_HAND), [[0, 1], [2, 2], [0, 0]])
    np.testing.assert_array_equal(clf.predict(Q_HAND), ["cat", "owl", "cat"])


def test_euclidean_separates_collinear_means_that_cosine_cannot() -> None:
    """Single head, means (1,0) and (10,0): cosine ties (-> first class, 2/4 right), L2 gets all 4."""
    X = np.array([[1.0, 0.0], [1.0, 0.0], [10.0, 0.0], [10.0, 0.0]])
    y = np.array([0, 0, 1, 1])
    assert SAVClassifier(metric="cosine").fit(X, y).head_scores_[0, 0] == 0.5
    assert SAVClassifier(metric="euclidean").fit(X, y).head_scores_[0, 0] == 1.0
    np.testing.assert_array_equal(SAVClassifier(metric="euclidean").fit(X, y).predict([[9.0, 0.0]]), [1])


def test_zero_class_mean_is_cosine_zero_without_warnings() -> None:
    """A class whose mean is the zero vector has cosine 0 to everything (no division warning)."""
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = SAVClassifier().fit(X, [0, 0, 1, 1])
    # Class 0 examples: cosine 0 to both means -> tie -> class 0; class 1 examples: cosine 1 to class 1.
    assert clf.head_scores_[0, 0] == 1.0


# ---------------------------------------------------------------------------------------------------------
# 2. Synthetic recovery: 3 label-carrying heads among 6 x 8 pure-noise heads.
# ---------------------------------------------------------------------------------------------------------
L, H, D, C = 6, 8, 16, 4
INFORMATIVE = {(0, 5), (2, 1), (5, 6)}


def _synthetic(n_per_class: int, rng: np.random.Generator, dirs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pure N(0, 1) heads except INFORMATIVE ones: 3 * class direction + N(0, 0.3^2) noise."""
    y = np.repeat(np.arange(C), n_per_class)
    X = rng.normal(size=(len(y), L, H, D))
    for layer, head in INFORMATIVE:
        X[:, layer, head] = 3 * dirs[layer, head][y] + 0.3 * rng.normal(size=(len(y), D))
    return X, y


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """20-shot training set and a 50-per-class held-out set sharing the class directions."""
    rng = np.random.default_rng(0)
    dirs = {}
    for lh in sorted(INFORMATIVE):
        u = rng.normal(size=(C, D))
        dirs[lh] = u / np.linalg.norm(u, axis=1, keepdims=True)
    return *_synthetic(20, rng, dirs), *_synthetic(50, rng, dirs)


@pytest.mark.parametrize("scoring", ["in_sample", "leave_one_out"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_synthetic_selects_the_informative_heads(synthetic, scoring: str, metric: str) -> None:
    """n_heads=3 finds exactly the label-carrying heads and generalizes; voting with all heads is worse."""
    X, y, X_test, y_test = synthetic
    clf = SAVClassifier(n_heads=3, metric=metric, scoring=scoring).fit(X, y)
    assert set(map(tuple, clf.heads_.tolist())) == INFORMATIVE
    acc_top3 = clf.score(X_test, y_test)
    acc_all = SAVClassifier(n_heads="all", metric=metric, scoring=scoring).fit(X, y).score(X_test, y_test)
    assert acc_top3 > 0.95
    assert acc_all < acc_top3 - 0.2


def test_leave_one_out_deflates_noise_head_scores(synthetic) -> None:
    """In-sample scoring lets noise heads memorize (well above the 0.25 chance); leave-one-out does not."""
    X, y, _, _ = synthetic
    noise = np.ones((L, H), dtype=bool)
    for lh in INFORMATIVE:
        noise[lh] = False
    in_sample = SAVClassifier().fit(X, y).head_scores_[noise].mean()
    loo = SAVClassifier(scoring="leave_one_out").fit(X, y).head_scores_[noise].mean()
    assert in_sample > 0.4
    assert abs(loo - 0.25) < 0.1


# ---------------------------------------------------------------------------------------------------------
# 3. Independent naive reference: loops over heads, examples and classes, means recomputed from scratch.
# ---------------------------------------------------------------------------------------------------------
def _naive_nearest(x: np.ndarray, means: list[np.ndarray], metric: str) -> int:
    """Index of the nearest mean (first one wins ties), by true cosine or true L2 distance."""
    best, best_sim = -1, -np.inf
    for c, m in enumerate(means):
        if metric == "cosine":
            sim = float(x @ m) / (np.linalg.norm(x) * np.linalg.norm(m))
        else:
            sim = -float(np.linalg.norm(x - m))
        if sim > best_sim:
            best, best_sim = c, sim
    return best


def _naive_head_scores(X: np.ndarray, y: np.ndarray, metric: str, scoring: str) -> np.ndarray:
    """Per-head accuracy of nearest class mean, one example and one head at a time."""
    classes = sorted(set(y.tolist()))
    n, n_layers, n_heads, _ = X.shape
    scores = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        for head in range(n_heads):
            correct = 0
            for i in range(n):
                means = []
                for c in classes:
                    held_out = i if scoring == "leave_one_out" else -1
                    keep = [j for j in range(n) if y[j] == c and j != held_out]
                    means.append(X[keep, layer, head].mean(axis=0))
                correct += classes[_naive_nearest(X[i, layer, head], means, metric)] == y[i]
            scores[layer, head] = correct / n
    return scores


def _naive_predict(clf: SAVClassifier, X: np.ndarray) -> list:
    """Majority vote over clf.heads_ with a Counter; ties go to the tied class voted first in rank order."""
    preds = []
    for x in X:
        votes = [
            _naive_nearest(x[layer, head], list(clf.class_means_[:, layer, head]), clf.metric)
            for layer, head in clf.heads_
        ]
        counts = Counter(votes)
        top = max(counts.values())
        preds.append(clf.classes_[next(v for v in votes if counts[v] == top)])
    return preds


@pytest.mark.parametrize("block_bytes", [savs.head_rules.BLOCK_BYTES, 1], ids=["one block", "a row per block"])
@pytest.mark.parametrize("scoring", ["in_sample", "leave_one_out"])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_naive_reference(metric: str, scoring: str, block_bytes: int, monkeypatch) -> None:
    """head_scores_ equal the naive counts / n exactly; heads_ is their stable ranking; predictions agree;
    also when the similarities are computed one example at a time (the memory bound for large label sets)."""
    monkeypatch.setattr(savs.head_rules, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(1)
    y = rng.permutation(np.repeat([3, 7, 9], [8, 10, 12]))
    X = rng.normal(size=(30, 3, 4, 5))
    X += 0.5 * rng.normal(size=(3, 3, 4, 5))[np.searchsorted([3, 7, 9], y)]  # weak class signal
    clf = SAVClassifier(n_heads=7, metric=metric, scoring=scoring).fit(X, y)
    ref = _naive_head_scores(X, y, metric, scoring)
    np.testing.assert_array_equal(clf.head_scores_, ref)
    ranked = sorted(range(ref.size), key=lambda f: (-ref.flat[f], f))[:7]
    np.testing.assert_array_equal(clf.heads_, [divmod(f, 4) for f in ranked])
    assert len(np.unique(ref)) > 3  # the scores actually vary, so the ranking is a real test
    X_query = rng.normal(size=(25, 3, 4, 5))
    np.testing.assert_array_equal(clf.predict(X_query), _naive_predict(clf, X_query))


# ---------------------------------------------------------------------------------------------------------
# 4. Input layouts.
# ---------------------------------------------------------------------------------------------------------
def test_flattened_2d_with_head_grid_equals_4d(synthetic) -> None:
    """A layer-major (n, L*H*d) X with head_grid=(L, H) gives the same fit and predictions as the 4-D X."""
    X, y, X_test, _ = synthetic
    a = SAVClassifier(n_heads=5).fit(X, y)
    b = SAVClassifier(n_heads=5, head_grid=(L, H)).fit(X.reshape(len(X), -1), y)  # (n, L*H*d)
    for attr in ("classes_", "class_means_", "head_scores_", "heads_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.head_grid_ == b.head_grid_ == (L, H)
    assert a.n_features_in_ == b.n_features_in_ == L * H * D
    flat_test = X_test.reshape(len(X_test), -1)  # (n, L*H*d)
    np.testing.assert_array_equal(a.predict(X_test), b.predict(flat_test))
    np.testing.assert_array_equal(a.predict(flat_test), b.predict(X_test))


def test_2d_without_head_grid_is_one_head(synthetic) -> None:
    """A 2-D X without head_grid is a single head of dimension n_features."""
    X, y, X_test, _ = synthetic
    flat, flat_test = X.reshape(len(X), -1), X_test.reshape(len(X_test), -1)  # (n, L*H*d)
    one = SAVClassifier().fit(flat, y)
    ref = SAVClassifier().fit(flat[:, None, None, :], y)  # (n, 1, 1, L*H*d)
    assert one.head_grid_ == (1, 1)
    np.testing.assert_array_equal(one.heads_, [[0, 0]])
    assert one.class_means_.shape == (C, 1, 1, L * H * D)
    np.testing.assert_array_equal(one.head_scores_, ref.head_scores_)
    np.testing.assert_array_equal(one.predict(flat_test), ref.predict(flat_test[:, None, None, :]))


# ---------------------------------------------------------------------------------------------------------
# 5. scikit-learn estimator checks (2-D X = one head, so they all apply).
# ---------------------------------------------------------------------------------------------------------
@parametrize_with_checks([SAVClassifier(), SAVClassifier(readout="logistic"), SAVClassifier(readout="lda")])
def test_sklearn_compatible(estimator, check) -> None:
    """The estimator passes scikit-learn's own API checks."""
    check(estimator)


def test_docstring_example_runs() -> None:
    """The numpydoc example in the module stays runnable and correct."""
    assert doctest.testmod(savs.classifier).failed == 0


# ---------------------------------------------------------------------------------------------------------
# 6. Bad input gives a ValueError that says what is wrong.
# ---------------------------------------------------------------------------------------------------------
Y6 = np.array([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize(
    ("clf", "X", "y", "match"),
    [
        (SAVClassifier(), np.zeros((6, 2, 3)), Y6, r"4-D .* or 2-D .*got a 3-D array"),
        (SAVClassifier(), np.zeros((6, 1, 2, 2, 2)), Y6, r"got a 5-D array"),
        (SAVClassifier(), X_HAND, np.zeros(6), r"only one class"),
        (SAVClassifier(), np.where(np.eye(6, 8) > 0, np.nan, 1.0), Y6, r"NaN"),
        (SAVClassifier(), np.where(np.eye(6, 8) > 0, np.inf, 1.0), Y6, r"infinity"),
        (SAVClassifier(heads=[(0, 0), (2, 0)]), X_HAND, Y6, r"heads \[\[2, 0\]\] are outside"),
        (SAVClassifier(heads=[(0, -1)]), X_HAND, Y6, r"outside the \(n_layers, n_heads\) = \(2, 2\) grid"),
        (SAVClassifier(heads=[0, 1]), X_HAND, Y6, r"heads must be .*\(layer, head\) pairs"),
        (SAVClassifier(heads=[(0.5, 1)]), X_HAND, Y6, r"heads must be .*int"),
        (SAVClassifier(heads=[(0, 1), (0, 1)]), X_HAND, Y6, r"duplicate"),
        (SAVClassifier(n_heads=0), X_HAND, Y6, r"n_heads must be an int >= 1 or 'all'; got 0"),
        (SAVClassifier(n_heads=2.5), X_HAND, Y6, r"n_heads must be"),
        (SAVClassifier(n_heads="some"), X_HAND, Y6, r"n_heads must be"),
        (SAVClassifier(n_heads=True), X_HAND, Y6, r"n_heads must be"),
        (SAVClassifier(metric="manhattan"), X_HAND, Y6, r"metric must be one of .*'manhattan'"),
        (SAVClassifier(selection="cv"), X_HAND, Y6, r"selection must be one of .*'cv'"),
        (SAVClassifier(scoring="top_k"), X_HAND, Y6, r"scoring must be one of .*'top_k'"),
        (SAVClassifier(head_grid=(0, 2)), np.ones((6, 8)), Y6, r"head_grid must be"),
        (SAVClassifier(head_grid=4), np.ones((6, 8)), Y6, r"head_grid must be"),
        (SAVClassifier(head_grid=(2, 2)), np.ones((6, 9)), Y6, r"9 features, not a multiple of .* 4"),
        (SAVClassifier(head_grid=(1, 4)), X_HAND, Y6, r"disagrees with the 4-D X's grid \(2, 2\)"),
        (SAVClassifier(scoring="leave_one_out"), X_HAND[:5], Y6[:5], r"2 examples per class.*\[2\]"),
    ],
)
def test_bad_fit_input_raises(clf: SAVClassifier, X: np.ndarray, y: np.ndarray, match: str) -> None:
    """Each invalid fit call fails with a ValueError whose message names the problem."""
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_bad_predict_and_score_input_raises() -> None:
    """Unseen labels in score, a wrong per-example shape, and a wrong rank are refused at predict time."""
    clf = SAVClassifier().fit(X_HAND, HAND_Y)
    with pytest.raises(ValueError, match=r"never seen in fit: \['emu', 'yak'\]"):
        clf.score(X_HAND, ["cat", "emu", "dog", "yak", "owl", "owl"])
    with pytest.raises(ValueError, match=r"per-example shape \(2, 2, 3\), but the classifier was fit on"):
        clf.predict(np.zeros((3, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"X has 7 features, but SAVClassifier is expecting 8"):
        clf.predict(np.zeros((3, 7)))
    with pytest.raises(ValueError, match=r"got a 3-D array"):
        clf.predict_proba(np.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match=r"NaN"):
        clf.predict(np.full((1, 2, 2, 2), np.nan))
    assert clf.score(Q_HAND, ["dog", "owl", "cat"]) == 1.0  # seen labels still score normally


# ---------------------------------------------------------------------------------------------------------
# 7. predict_proba and determinism.
# ---------------------------------------------------------------------------------------------------------
def test_predict_proba_is_vote_shares_consistent_with_predict(synthetic) -> None:
    """Rows sum to 1, are multiples of 1/k, and their argmax is the prediction whenever the top is unique."""
    X, y, X_test, _ = synthetic
    clf = SAVClassifier(n_heads=7).fit(X, y)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), C)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba * 7, np.round(proba * 7))
    top = np.sort(proba, axis=1)
    no_tie = top[:, -1] > top[:, -2]
    assert no_tie.sum() > len(X_test) // 2
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)][no_tie], clf.predict(X_test)[no_tie])


def test_deterministic(synthetic) -> None:
    """Fitting twice gives identical attributes and predictions (no randomness anywhere)."""
    X, y, X_test, _ = synthetic
    a, b = (SAVClassifier(scoring="leave_one_out").fit(X, y) for _ in range(2))
    for attr in ("class_means_", "head_scores_", "heads_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    np.testing.assert_array_equal(a.predict(X_test), b.predict(X_test))


@pytest.mark.parametrize(
    "params",
    [{}, {"scoring": "cv", "voting": "reliability"}, {"selection": "pursuit"}],
    ids=["paper", "cv+calm", "pursuit"],
)
def test_float32_input_is_not_copied_to_float64_and_gives_the_same_fit(monkeypatch, params: dict) -> None:
    """Head vectors at 7B scale are GBs: float32 X is read a block at a time, with float64 maths per block."""
    import tracemalloc

    monkeypatch.setattr(savs.head_rules, "BLOCK_BYTES", 2**16)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 100)
    X = (rng.normal(size=(400, 8, 8, 64)) + rng.normal(size=(4, 8, 8, 64))[y]).astype(np.float32)  # 6.5 MB
    tracemalloc.start()
    clf32 = SAVClassifier(n_heads=5, **params).fit(X, y)
    pred32 = clf32.predict(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < X.nbytes / 2, f"fit + predict allocated {peak / 1e6:.1f} MB for a {X.nbytes / 1e6:.1f} MB X"
    clf64 = SAVClassifier(n_heads=5, **params).fit(X.astype(np.float64), y)
    np.testing.assert_array_equal(clf32.head_scores_, clf64.head_scores_)
    np.testing.assert_array_equal(clf32.heads_, clf64.heads_)
    np.testing.assert_allclose(clf32.class_means_, clf64.class_means_, rtol=1e-12)
    np.testing.assert_array_equal(pred32, clf64.predict(X.astype(np.float64)))
