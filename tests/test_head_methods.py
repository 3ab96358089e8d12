"""The head-scoring, selection and voting rules beyond SAVs, each against a naive re-implementation or a worked example.

cv and fisher scoring, pursuit selection, CALM's reliability voting, temperature calibration, ``compact()``, and the
error for a scoring rule given as ``selection=``. The naive references loop over heads, examples and classes and
recompute everything from scratch; they share no code with ``savs.classifier`` or ``savs.head_rules``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.utils.estimator_checks import parametrize_with_checks

import savs.head_rules
from savs.classifier import SAVClassifier

# ---------------------------------------------------------------------------------------------------------
# Naive references.
# ---------------------------------------------------------------------------------------------------------


def _sim(x: np.ndarray, m: np.ndarray, metric: str) -> float:
    """True cosine (0 when either vector is zero) or negative squared L2 distance."""
    if metric == "cosine":
        norms = np.linalg.norm(x) * np.linalg.norm(m)
        return float(x @ m) / norms if norms > 0 else 0.0
    return -float(((x - m) ** 2).sum())


def _naive_folds(y: np.ndarray, n_folds: int) -> list[int]:
    """Rank of each example among its class's examples (in order), modulo n_folds."""
    seen: dict = {}
    folds = []
    for label in y:
        folds.append(seen.get(label, 0) % n_folds)
        seen[label] = seen.get(label, 0) + 1
    return folds


def _naive_cv_scores(X: np.ndarray, y: np.ndarray, metric: str, n_folds: int) -> np.ndarray:
    """Per head, the share of examples whose nearest class mean, from the other folds, is their class."""
    classes = sorted(set(y.tolist()))
    folds = _naive_folds(y, n_folds)
    n, n_layers, n_heads, _ = X.shape
    scores = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        for head in range(n_heads):
            for i in range(n):
                means = [
                    X[[j for j in range(n) if y[j] == c and folds[j] != folds[i]], layer, head].mean(axis=0)
                    for c in classes
                ]
                sims = [_sim(X[i, layer, head], m, metric) for m in means]
                scores[layer, head] += classes[int(np.argmax(sims))] == y[i]
    return scores / n


def _naive_fisher(X: np.ndarray, y: np.ndarray, metric: str, shrinkage) -> np.ndarray:
    """Per head: trace(pinv(Sigma) @ S_B) with Sigma the (Ledoit-Wolf or fixed) shrunk pooled within covariance."""
    classes = sorted(set(y.tolist()))
    n, n_layers, n_heads, d = X.shape
    scores = np.zeros((n_layers, n_heads))
    for layer in range(n_layers):
        for head in range(n_heads):
            V = X[:, layer, head].copy()
            if metric == "cosine":
                V /= np.linalg.norm(V, axis=1, keepdims=True)
            means = {c: V[y == c].mean(axis=0) for c in classes}
            Z = np.stack([V[i] - means[y[i]] for i in range(n)])
            within = Z.T @ Z / n
            lam = ledoit_wolf_shrinkage(Z, assume_centered=True) if shrinkage == "auto" else shrinkage
            sigma = (1 - lam) * within + lam * np.trace(within) / d * np.eye(d)
            grand = V.mean(axis=0)
            between = sum((y == c).mean() * np.outer(means[c] - grand, means[c] - grand) for c in classes)
            scores[layer, head] = np.trace(np.linalg.pinv(sigma) @ between)
    return scores


def _naive_pursuit(X: np.ndarray, y: np.ndarray, metric: str, k: int, order: list[int]) -> list[int]:
    """SOMP from scratch: atoms[h][c] over examples, residuals by least squares on the chosen atoms, per class."""
    classes = sorted(set(y.tolist()))
    n, n_layers, n_heads, _ = X.shape
    atoms = {}
    for h in range(n_layers * n_heads):
        layer, head = divmod(h, n_heads)
        A = np.zeros((n, len(classes)))
        for i in range(n):
            for ci, c in enumerate(classes):
                keep = [j for j in range(n) if y[j] == c and j != i]  # own class: without i; others: all
                A[i, ci] = _sim(X[i, layer, head], X[keep, layer, head].mean(axis=0), metric)
        A -= A.mean(axis=1, keepdims=True)
        A -= A.mean(axis=0, keepdims=True)
        atoms[h] = A / np.linalg.norm(A, axis=0)
    Y = np.stack([(y == c).astype(float) for c in classes], axis=1)
    Y -= Y.mean(axis=0)
    chosen: list[int] = []
    while len(chosen) < k:
        residual = Y.copy()
        if chosen:
            for ci in range(len(classes)):
                A = np.stack([atoms[h][:, ci] for h in chosen], axis=1)
                residual[:, ci] -= A @ np.linalg.lstsq(A, Y[:, ci], rcond=None)[0]
        gains = {h: sum((atoms[h][:, ci] @ residual[:, ci]) ** 2 for ci in range(len(classes))) for h in order}
        best = max((h for h in order if h not in chosen), key=lambda h: (gains[h], -order.index(h)))
        chosen.append(best)
    return chosen


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _naive_reliability(clf: SAVClassifier, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CALM's weights (k, C) for clf.heads_, with out-of-fold posteriors, example by example."""
    classes = sorted(set(y.tolist()))
    folds = _naive_folds(y, clf.n_folds)
    n = len(y)
    r = np.zeros((len(clf.heads_), len(classes)))
    for j, (layer, head) in enumerate(clf.heads_):
        for i in range(n):
            means = [
                X[[t for t in range(n) if y[t] == c and folds[t] != folds[i]], layer, head].mean(axis=0)
                for c in classes
            ]
            P = _softmax(np.array([_sim(X[i, layer, head], m, clf.metric) for m in means]) / clf.temperature)
            own = classes.index(y[i])
            r[j, own] += max(P[own] - max(P[c] for c in range(len(classes)) if c != own), 0.0)
    counts = np.array([(y == c).sum() for c in classes])
    r /= counts
    r_bar = r.mean()
    r_hat = r * counts / (counts + clf.alpha) + r_bar * clf.alpha / (counts + clf.alpha)
    return r_hat / r_hat.sum(axis=0)


def _naive_reliability_scores(clf: SAVClassifier, X: np.ndarray) -> np.ndarray:
    """sum_k w[k, c] P[k, c] per query, normalised, with clf's class means."""
    out = []
    for x in X:
        s = np.zeros(len(clf.classes_))
        for j, (layer, head) in enumerate(clf.heads_):
            sims = np.array([_sim(x[layer, head], m, clf.metric) for m in clf.class_means_[:, layer, head]])
            s += clf.head_weights_[j] * _softmax(sims / clf.temperature)
        out.append(s / s.sum())
    return np.array(out)


def _weak_signal(seed: int = 1, n_layers: int = 3, n_heads: int = 4, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """30 examples of classes 3 / 7 / 9 (8, 10, 12 of them, shuffled) with a weak per-head class signal."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat([3, 7, 9], [8, 10, 12]))
    X = rng.normal(size=(30, n_layers, n_heads, d))
    X += 0.5 * rng.normal(size=(3, n_layers, n_heads, d))[np.searchsorted([3, 7, 9], y)]
    return X, y


# ---------------------------------------------------------------------------------------------------------
# 1. cv scoring.
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block_bytes", [savs.head_rules.BLOCK_BYTES, 1], ids=["one block", "a row per block"])
@pytest.mark.parametrize("n_folds", [2, 3, 20])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_cv_scores_match_naive(metric: str, n_folds: int, block_bytes: int, monkeypatch) -> None:
    """head_scores_ equal the naive k-fold counts / n (20 folds > every class's size: some folds empty)."""
    monkeypatch.setattr(savs.head_rules, "BLOCK_BYTES", block_bytes)
    X, y = _weak_signal()
    clf = SAVClassifier(n_heads=5, metric=metric, scoring="cv", n_folds=n_folds).fit(X, y)
    ref = _naive_cv_scores(X, y, metric, n_folds)
    np.testing.assert_allclose(clf.head_scores_, ref, atol=1e-12)
    assert len(np.unique(ref)) > 3
    ranked = sorted(range(ref.size), key=lambda f: (-ref.flat[f], f))[:5]
    np.testing.assert_array_equal(clf.heads_, [divmod(f, 4) for f in ranked])


def test_cv_folds_hand_worked() -> None:
    """One 1-D head, euclidean, two folds. Class a: 0, 2, 10; class b: 4, 6 (in that order within each class), so
    fold = rank within class mod 2 puts 0, 10 and 4 in fold 0; 2 and 6 in fold 1.
    Fold 0 held out, means from fold 1 (a = 2, b = 6): 0 -> a, right; 10 -> b, wrong; 4 -> tie -> a, wrong.
    Fold 1 held out, means from fold 0 (a = 5, b = 4): 2 -> b, wrong; 6 -> a, wrong. 1 of 5.
    In-sample (a = 4, b = 5): 0 -> a, 2 -> a, 10 -> b, 4 -> a, 6 -> b: 3 of 5.
    """
    X = np.array([0.0, 2.0, 4.0, 10.0, 6.0])[:, None]
    y = np.array(["a", "a", "b", "a", "b"])
    assert SAVClassifier(metric="euclidean", scoring="cv", n_folds=2).fit(X, y).head_scores_[0, 0] == 1 / 5
    assert SAVClassifier(metric="euclidean").fit(X, y).head_scores_[0, 0] == 3 / 5


# ---------------------------------------------------------------------------------------------------------
# 2. fisher scoring.
# ---------------------------------------------------------------------------------------------------------
def test_fisher_hand_worked_one_dimension() -> None:
    """d = 1 (no shrinkage possible): between over within variance. Head 0: classes 0, 2 | 4, 6 -> means 1 | 5,
    grand 3: S_B = 4, S_W = 1 -> 4. Head 1: 0, 4 | 2, 6 -> means 2 | 4: S_B = 1, S_W = 4 -> 0.25."""
    X = np.zeros((4, 1, 2, 1))
    X[:, 0, 0, 0] = [0, 2, 4, 6]
    X[:, 0, 1, 0] = [0, 4, 2, 6]
    clf = SAVClassifier(metric="euclidean", scoring="fisher").fit(X, [0, 0, 1, 1])
    np.testing.assert_allclose(clf.head_scores_, [[4.0, 0.25]], rtol=1e-8)
    np.testing.assert_array_equal(clf.heads_, [[0, 0], [0, 1]])


@pytest.mark.parametrize("shrinkage", ["auto", 0.0, 0.3, 1.0])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_fisher_scores_match_naive(metric: str, shrinkage) -> None:
    """Against per-head numpy with scikit-learn's own Ledoit-Wolf shrinkage."""
    X, y = _weak_signal()
    clf = SAVClassifier(metric=metric, scoring="fisher", shrinkage=shrinkage).fit(X, y)
    np.testing.assert_allclose(clf.head_scores_, _naive_fisher(X, y, metric, shrinkage), rtol=1e-6)


def test_fisher_isotropic_limit() -> None:
    """shrinkage=1: Sigma = tr(S_W)/d I, so the score is d * tr(S_B) / tr(S_W)."""
    X, y = _weak_signal()
    clf = SAVClassifier(metric="euclidean", scoring="fisher", shrinkage=1.0).fit(X, y)
    V = X[:, 2, 1]
    means = {c: V[y == c].mean(axis=0) for c in (3, 7, 9)}
    tr_w = sum(((V[i] - means[y[i]]) ** 2).sum() for i in range(len(y))) / len(y)
    tr_b = sum((y == c).mean() * ((means[c] - V.mean(axis=0)) ** 2).sum() for c in means)
    assert clf.head_scores_[2, 1] == pytest.approx(5 * tr_b / tr_w, rel=1e-8)


def test_fisher_zero_within_variance_is_large_and_finite() -> None:
    """A head whose classes have no spread gets a huge finite score, above a merely good head."""
    y = np.repeat([0, 1], 5)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 1, 2, 3))
    X[:, 0, 0] = np.where(y[:, None] == 0, [1.0, 0, 0], [0, 1.0, 0])  # perfect, zero within variance
    X[:, 0, 1] += 3 * np.where(y[:, None] == 0, [1.0, 0, 0], [0, 1.0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = SAVClassifier(scoring="fisher").fit(X, y)
    assert np.isfinite(clf.head_scores_).all() and clf.head_scores_[0, 0] > 1e6 * clf.head_scores_[0, 1]


# ---------------------------------------------------------------------------------------------------------
# 3. pursuit selection.
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_pursuit_matches_naive_somp(metric: str) -> None:
    """The greedy order equals SOMP recomputed from scratch (least squares per class at every step)."""
    X, y = _weak_signal(seed=2)
    clf = SAVClassifier(n_heads=6, metric=metric, selection="pursuit").fit(X, y)
    order = sorted(range(12), key=lambda f: (-clf.head_scores_.flat[f], f))
    expected = _naive_pursuit(X, y, metric, 6, order)
    np.testing.assert_array_equal(clf.heads_, [divmod(h, 4) for h in expected])


def _redundant(rng: np.random.Generator, n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """4 classes, 3 heads of d=8. Head 0 separates classes 0 | 1 | {2, 3}; head 1 is head 0 plus a little noise;
    head 2 separates only class 3 from the rest. In-sample scores rank heads 0 and 1 first; together they only
    repeat each other, and head 2 is what tells 2 from 3."""
    y = np.repeat(np.arange(4), n_per_class)
    u = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # orthonormal directions
    X = 0.3 * rng.normal(size=(len(y), 1, 3, 8))
    X[:, 0, 0] += 2 * u[np.minimum(y, 2)]
    X[:, 0, 1] = X[:, 0, 0] + 0.05 * rng.normal(size=(len(y), 8))
    X[:, 0, 2] += 2 * u[np.where(y == 3, 3, 4)]
    return X, y


def test_pursuit_skips_a_redundant_copy() -> None:
    """top_k takes the head and its copy; pursuit takes the head and the complementary head."""
    X, y = _redundant(np.random.default_rng(0), 20)
    top = SAVClassifier(n_heads=2).fit(X, y)
    assert {tuple(h) for h in top.heads_.tolist()} == {(0, 0), (0, 1)}
    pursuit = SAVClassifier(n_heads=2, selection="pursuit").fit(X, y)
    assert (0, 2) in {tuple(h) for h in pursuit.heads_.tolist()}
    assert len({tuple(h) for h in pursuit.heads_.tolist()} & {(0, 0), (0, 1)}) == 1


def test_pursuit_fills_with_best_scored_heads_once_labels_are_explained() -> None:
    """Two classes and one perfectly separating head explain the labels: the rest follow the score order."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 6)
    X = rng.normal(size=(12, 2, 2, 4))
    X[:, 1, 1] = np.where(y[:, None] == 0, [1.0, 0, 0, 0], [-1.0, 0, 0, 0])
    clf = SAVClassifier(n_heads="all", selection="pursuit").fit(X, y)
    assert clf.heads_[0].tolist() == [1, 1]
    rest = [divmod(f, 2) for f in sorted(range(4), key=lambda f: (-clf.head_scores_.flat[f], f)) if f != 3]
    np.testing.assert_array_equal(clf.heads_[1:], rest)


def test_pursuit_candidates_limited_by_memory(monkeypatch) -> None:
    """With room for only a few candidates' similarities, pursuit picks among the best-scored heads only."""
    X, y = _weak_signal(seed=2)
    n, C = len(y), 3
    monkeypatch.setattr(savs.head_rules, "PURSUIT_BYTES", n * C * 8 * 5)  # 5 candidates
    clf = SAVClassifier(n_heads=3, selection="pursuit").fit(X, y)
    best5 = sorted(range(12), key=lambda f: (-clf.head_scores_.flat[f], f))[:5]
    assert {divmod(f, 4) for f in best5} >= {tuple(h) for h in clf.heads_.tolist()}


# ---------------------------------------------------------------------------------------------------------
# 4. reliability voting (CALM).
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block_bytes", [savs.head_rules.BLOCK_BYTES, 1], ids=["one block", "a row per block"])
@pytest.mark.parametrize(("metric", "temperature", "alpha", "n_folds"), [
    ("cosine", 0.07, 5.0, 5), ("cosine", 0.5, 0.0, 3), ("euclidean", 5.0, 20.0, 2),
])  # fmt: skip
def test_reliability_matches_naive(metric, temperature, alpha, n_folds, block_bytes, monkeypatch) -> None:
    """Weights, normalised scores and predictions equal CALM's formulas computed example by example."""
    monkeypatch.setattr(savs.head_rules, "BLOCK_BYTES", block_bytes)
    X, y = _weak_signal(seed=3)
    clf = SAVClassifier(
        n_heads=6, metric=metric, voting="reliability", temperature=temperature, alpha=alpha, n_folds=n_folds
    ).fit(X, y)
    weights = _naive_reliability(clf, X, y)
    np.testing.assert_allclose(clf.head_weights_, weights, atol=1e-12)
    assert weights.std() > 0.01  # not uniform: the test has teeth
    queries = np.random.default_rng(4).normal(size=(15, 3, 4, 5))
    scores = _naive_reliability_scores(clf, queries)
    np.testing.assert_allclose(clf.predict_proba(queries), scores, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(queries), clf.classes_[scores.argmax(axis=1)])


def test_reliability_hand_worked_shrinkage_and_zero_columns() -> None:
    """One head per class corner; P is near one-hot at tau = 0.07, so r is 1 where the head is right.

    1-D euclidean heads are awkward for softmax; instead: class a at (1, 0), class b at (0, 1) in head 0 (perfect),
    both classes at (1, 1) in head 1 (useless: P = 1/2 each, margin 0). r = [[1, 1], [0, 0]] (head x class),
    r_bar = 1/2; with alpha = 2 and 2 examples per class: r_hat = r / 2 + 1/4 = [[.75, .75], [.25, .25]], already
    normalised per class. With alpha = 0: weights [[1, 1], [0, 0]].
    """
    X = np.zeros((4, 1, 2, 2))
    X[:, 0, 0] = [(1, 0), (1, 0), (0, 1), (0, 1)]
    X[:, 0, 1] = [(1, 1)] * 4
    y = ["a", "a", "b", "b"]
    clf = SAVClassifier(heads=[(0, 0), (0, 1)], voting="reliability", alpha=2.0, n_folds=2).fit(X, y)
    np.testing.assert_allclose(clf.head_weights_, [[0.75, 0.75], [0.25, 0.25]], atol=1e-6)
    clf0 = SAVClassifier(heads=[(0, 0), (0, 1)], voting="reliability", alpha=0.0, n_folds=2).fit(X, y)
    np.testing.assert_allclose(clf0.head_weights_, [[1, 1], [0, 0]], atol=1e-6)
    # Only the useless head: r = 0 everywhere, so every class's weights are uniform (here: 1).
    useless = SAVClassifier(heads=[(0, 1)], voting="reliability", alpha=0.0, n_folds=2).fit(X, y)
    np.testing.assert_array_equal(useless.head_weights_, [[1.0, 1.0]])


def test_reliability_uses_class_specialist_heads() -> None:
    """Four heads, each seeing one class apart from a blur of the other three: the majority vote of their nearest
    means is noisy, CALM's class-conditional weights read each head only for its own class."""
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.normal(size=(8, 8)))[0]

    def draw(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(4), n_per_class)
        X = 0.6 * rng.normal(size=(len(y), 1, 4, 8))
        for h in range(4):
            X[:, 0, h] += 2 * np.where((y == h)[:, None], u[h], u[4 + h])
        return X, y

    X, y = draw(20)
    X_test, y_test = draw(100)
    majority = SAVClassifier(n_heads="all").fit(X, y).score(X_test, y_test)
    calm = SAVClassifier(n_heads="all", voting="reliability").fit(X, y).score(X_test, y_test)
    assert calm > 0.9 and calm > majority + 0.2


# ---------------------------------------------------------------------------------------------------------
# 5. planted informative heads, every rule.
# ---------------------------------------------------------------------------------------------------------
L, H, D, C = 6, 8, 16, 4
INFORMATIVE = {(0, 5), (2, 1), (5, 6)}


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pure-noise heads except INFORMATIVE ones (3 * class direction + small noise); 20 shots, 50 per class test."""
    rng = np.random.default_rng(0)
    dirs = {}
    for lh in sorted(INFORMATIVE):
        v = rng.normal(size=(C, D))
        dirs[lh] = v / np.linalg.norm(v, axis=1, keepdims=True)

    def draw(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(C), n_per_class)
        X = rng.normal(size=(len(y), L, H, D))
        for layer, head in INFORMATIVE:
            X[:, layer, head] = 3 * dirs[layer, head][y] + 0.3 * rng.normal(size=(len(y), D))
        return X, y

    return *draw(20), *draw(50)


@pytest.mark.parametrize("voting", ["majority", "reliability"])
@pytest.mark.parametrize(("scoring", "selection"), [
    ("in_sample", "top_k"), ("leave_one_out", "top_k"), ("cv", "top_k"), ("fisher", "top_k"),
    ("in_sample", "pursuit"), ("cv", "pursuit"),
])  # fmt: skip
def test_planted_heads_are_found(planted, scoring: str, selection: str, voting: str) -> None:
    """Every scoring x selection x voting finds exactly the 3 label-carrying heads among 48 and generalizes."""
    X, y, X_test, y_test = planted
    clf = SAVClassifier(n_heads=3, scoring=scoring, selection=selection, voting=voting).fit(X, y)
    assert set(map(tuple, clf.heads_.tolist())) == INFORMATIVE
    assert clf.score(X_test, y_test) > 0.95


def test_held_out_scores_deflate_noise_heads(planted) -> None:
    """cv, like leave-one-out, scores noise heads near chance (0.25); in-sample scoring lets them memorize."""
    X, y, _, _ = planted
    noise = np.ones((L, H), dtype=bool)
    for lh in INFORMATIVE:
        noise[lh] = False
    assert SAVClassifier().fit(X, y).head_scores_[noise].mean() > 0.4
    assert abs(SAVClassifier(scoring="cv").fit(X, y).head_scores_[noise].mean() - 0.25) < 0.1


# ---------------------------------------------------------------------------------------------------------
# 6. calibration, compact(), determinism.
# ---------------------------------------------------------------------------------------------------------
CONFIGS = [
    {},
    {"scoring": "cv", "voting": "reliability"},
    {"scoring": "fisher", "selection": "pursuit"},
    {"scoring": "leave_one_out", "selection": "pursuit", "voting": "reliability", "calibration": "temperature"},
    {"calibration": "temperature"},
]
IDS = ["paper", "cv+calm", "fisher+pursuit", "loo+pursuit+calm+calibrated", "calibrated"]


def test_calibration_scale_is_the_likelihood_optimum_of_out_of_fold_votes() -> None:
    """The scale maximizes the likelihood of softmax(scale * votes) over votes from folds refitted from scratch."""
    X, y = _weak_signal(seed=5)
    params = {"n_heads": 4, "voting": "reliability", "n_folds": 4}
    clf = SAVClassifier(calibration="temperature", **params).fit(X, y)
    folds = np.array(_naive_folds(y, 4))
    votes = np.zeros((len(y), 3))
    for f in range(4):
        held = folds == f
        votes[held] = SAVClassifier(**params).fit(X[~held], y[~held]).predict_proba(X[held])
    own = votes[np.arange(len(y)), np.searchsorted([3, 7, 9], y)]
    grid = np.exp(np.linspace(np.log(1e-3), np.log(1e3), 4001))
    nll = [(np.log(np.exp(s * (votes - own[:, None])).sum(axis=1))).mean() for s in grid]
    best = grid[int(np.argmin(nll))]
    assert 1e-2 < best < 1e2  # an interior optimum: the votes are neither useless nor perfect
    assert clf.calibration_scale_ == pytest.approx(best, rel=0.01)
    queries = np.random.default_rng(6).normal(size=(20, 3, 4, 5))
    raw = SAVClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(clf.predict(queries), raw.predict(queries))
    proba = clf.predict_proba(queries)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), raw.predict_proba(queries).argmax(axis=1))


@pytest.mark.parametrize("params", CONFIGS, ids=IDS)
def test_compact_predicts_like_the_full_classifier(planted, params: dict) -> None:
    """compact() on the selected heads, and a classifier rebuilt from the attributes its docstring lists, agree."""
    X, y, X_test, _ = planted
    full = SAVClassifier(n_heads=5, **params).fit(X, y)
    layer, head = full.heads_.T
    small = X_test[:, layer, head][:, :, None]  # (n, k, 1, d)
    compact = full.compact()
    rebuilt = SAVClassifier(
        heads=[(i, 0) for i in range(5)], metric=full.metric, voting=full.voting, temperature=full.temperature
    )
    rebuilt.classes_, rebuilt.class_means_ = full.classes_, full.class_means_[:, layer, head][:, :, None]
    rebuilt.heads_, rebuilt.head_grid_ = np.stack([np.arange(5), np.zeros(5, dtype=int)], axis=1), (5, 1)
    rebuilt.head_weights_, rebuilt.calibration_scale_ = full.head_weights_, full.calibration_scale_
    rebuilt.n_features_in_ = 5 * D
    for clf in (compact, rebuilt):
        np.testing.assert_array_equal(clf.predict(small), full.predict(X_test))
        np.testing.assert_allclose(clf.predict_proba(small), full.predict_proba(X_test), atol=1e-12)
        np.testing.assert_array_equal(clf.head_votes(small), full.head_votes(X_test))
    if "calibration" not in params:  # refitting the compact classifier on the k heads gives the same weights
        refit = SAVClassifier(heads=[(i, 0) for i in range(5)], **params).fit(X[:, layer, head][:, :, None], y)
        np.testing.assert_allclose(refit.head_weights_, full.head_weights_, atol=1e-12)


@pytest.mark.parametrize("params", CONFIGS, ids=IDS)
def test_deterministic(planted, params: dict) -> None:
    """Fitting twice, or on a float32 copy, gives the same heads and predictions."""
    X, y, X_test, _ = planted
    a, b = (SAVClassifier(n_heads=5, **params).fit(X, y) for _ in range(2))
    for attr in ("class_means_", "head_scores_", "heads_", "head_weights_", "calibration_scale_"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    c = SAVClassifier(n_heads=5, **params).fit(X.astype(np.float32), y)
    np.testing.assert_array_equal(c.heads_, a.heads_)
    np.testing.assert_array_equal(c.predict(X_test.astype(np.float32)), a.predict(X_test))


@parametrize_with_checks([SAVClassifier(**p) for p in CONFIGS[1:]])
def test_sklearn_compatible(estimator, check) -> None:
    """Every non-default rule passes scikit-learn's API checks too."""
    check(estimator)


# ---------------------------------------------------------------------------------------------------------
# 7. a scoring rule passed as selection= (its spelling before scoring existed); bad parameters.
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scoring", ["leave_one_out", "in_sample", "cv", "fisher"])
def test_a_scoring_rule_given_as_selection_is_refused_with_the_fix(scoring: str) -> None:
    """No silent reinterpretation: the error names the valid selections and says to pass the rule as scoring=."""
    clf = SAVClassifier(selection=scoring)
    expected = (
        rf"selection must be one of \('top_k', 'pursuit'\); got '{scoring}', which is a head-scoring rule: "
        rf"pass scoring='{scoring}'"
    )
    with pytest.raises(ValueError, match=expected):
        clf.fit(X6, Y6)
    with pytest.raises(ValueError, match=expected):  # before any example is extracted, too
        clf.examples_needed()


X6 = np.random.default_rng(0).normal(size=(6, 2, 2, 2))
Y6 = np.array([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize(
    ("params", "X", "y", "match"),
    [
        ({"scoring": "xyz"}, X6, Y6, r"scoring must be one of .*'fisher'.*'xyz'"),
        ({"selection": "greedy"}, X6, Y6, r"selection must be one of \('top_k', 'pursuit'\); got 'greedy'"),
        ({"voting": "soft"}, X6, Y6, r"voting must be one of"),
        ({"calibration": "platt"}, X6, Y6, r"calibration must be one of"),
        ({"n_folds": 1}, X6, Y6, r"n_folds must be an int >= 2"),
        ({"n_folds": 2.0}, X6, Y6, r"n_folds must be"),
        ({"temperature": 0}, X6, Y6, r"temperature must be a number > 0"),
        ({"alpha": -1}, X6, Y6, r"alpha must be a number >= 0"),
        ({"alpha": True}, X6, Y6, r"alpha must be"),
        ({"shrinkage": 2.0}, X6, Y6, r"shrinkage must be 'auto' or a number in \[0, 1\]"),
        ({"shrinkage": "lw"}, X6, Y6, r"shrinkage must be"),
        ({"scoring": "cv"}, X6[:5], Y6[:5], r"scoring='cv' needs at least 2 examples per class.*\[2\]"),
        ({"selection": "pursuit", "voting": "reliability"}, X6[:5], Y6[:5], r"selection='pursuit', voting="),
        ({"calibration": "temperature"}, X6[:5], Y6[:5], r"calibration='temperature' needs at least 2 .*\[2\]"),
        ({"calibration": "temperature", "voting": "reliability"}, X6, Y6, r"voting='reliability' needs at least 3"),
        ({"calibration": "temperature", "scoring": "cv", "n_folds": 2}, X6, Y6, r"needs at least 4 .*\[0, 1, 2\]"),
    ],
)
def test_bad_parameters_raise(params: dict, X: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SAVClassifier(**params).fit(X, y)


def test_given_heads_skip_pursuit_and_its_two_example_rule() -> None:
    """heads= bypasses selection, so pursuit's held-out similarities (and their 2-per-class need) never run."""
    clf = SAVClassifier(heads=[(1, 1)], selection="pursuit").fit(X6[:5], Y6[:5])
    np.testing.assert_array_equal(clf.heads_, [[1, 1]])
