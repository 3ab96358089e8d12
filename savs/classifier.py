"""SAVClassifier: few-shot classification by a vote of sparse attention-head vectors, and the methods that followed.

Sparse Attention Vectors (SAVs; Mitra et al., arXiv 2412.00142) turn a generative multimodal model into a
few-shot classifier: take every attention head's output at the last prompt token, average it per class,
keep the heads whose nearest-class-mean rule classifies the few-shot set best, and let them vote.
This module holds the model-free part: it consumes per-head activations as a numpy array.

One estimator, one fit path, three independent choices (the defaults are the paper's):

* ``scoring`` -- how each head is scored: ``in_sample`` (SAVs), ``leave_one_out``, ``cv`` (k-fold), ``fisher``
  (a shrunk Gaussian-discriminant ratio, after HEC, arXiv 2603.24181);
* ``selection`` -- which heads vote: ``top_k`` by score (SAVs), or ``pursuit``, a simultaneous orthogonal
  matching pursuit over heads that skips redundant ones (after Head Pursuit, arXiv 2510.21518);
* ``voting`` -- how they vote: ``majority`` (SAVs), or ``reliability``, CALM's class-conditional,
  reliability-weighted soft vote (arXiv 2602.07077);

plus ``calibration="temperature"``, which fits a scale for ``predict_proba`` on cross-validated votes, and
``readout``: the vote (SAVs), or a linear model on the selected heads' concatenated vectors (``savs.readout``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from savs.readout import READOUTS, fit_readout

METRICS = ("cosine", "euclidean")
SCORINGS = ("in_sample", "leave_one_out", "cv", "fisher")
SELECTIONS = ("top_k", "pursuit")
VOTINGS = ("majority", "reliability")
CALIBRATIONS = (None, "temperature")
# Before ``scoring`` existed, ``selection`` named the head-scoring rule; those values still work, with a FutureWarning.
LEGACY_SELECTIONS = ("in_sample", "leave_one_out")
# What ``head_scores_`` holds under each scoring rule: a fraction of the few-shot set classified right, but for
# ``fisher``, an unbounded variance ratio (figures and the command line label and scale scores by this).
SCORE_NAMES = {
    "in_sample": "few-shot nearest-class-mean accuracy",
    "leave_one_out": "leave-one-out few-shot nearest-class-mean accuracy",
    "cv": "cross-validated few-shot nearest-class-mean accuracy",
    "fisher": "Fisher ratio, between- over within-class variance",
}


def score_is_accuracy(scoring: str) -> bool:
    """Whether ``head_scores_`` under ``scoring`` is an accuracy (a fraction, shown in %)."""
    return scoring != "fisher"


def _flatten_4d(X: Any) -> tuple[Any, tuple[int, int, int] | None]:
    """Flatten a 4-D X to 2-D and return it with its per-example (L, H, d); pass other ranks through.

    Going through 2-D lets sklearn's validation (dtype, finiteness, ``n_features_in_``, feature names)
    apply to every accepted rank; 0-/1-D inputs are left for it to reject with its usual message.
    """
    ndim = X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim
    if ndim == 4:
        X = np.asarray(X)
        n, L, H, d = X.shape
        return X.reshape(n, L * H * d), (L, H, d)  # (n, L*H*d)
    if ndim > 2:
        raise ValueError(
            f"X must be 4-D (n_examples, n_layers, n_heads, head_dim) or 2-D (n_examples, n_features); "
            f"got a {ndim}-D array of shape {np.shape(X)}."
        )
    return X, None


def _nearest_mean_terms(means: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (W, b) with W like ``means`` and b its shape minus d, so argmax of x.W + b is the nearest mean.

    Cosine drops the query norm (a positive per-query constant) and gives a zero mean similarity 0;
    euclidean uses -|x - m|^2 = 2 x.m - |m|^2 - |x|^2 without the per-query |x|^2. This keeps the cost at
    one matmul per head and never materializes query-minus-mean differences.
    """
    if metric == "cosine":
        norms = np.linalg.norm(means, axis=-1, keepdims=True)
        unit = np.divide(means, norms, out=np.zeros_like(means), where=norms > 0)
        return unit, np.zeros(means.shape[:-1])
    return 2 * means, -np.einsum("...d,...d->...", means, means)


# Similarity blocks (examples x heads x classes, float64) are computed a slice of examples at a time, at most this
# many bytes each: ImageNet-1k at 20 shots on a 7B model would otherwise need (20000, 784, 1000) doubles = 125 GB.
BLOCK_BYTES = 2**28
# float32 X is kept as is (head vectors at 7B scale are GBs); each block is converted to float64 for the maths.
FLOATS = [np.float64, np.float32]
# Head pursuit holds every candidate head's similarities (n, candidates, C) at once; at most this many bytes.
PURSUIT_BYTES = 2**30


def _row_slices(n: int, row_bytes: int) -> list[slice]:
    """Slices of ``range(n)`` whose rows take at most ``BLOCK_BYTES`` together (at least one row each)."""
    step = max(1, BLOCK_BYTES // max(1, row_bytes))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _class_similarities(X: np.ndarray, means: np.ndarray, metric: str) -> np.ndarray:
    """Per-head similarity of every example to every class mean: X (n, K, d), means (C, K, d) -> (n, K, C).

    Up to a per-(example, head) term that cannot change the nearest mean (see ``_nearest_mean_terms``).
    """
    W, b = _nearest_mean_terms(means, metric)  # (C, K, d), (C, K)
    dots = np.matmul(X.transpose(1, 0, 2), W.transpose(1, 2, 0))  # (K, n, C)
    return dots.transpose(1, 0, 2) + b.T  # (n, K, C)


def _as_true(sims: np.ndarray, X: np.ndarray, metric: str) -> np.ndarray:
    """Put back what ``_nearest_mean_terms`` drops per query: the true cosine (0 for a zero query), or -|x - m|^2.

    ``sims`` is (m, K, ...) for X (m, K, d).
    """
    shape = X.shape[:2] + (1,) * (sims.ndim - 2)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=2).reshape(shape)
        return np.divide(sims, norms, out=np.zeros_like(sims), where=norms > 0)
    return sims - np.einsum("mkd,mkd->mk", X, X).reshape(shape)


def _similarities(
    X: np.ndarray,
    y_idx: np.ndarray,
    means: np.ndarray,
    counts: np.ndarray,
    metric: str,
    *,
    leave_one_out: bool = False,
    true: bool = False,
) -> np.ndarray:
    """Similarities (m, K, C) of labelled examples X (m, K, d) to the class means (C, K, d).

    ``leave_one_out``: each example's own-class mean is recomputed without it (the other means unchanged; needs
    ``counts`` >= 2 for its class). ``true``: real cosines / negative squared distances (see ``_as_true``).
    """
    sims = _class_similarities(X, means, metric)  # (m, K, C)
    if leave_one_out:
        # The own-class mean without x is (n m - x) / (n - 1); its terms follow from x.m, |m|^2 and |x|^2, so no
        # (m, K, d) array is made. In the nearest-mean form (see _nearest_mean_terms), for the own class:
        # cosine x.(n m - x) / |n m - x|; euclidean 2 x.m' - |m'|^2 with m' the mean without x.
        n = counts[y_idx][:, None].astype(np.float64)  # (m, 1)
        m2 = np.einsum("ckd,ckd->ck", means, means)[y_idx]  # (m, K): |own mean|^2
        own = np.take_along_axis(sims, y_idx[:, None, None], axis=2)[:, :, 0]  # (m, K)
        xm = own * np.sqrt(m2) if metric == "cosine" else (own + m2) / 2  # (m, K): x.(own mean)
        x2 = np.einsum("mkd,mkd->mk", X, X)  # (m, K)
        xw = n * xm - x2  # x.(n m - x)
        w2 = np.maximum(n * n * m2 - 2 * n * xm + x2, 0.0)  # |n m - x|^2
        if metric == "cosine":
            own = np.divide(xw, np.sqrt(w2), out=np.zeros_like(xw), where=w2 > 0)
        else:
            own = 2 * xw / (n - 1) - w2 / (n - 1) ** 2
        np.put_along_axis(sims, y_idx[:, None, None], own[:, :, None], axis=2)
    return _as_true(sims, X, metric) if true else sims


def _folds(y_idx: np.ndarray, n_classes: int, n_folds: int) -> np.ndarray:
    """Fold of each example: its rank among its class's examples, in the given order, modulo ``n_folds``.

    Stratified and deterministic (no shuffling: a few-shot set is already a random draw). With at least two
    examples per class, every class keeps at least one example outside every fold.
    """
    rank = np.empty(len(y_idx), dtype=np.int64)
    for c in range(n_classes):
        members = np.flatnonzero(y_idx == c)
        rank[members] = np.arange(len(members))
    return rank % n_folds


def _block(X: np.ndarray, rows: Any, heads: np.ndarray | None) -> np.ndarray:
    """Rows of X (n, K, d) restricted to ``heads`` (flat indices; None: all), in float64."""
    block = X[rows] if heads is None else X[rows][:, heads]
    return block.astype(np.float64)


def _means_without(
    X: np.ndarray, y_idx: np.ndarray, sums: np.ndarray, counts: np.ndarray, held: np.ndarray, heads: np.ndarray | None
) -> np.ndarray:
    """Class means (C, k, d) of the examples not in ``held`` (indices), from the full class ``sums`` (C, k, d)."""
    C = len(counts)
    held_sums = np.zeros_like(sums)
    for r in _row_slices(len(held), sums[0].size * 8):
        idx = held[r]
        onehot = (y_idx[idx] == np.arange(C)[:, None]).astype(np.float64)  # (C, m)
        held_sums += (onehot @ _block(X, idx, heads).reshape(len(idx), -1)).reshape(sums.shape)
    left = counts - np.bincount(y_idx[held], minlength=C)  # (C,): >= 1 with two examples per class
    return (sums - held_sums) / left[:, None, None]


def _fisher_scores(X: np.ndarray, y_idx: np.ndarray, counts: np.ndarray, metric: str, shrinkage: Any) -> np.ndarray:
    """Per head, tr(Sigma^-1 S_B): between-class scatter over the shrunk pooled within-class covariance. (K,).

    Vectors are L2-normalized first under the cosine metric (the geometry the vote uses). S_W and S_B are
    divided by n; Sigma = (1 - lam) S_W + lam * (tr(S_W) / d) * I, with lam the Ledoit-Wolf estimate on the
    class-centred vectors (``shrinkage="auto"``, as ``sklearn.covariance.ledoit_wolf_shrinkage`` with
    ``assume_centered=True``) or the given float. A 1e-10 ridge (relative to the total variance) keeps a head
    whose classes have no spread at all finite: its score is huge, not infinite.
    """
    n, K, d = X.shape
    C = len(counts)

    def vectors(rows: slice) -> np.ndarray:
        V = _block(X, rows, None)
        if metric == "cosine":
            norms = np.linalg.norm(V, axis=2, keepdims=True)
            V = np.divide(V, norms, out=np.zeros_like(V), where=norms > 0)
        return V

    blocks = _row_slices(n, K * max(C, d) * 8)
    onehot = (y_idx == np.arange(C)[:, None]).astype(np.float64)  # (C, n)
    sums = sum(onehot[:, r] @ vectors(r).reshape(-1, K * d) for r in blocks).reshape(C, K, d)
    means = sums / counts[:, None, None]  # (C, K, d)
    within = np.zeros((K, d, d))
    fourth = np.zeros(K)  # sum over examples of |z|^4, for Ledoit-Wolf
    for r in blocks:
        Z = vectors(r) - means[y_idx[r]]  # (m, K, d): class-centred
        within += np.matmul(Z.transpose(1, 2, 0), Z.transpose(1, 0, 2))  # (K, d, d)
        fourth += (np.einsum("mkd,mkd->mk", Z, Z) ** 2).sum(axis=0)
    within /= n
    mu = np.trace(within, axis1=1, axis2=2) / d  # (K,)
    if shrinkage == "auto":
        fro2 = (within**2).sum(axis=(1, 2))
        delta = (fro2 - d * mu**2) / d
        beta = np.minimum((fourth / n - fro2) / (d * n), delta)
        lam = np.divide(beta, delta, out=np.zeros(K), where=(beta != 0) & (delta > 0))
        lam = np.zeros(K) if d == 1 else lam
    else:
        lam = np.full(K, float(shrinkage))
    eye = np.eye(d)
    sigma = (1 - lam)[:, None, None] * within + (lam * mu)[:, None, None] * eye  # (K, d, d)
    dev = means - sums.sum(axis=0) / n  # (C, K, d): class mean minus grand mean
    prior = counts / n  # (C,)
    total = mu + np.einsum("c,ckd,ckd->k", prior, dev, dev) / d  # (K,): average variance per dimension
    sigma += (1e-10 * np.where(total > 0, total, 1.0))[:, None, None] * eye
    solved = np.linalg.solve(sigma, dev.transpose(1, 2, 0))  # (K, d, C)
    return np.einsum("c,kdc,kdc->k", prior, dev.transpose(1, 2, 0), solved)


def _pursuit(
    X: np.ndarray, y_idx: np.ndarray, means: np.ndarray, counts: np.ndarray, order: np.ndarray, k: int, metric: str
) -> np.ndarray:
    """Flat indices of ``k`` heads chosen by simultaneous orthogonal matching pursuit (see SAVClassifier).

    ``order``: every head, best-scored first; it breaks ties and limits the candidates to what fits in
    ``PURSUIT_BYTES``. Heads left once the labels are explained (or never candidates) follow in ``order``.
    """
    n, K, _ = X.shape
    C = len(counts)
    n_candidates = K if n * K * C * 8 <= PURSUIT_BYTES else max(k, PURSUIT_BYTES // (n * C * 8))
    candidates = order[:n_candidates]
    atoms = np.empty((n, len(candidates), C))  # atoms[:, j, c]: candidate j's similarity to class c, per example
    for r in _row_slices(n, len(candidates) * max(C, X.shape[2]) * 8):
        atoms[r] = _similarities(
            _block(X, r, candidates), y_idx[r], means[:, candidates], counts, metric, leave_one_out=True, true=True
        )
    atoms -= atoms.mean(axis=2, keepdims=True)  # what an example's similarities share across classes says nothing
    atoms -= atoms.mean(axis=0, keepdims=True)
    norms = np.sqrt((atoms**2).sum(axis=0))  # (P, C)
    atoms = np.divide(atoms, norms, out=np.zeros_like(atoms), where=norms > 1e-12 * max(norms.max(), 1e-300))
    residual = (y_idx[:, None] == np.arange(C)).astype(np.float64) - counts / n  # (n, C): centred class indicators
    tol = 1e-12 * (residual**2).sum()
    basis: list[np.ndarray] = []  # per-class orthonormal directions of the chosen atoms, each (n, C)
    chosen: list[int] = []
    free = np.ones(len(candidates), dtype=bool)
    for _ in range(min(k, len(candidates))):
        gain = (np.einsum("npc,nc->pc", atoms, residual) ** 2).sum(axis=1)  # (P,)
        gain[~free] = -np.inf
        best = int(np.argmax(gain))  # ties: the better-scored candidate
        if gain[best] <= tol:
            break
        chosen.append(best)
        free[best] = False
        q = atoms[:, best].copy()  # (n, C)
        for _ in range(2):  # Gram-Schmidt twice: orthogonal to working precision
            for b in basis:
                q -= b * (b * q).sum(axis=0)
        qn = np.sqrt((q**2).sum(axis=0))
        q = np.divide(q, qn, out=np.zeros_like(q), where=qn > 1e-10)
        basis.append(q)
        residual -= q * (q * residual).sum(axis=0)
    picked = candidates[chosen]
    rest = order[~np.isin(order, picked)]
    return np.concatenate([picked, rest])[:k]


class SAVClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot classifier voting with attention heads: SAVs, and the head-scoring, selection and voting rules after it.

    Every head's vector is averaged per class. Each head is scored (``scoring``), ``n_heads`` heads are selected
    (``selection``), and a query is classified by their vote (``voting``), each head voting through its nearest
    class mean. The defaults (cosine, in-sample scoring, top 20, majority vote) are SAVs as the authors released
    them. Every rule is deterministic (cross-validation folds are fixed, see ``n_folds``), so there is no
    ``random_state``.

    Parameters
    ----------
    n_heads : int or "all", default=20
        How many heads vote (clipped to the number of heads); "all" keeps every head.
    metric : {"cosine", "euclidean"}, default="cosine"
        Nearest class mean by cosine similarity (the paper) or by L2 distance. Reliability voting, pursuit and
        Fisher scoring use the same geometry (cosines, or negative squared distances).
    scoring : {"in_sample", "leave_one_out", "cv", "fisher"}, default="in_sample"
        How heads are scored (``head_scores_``).

        - "in_sample" (SAVs, Mitra et al., arXiv 2412.00142): the fraction of few-shot examples whose nearest
          class mean, with every example included in the means, is their own class.
        - "leave_one_out": the same, each example compared with its own class mean computed without it (the other
          means unchanged), so a noise head cannot score by memorizing the few-shot set.
        - "cv": k-fold cross-validated accuracy: the examples are split into ``n_folds`` folds (see ``n_folds``);
          each fold is classified with class means computed from the other folds.
        - "fisher" (after HEC, de Senneville et al., arXiv 2603.24181, which ranks heads the way Gaussian
          discriminant analysis separates classes): per head, tr(Sigma^-1 S_B), where S_B is the between-class
          scatter of the class means (weighted by class frequency) and Sigma the pooled within-class covariance
          shrunk toward a scaled identity by ``shrinkage``; vectors are L2-normalized first under the cosine
          metric. With shrinkage 1 it is d * tr(S_B) / tr(S_W), the isotropic Fisher ratio. This is the shrunk
          multi-class Fisher (LDA) criterion that HEC's description names, not a port of its code, which we have
          not seen. HEC also ranks the vision encoder's heads; this estimator ranks whatever heads it is given.
    selection : {"top_k", "pursuit"}, default="top_k"
        Which heads vote (``heads_``, in rank order).

        - "top_k" (SAVs): the ``n_heads`` best-scored heads; equal scores keep layer-major order.
        - "pursuit" (after Head Pursuit, Basile et al., arXiv 2510.21518, which probes attention heads with
          simultaneous orthogonal matching pursuit, SOMP; using it to pick voting heads is our adaptation, not that
          paper's classifier): greedy SOMP over heads. The signals are
          the C centred class indicators (one per class, explained simultaneously); head h offers one atom per
          class c, the examples' similarity to h's class-c mean (leave-one-out for the example's own class, so
          memorization cannot look like signal), centred across classes per example and across examples, unit
          norm. Each step adds the head with the largest sum over classes of squared correlations between its
          atoms and the residuals, then projects every class's indicator on its chosen atoms (orthogonal least
          squares, per class). A head that repeats what the chosen heads already explain has little correlation
          with the residual, so redundant heads are skipped. Ties go to the better-scored head; when the labels
          are fully explained, the remaining places go to the best-scored heads left. Scores only order
          candidates (all heads, or the best-scored ones that fit in ``PURSUIT_BYTES``).
        The old values "in_sample" and "leave_one_out" (from before ``scoring`` existed) mean
        ``scoring=<that>, selection="top_k"``, with a FutureWarning.
    voting : {"majority", "reliability"}, default="majority"
        How the selected heads vote.

        - "majority" (SAVs): each head votes for its nearest class mean; most votes wins, a tie goes to the tied
          class voted by the highest-ranked head.
        - "reliability" (CALM, Mehta et al., arXiv 2602.07077, weight scheme "margin_clamped"): head k gives
          posteriors P[k, c] = softmax_c(sim(x, m[k, c]) / ``temperature``); a query's score for class c is
          sum_k w[k, c] P[k, c] and the top score wins (ties: first class). The weights come from the few-shot set
          split into ``n_folds`` folds: each example's P is computed with class means from the other folds;
          r[k, c] = mean over the examples of class c of max(P[k, c] - max_{c' != c} P[k, c'], 0); shrunk toward
          the mean reliability r_bar over the voting heads and classes, r_hat = r * n_c / (n_c + ``alpha``) +
          r_bar * alpha / (n_c + alpha), n_c the examples of class c; and normalised per class, w[:, c] =
          r_hat[:, c] / sum_k r_hat[k, c] (uniform when that sum is 0). CALM weighs all of a model's heads; here
          it weighs the ``n_heads`` selected ones (``n_heads="all"`` for CALM as released).
    n_folds : int, default=5
        Folds for ``scoring="cv"``, for reliability weights and for calibration. Example i of class c falls in fold
        (rank of i among the examples of c, in the order given) mod n_folds: stratified, deterministic.
    temperature : float, default=0.07
        CALM's posterior temperature (its default, tuned for cosine similarities).
    alpha : float, default=5.0
        CALM's reliability shrinkage strength (0: none). CALM's code defines the shrinkage without a default and
        its run script does not apply it; 5 (a class with 5 held-out examples is pulled halfway to the mean) is
        our choice.
    shrinkage : "auto" or float in [0, 1], default="auto"
        Fisher scoring's covariance shrinkage: "auto" is the Ledoit-Wolf estimate per head (as scikit-learn's LDA
        with ``shrinkage="auto"``), a float fixes it.
    calibration : {None, "temperature"}, default=None
        None: ``predict_proba`` returns the soft votes (see ``predict_proba``). "temperature": it returns
        softmax(s * calibration_scale_) of the soft votes s, the scale fitted by maximum likelihood on out-of-fold
        soft votes (the whole fit repeated on every ``n_folds`` split, so selection is inside the folds). It does
        not change ``predict``. With a linear ``readout`` it scales that model's log-probabilities instead.
    readout : {"vote", "logistic", "lda"}, default="vote"
        How the selected heads classify (``savs.readout``).

        - "vote" (SAVs): the heads vote (``voting``).
        - "logistic" / "lda" (ours, not the paper's): the selected heads' vectors concatenated in rank order,
          standardised on the few-shot set, read by L2 logistic regression (its C chosen by cross-validated log loss
          over the ``n_folds`` folds of the few-shot set) or by shrinkage LDA (``shrinkage``; "auto": Ledoit-Wolf).
          ``predict`` is the model's most probable class, ``predict_proba`` its probabilities; ``voting`` is unused.
          Needs two examples per class.
    head_grid : tuple of (n_layers, n_heads), default=None
        Layout of a 2-D X of shape (n, n_layers * n_heads * head_dim), flattened layer-major. A 2-D X
        without it is treated as a single head (n, 1, 1, n_features). A 4-D X carries its own grid.
    heads : array-like of (layer, head) pairs, default=None
        Fixed voting heads in rank order, bypassing selection (``n_heads`` is then unused): e.g. the
        ``heads_`` of a classifier fitted on another task, for cross-task transfer.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels.
    class_means_ : ndarray of shape (n_classes, n_layers, n_heads, head_dim)
        Per-class mean vector of every head.
    head_scores_ : ndarray of shape (n_layers, n_heads)
        Each head's score under ``scoring``: an accuracy in [0, 1] (a count divided by n_examples), or for
        "fisher" the discriminant ratio (>= 0, unbounded).
    heads_ : ndarray of shape (k, 2)
        Voting (layer, head) pairs, best first (for pursuit: in the order chosen).
    head_weights_ : ndarray of shape (k, n_classes)
        Weight of each voting head (rows, as ``heads_``) for each class (columns): CALM's normalised
        reliabilities, or 1/k everywhere for the majority vote. Each column sums to 1.
    calibration_scale_ : float or None
        The fitted scale of ``calibration="temperature"``; None without calibration.
    readout_ : savs.readout.LinearReadout or None
        The linear read-out over the selected heads (its standardisation, coefficients, intercepts and chosen
        regularisation); None for the vote.
    head_grid_ : tuple of (n_layers, n_heads)
        The head layout used.
    n_features_in_ : int
        Features per example, n_layers * n_heads * head_dim.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when X was a DataFrame with string column names.

    Notes
    -----
    X is 4-D (n_examples, n_layers, n_heads, head_dim), or 2-D as described under ``head_grid``; float32 X
    is read as is (no float64 copy of all of it), other dtypes are converted to float64, and class means and
    similarities are computed in float64, a block of examples at a time. "leave_one_out", "cv", "pursuit",
    "reliability" and calibration need at least two examples per class.
    Ties are deterministic: a nearest-mean tie goes to the class first in ``classes_``; a vote tie goes to
    the tied class voted by the highest-ranked head. Majority-vote ``predict_proba`` returns vote shares, so its
    argmax can differ from ``predict`` on vote ties.
    ``compact()`` gives the same classifier on its voting heads alone (what ``savs.pipeline`` keeps).

    References
    ----------
    Mitra et al., "Sparse Attention Vectors: Generative Multimodal Model Features Are Discriminative
    Vision-Language Classifiers", arXiv:2412.00142.
    Mehta et al., "CALM: Class-Conditional Sparse Attention Vectors for Large Audio-Language Models",
    arXiv:2602.07077 (code: github.com/mvideet/CALM).
    de Senneville et al., "Unlocking Few-Shot Capabilities in LVLMs via Prompt Conditioning and Head Selection"
    (HEC), arXiv:2603.24181.
    Basile et al., "Head Pursuit: Probing Attention Specialization in Multimodal Transformers", arXiv:2510.21518.

    Examples
    --------
    >>> import numpy as np
    >>> from savs.classifier import SAVClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 2, 4, 8))  # 40 examples, 2 layers x 4 heads, head_dim 8
    >>> y = np.repeat([0, 1], 20)
    >>> X[:, 1, 2, 0] += 6 * (y == 0)  # only layer 1, head 2 carries the label
    >>> X[:, 1, 2, 1] += 6 * (y == 1)
    >>> clf = SAVClassifier(n_heads=1).fit(X, y)
    >>> clf.heads_
    array([[1, 2]])
    >>> float(clf.head_scores_[1, 2])
    1.0
    >>> clf.predict(X[:3]).tolist()
    [0, 0, 0]
    >>> calm = SAVClassifier(n_heads=3, scoring="cv", voting="reliability").fit(X, y)
    >>> calm.heads_[0].tolist(), calm.predict(X[:3]).tolist()
    ([1, 2], [0, 0, 0])
    """

    def __init__(
        self,
        n_heads: int | str = 20,
        metric: str = "cosine",
        scoring: str = "in_sample",
        selection: str = "top_k",
        voting: str = "majority",
        n_folds: int = 5,
        temperature: float = 0.07,
        alpha: float = 5.0,
        shrinkage: float | str = "auto",
        calibration: str | None = None,
        head_grid: tuple[int, int] | None = None,
        heads: ArrayLike | None = None,
        readout: str = "vote",
    ) -> None:
        self.n_heads = n_heads
        self.metric = metric
        self.scoring = scoring
        self.selection = selection
        self.voting = voting
        self.n_folds = n_folds
        self.temperature = temperature
        self.alpha = alpha
        self.shrinkage = shrinkage
        self.calibration = calibration
        self.head_grid = head_grid
        self.heads = heads
        self.readout = readout

    # --- parameters ----------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Reject bad constructor arguments with a message naming the argument and what is allowed."""
        for name, allowed in (
            ("metric", METRICS),
            ("scoring", SCORINGS),
            ("selection", SELECTIONS + LEGACY_SELECTIONS),
            ("voting", VOTINGS),
            ("calibration", CALIBRATIONS),
            ("readout", READOUTS),
        ):
            if getattr(self, name) not in allowed:
                shown = SELECTIONS if name == "selection" else allowed
                raise ValueError(f"{name} must be one of {shown}; got {getattr(self, name)!r}.")
        is_int = isinstance(self.n_heads, int | np.integer) and not isinstance(self.n_heads, bool)
        if not (self.n_heads == "all" if isinstance(self.n_heads, str) else is_int and self.n_heads >= 1):
            raise ValueError(f"n_heads must be an int >= 1 or 'all'; got {self.n_heads!r}.")
        folds_ok = isinstance(self.n_folds, int | np.integer) and not isinstance(self.n_folds, bool)
        if not (folds_ok and self.n_folds >= 2):
            raise ValueError(f"n_folds must be an int >= 2; got {self.n_folds!r}.")
        if not (_is_real(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a number > 0; got {self.temperature!r}.")
        if not (_is_real(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0; got {self.alpha!r}.")
        if not (self.shrinkage == "auto" if isinstance(self.shrinkage, str) else _is_real(self.shrinkage)) or (
            _is_real(self.shrinkage) and not 0 <= self.shrinkage <= 1
        ):
            raise ValueError(f"shrinkage must be 'auto' or a number in [0, 1]; got {self.shrinkage!r}.")
        grid = self.head_grid
        if grid is not None and not (
            isinstance(grid, tuple | list)
            and len(grid) == 2
            and all(isinstance(g, int | np.integer) and g >= 1 for g in grid)
        ):
            raise ValueError(f"head_grid must be (n_layers, n_heads) with positive ints; got {grid!r}.")

    def _methods(self) -> tuple[str, str]:
        """(scoring, selection), reading the old ``selection="in_sample"/"leave_one_out"`` as a scoring rule."""
        if self.selection not in LEGACY_SELECTIONS:
            return self.scoring, self.selection
        if self.scoring != "in_sample":
            raise ValueError(
                f"selection={self.selection!r} is the old spelling of scoring={self.selection!r}; "
                f"with scoring={self.scoring!r} it is ambiguous: pass scoring alone."
            )
        warnings.warn(
            f"selection={self.selection!r} is deprecated: head scoring is now scoring={self.selection!r}, and "
            f"selection names the selection rule {SELECTIONS}.",
            FutureWarning,
            stacklevel=3,
        )
        return self.selection, "top_k"

    def _resolve_grid(self, n_features: int, shape4: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """Return (L, H, d) from a 4-D X's shape, or from ``head_grid`` (default one head) for a 2-D X."""
        if shape4 is not None:
            if self.head_grid is not None and tuple(self.head_grid) != shape4[:2]:
                raise ValueError(f"head_grid={self.head_grid!r} disagrees with the 4-D X's grid {shape4[:2]}")
            return shape4
        L, H = (1, 1) if self.head_grid is None else self.head_grid
        if n_features % (L * H):
            raise ValueError(
                f"X has {n_features} features, not a multiple of n_layers * n_heads = {L * H} "
                f"for head_grid={self.head_grid!r}."
            )
        return int(L), int(H), n_features // (L * H)

    def _given_heads(self, L: int, H: int) -> np.ndarray:
        """Validate the ``heads`` argument against the (L, H) grid and return it as a (k, 2) int array."""
        heads = np.asarray(self.heads)
        if heads.ndim != 2 or heads.shape[1] != 2 or len(heads) == 0 or heads.dtype.kind not in "iu":
            raise ValueError(f"heads must be a non-empty list of int (layer, head) pairs; got {self.heads!r}")
        outside = heads[(heads[:, 0] < 0) | (heads[:, 0] >= L) | (heads[:, 1] < 0) | (heads[:, 1] >= H)]
        if len(outside):
            raise ValueError(f"heads {outside.tolist()} are outside the (n_layers, n_heads) = {(L, H)} grid.")
        if len(np.unique(heads, axis=0)) != len(heads):
            raise ValueError(f"heads contains duplicate (layer, head) pairs: {heads.tolist()}.")
        return heads.astype(np.int64)

    def examples_needed(self) -> dict[str, int]:
        """The fewest examples per class each chosen rule that holds examples out needs (empty: any count fits):
        two for leave-one-out / cross-validated scoring, pursuit and reliability voting; more for calibration's
        folds. ``fit`` refuses smaller classes; callers can check before extracting anything."""
        self._check_params()
        return self._needs(*self._methods())

    def _needs(self, scoring: str, selection: str) -> dict[str, int]:
        holding_out = [
            f"{name}={value!r}"
            for name, value, holds_out in (
                ("scoring", scoring, scoring in ("leave_one_out", "cv")),
                ("selection", selection, selection == "pursuit" and self.heads is None),
                ("voting", self.voting, self.voting == "reliability" and self.readout == "vote"),
                ("readout", self.readout, self.readout != "vote"),
            )
            if holds_out
        ]
        needs = {rule: 2 for rule in holding_out}
        if self.calibration is not None:  # every class keeps, outside each fold, what the rules fitted there need
            inner = 2 if holding_out else 1
            needed = next(m for m in range(2, 2 + 2 * self.n_folds) if m - -(-m // self.n_folds) >= inner)
            within = f" with {', '.join(holding_out)}" if holding_out else ""
            needs[f"calibration={self.calibration!r}{within}"] = needed
        return needs

    def _check_counts(self, counts: np.ndarray, scoring: str, selection: str) -> None:
        """Refuse classes too small for the rules that hold examples out (``examples_needed``)."""
        needs = self._needs(scoring, selection)
        if needs and counts.min() < max(needs.values()):
            needed = max(needs.values())
            rules = [rule for rule, m in needs.items() if m == needed]
            raise ValueError(
                f"{', '.join(rules)} need{'s' * (len(rules) == 1)} at least {needed} examples per class; "
                f"classes {self.classes_[counts < needed].tolist()} have fewer."
            )

    # --- fit -----------------------------------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike) -> SAVClassifier:
        """Compute every head's class means, score the heads, select the voters, and weigh them."""
        self._check_params()
        scoring, selection = self._methods()
        X, shape4 = _flatten_4d(X)
        X, y = validate_data(self, X, y, dtype=FLOATS)
        check_classification_targets(y)
        L, H, d = self._resolve_grid(X.shape[1], shape4)
        n, K = len(X), L * H
        X = X.reshape(n, K, d)  # (n, K, d): heads flattened layer-major
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        C = len(self.classes_)
        if C < 2:
            raise ValueError(f"y contains only one class ({self.classes_[0]!r}); at least 2 are needed")
        counts = np.bincount(y_idx, minlength=C)  # (C,)
        self._check_counts(counts, scoring, selection)
        onehot = (y_idx == np.arange(C)[:, None]).astype(np.float64)  # (C, n)
        blocks = _row_slices(n, K * max(C, d) * 8)
        sums = sum(onehot[:, r] @ X[r].reshape(-1, K * d).astype(np.float64) for r in blocks)  # (C, K*d)
        sums = sums.reshape(C, K, d)
        means = sums / counts[:, None, None]  # (C, K, d)
        scores = self._head_scores(scoring, X, y_idx, means, sums, counts)  # (K,)

        self.head_grid_ = (L, H)
        self.class_means_ = means.reshape(C, L, H, d)
        self.head_scores_ = scores.reshape(L, H)
        if self.heads is not None:
            flat = np.ravel_multi_index(tuple(self._given_heads(L, H).T), (L, H))
        else:
            k = K if self.n_heads == "all" else min(int(self.n_heads), K)
            order = np.argsort(-scores, kind="stable")  # best first; equal scores keep layer-major order
            flat = order[:k] if selection == "top_k" else _pursuit(X, y_idx, means, counts, order, k, self.metric)
        self.heads_ = np.stack(np.unravel_index(flat, (L, H)), axis=1).astype(np.int64)  # (k, 2)
        if self.voting == "reliability" and self.readout == "vote":
            self.head_weights_ = self._reliability_weights(X, y_idx, sums, counts, flat)
        else:
            self.head_weights_ = np.full((len(flat), C), 1 / len(flat))
        self.readout_ = None
        if self.readout != "vote":
            Z = X[:, flat].reshape(n, -1).astype(np.float64)  # (n, k*d): the selected heads, in rank order
            self.readout_ = fit_readout(self.readout, Z, y_idx, _folds(y_idx, C, self.n_folds), self.shrinkage)
        self.calibration_scale_ = None
        if self.calibration == "temperature":
            self.calibration_scale_ = self._fit_calibration(X.reshape(n, L, H, d), y, y_idx, scoring, selection)
        return self

    def _head_scores(
        self, scoring: str, X: np.ndarray, y_idx: np.ndarray, means: np.ndarray, sums: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        """Every head's score under ``scoring``: (K,)."""
        n, K, d = X.shape
        if scoring == "fisher":
            return _fisher_scores(X, y_idx, counts, self.metric, self.shrinkage)
        correct = np.empty((n, K), dtype=bool)
        row_bytes = K * max(len(counts), d) * 8
        if scoring == "cv":
            folds = _folds(y_idx, len(counts), self.n_folds)
            for f in range(self.n_folds):
                held = np.flatnonzero(folds == f)
                if not len(held):
                    continue
                fold_means = _means_without(X, y_idx, sums, counts, held, None)  # (C, K, d)
                for r in _row_slices(len(held), row_bytes):
                    idx = held[r]
                    sims = _similarities(_block(X, idx, None), y_idx[idx], fold_means, counts, self.metric)
                    correct[idx] = sims.argmax(axis=2) == y_idx[idx, None]
        else:
            for r in _row_slices(n, row_bytes):
                sims = _similarities(
                    _block(X, r, None), y_idx[r], means, counts, self.metric, leave_one_out=scoring == "leave_one_out"
                )
                correct[r] = sims.argmax(axis=2) == y_idx[r, None]  # argmax: ties go to the first class
        return correct.sum(axis=0) / n

    def _reliability_weights(
        self, X: np.ndarray, y_idx: np.ndarray, sums: np.ndarray, counts: np.ndarray, flat: np.ndarray
    ) -> np.ndarray:
        """CALM's per-head, per-class weights (k, C) for the heads ``flat``, from out-of-fold posteriors."""
        C, k = len(counts), len(flat)
        folds = _folds(y_idx, C, self.n_folds)
        margin_sums = np.zeros((C, k))
        for f in range(self.n_folds):
            held = np.flatnonzero(folds == f)
            if not len(held):
                continue
            fold_means = _means_without(X, y_idx, sums[:, flat], counts, held, flat)  # (C, k, d)
            for r in _row_slices(len(held), k * max(C, X.shape[2]) * 8):
                idx = held[r]
                P = self._posteriors(_block(X, idx, flat), fold_means)  # (m, k, C)
                own = np.take_along_axis(P, y_idx[idx, None, None], axis=2)[:, :, 0]  # (m, k)
                np.put_along_axis(P, y_idx[idx, None, None], -np.inf, axis=2)
                margin = np.maximum(own - P.max(axis=2), 0.0)  # (m, k): "margin_clamped"
                onehot = (y_idx[idx] == np.arange(C)[:, None]).astype(np.float64)  # (C, m)
                margin_sums += onehot @ margin
        r = (margin_sums / counts[:, None]).T  # (k, C): mean clamped margin over each class's examples
        keep = counts / (counts + self.alpha)  # (C,)
        r_hat = r * keep + r.mean() * (1 - keep)
        totals = r_hat.sum(axis=0)  # (C,)
        return np.where(totals > 0, r_hat / np.where(totals > 0, totals, 1.0), 1 / k)

    def _posteriors(self, X: np.ndarray, means: np.ndarray) -> np.ndarray:
        """CALM's per-head class posteriors softmax(sim / temperature): X (m, k, d), means (C, k, d) -> (m, k, C)."""
        sims = _as_true(_class_similarities(X, means, self.metric), X, self.metric)
        return softmax(sims / self.temperature, axis=2)

    def _fit_calibration(self, X: np.ndarray, y: np.ndarray, y_idx: np.ndarray, scoring: str, selection: str) -> float:
        """The scale s of softmax(s * votes) maximizing the likelihood of out-of-fold soft votes (fit per fold)."""
        C = len(self.classes_)
        inner = clone(self).set_params(calibration=None, scoring=scoring, selection=selection)
        folds = _folds(y_idx, C, self.n_folds)
        votes = np.empty((len(y), C))
        for f in range(self.n_folds):
            held = folds == f
            if held.any():
                votes[held] = clone(inner).fit(X[~held], y[~held])._scores(X[held])

        def nll(log_scale: float) -> float:
            return -np.take_along_axis(log_softmax(np.exp(log_scale) * votes, axis=1), y_idx[:, None], 1).mean()

        return float(np.exp(minimize_scalar(nll, bounds=(np.log(1e-3), np.log(1e3)), method="bounded").x))

    # --- predict -------------------------------------------------------------------------------------------------
    def _head_vectors(self, X: ArrayLike) -> np.ndarray:
        """Validated X as (n, L, H, d), float32 or float64."""
        check_is_fitted(self)
        L, H = self.head_grid_
        d = self.class_means_.shape[3]
        X, shape4 = _flatten_4d(X)
        if shape4 is not None and shape4 != (L, H, d):
            raise ValueError(f"X has per-example shape {shape4}, but the classifier was fit on {(L, H, d)}")
        return validate_data(self, X, reset=False, dtype=FLOATS).reshape(-1, L, H, d)  # (n, L, H, d)

    def _allowed(self, allowed: ArrayLike | None, n: int) -> np.ndarray | None:
        """A validated ``allowed`` mask (n, C) of the classes each query may take (``answer_set_mask``), or None."""
        if allowed is None:
            return None
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (n, len(self.classes_)):
            raise ValueError(
                f"allowed has shape {allowed.shape}; expected (n_queries, n_classes) = {(n, len(self.classes_))}"
            )
        if not allowed.any(axis=1).all():
            raise ValueError("allowed leaves a query no class to take")
        return allowed

    def head_votes(self, X: ArrayLike, allowed: ArrayLike | None = None) -> np.ndarray:
        """Class index (into ``classes_``) that each selected head votes for: (n, k), heads in rank order.

        ``allowed`` (n, C) bool: each head votes for its most similar class among the query's allowed ones (a masked
        vote, e.g. a yes/no question's Yes and No where the task also has A and B); None: every class."""
        X = self._head_vectors(X)
        allowed = self._allowed(allowed, len(X))
        layer, head = self.heads_.T
        means = self.class_means_[:, layer, head]  # (C, k, d)
        rows = _row_slices(len(X), len(layer) * len(means) * 8)
        votes = []
        for r in rows:
            sims = _class_similarities(X[r, layer, head].astype(np.float64), means, self.metric)  # (m, k, C)
            if allowed is not None:
                sims = np.where(allowed[r, None, :], sims, -np.inf)
            votes.append(sims.argmax(axis=2))
        return np.concatenate(votes)

    def _vote_counts(self, votes: np.ndarray) -> np.ndarray:
        """Count votes per class: (n, k) class indices -> (n, C) counts in ``classes_`` order."""
        return (votes[:, :, None] == np.arange(len(self.classes_))).sum(axis=1)

    def _soft_votes(self, X: ArrayLike, allowed: ArrayLike | None = None) -> np.ndarray:
        """Uncalibrated class scores (n, C), rows summing to 1: vote shares, or CALM's normalised weighted scores;
        with ``allowed``, over the allowed classes only (the others score 0)."""
        if self.voting == "majority":
            votes = self.head_votes(X, allowed)  # (n, k)
            return self._vote_counts(votes) / votes.shape[1]
        X = self._head_vectors(X)
        allowed = self._allowed(allowed, len(X))
        layer, head = self.heads_.T
        means = self.class_means_[:, layer, head]  # (C, k, d)
        rows = _row_slices(len(X), len(layer) * max(len(means), means.shape[2]) * 8)
        posteriors = (self._posteriors(X[r, layer, head].astype(np.float64), means) for r in rows)  # (m, k, C) each
        scores = np.concatenate([np.einsum("mkc,kc->mc", P, self.head_weights_) for P in posteriors])  # (n, C)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)
        return scores / scores.sum(axis=1, keepdims=True)

    def _scores(self, X: ArrayLike, allowed: ArrayLike | None = None) -> np.ndarray:
        """What calibration scales (n, C): the soft votes, or a linear read-out's log-probabilities (with ``allowed``,
        classes not allowed at -inf)."""
        readout = getattr(self, "readout_", None)
        if readout is None:
            return self._soft_votes(X, allowed)
        X = self._head_vectors(X)
        allowed = self._allowed(allowed, len(X))
        layer, head = self.heads_.T
        scores = readout.log_proba(X[:, layer, head].reshape(len(X), -1).astype(np.float64))  # (n, C)
        return scores if allowed is None else np.where(allowed, scores, -np.inf)

    def predict(self, X: ArrayLike, allowed: ArrayLike | None = None) -> np.ndarray:
        """The vote's winner: majority (a tie goes to the tied class the highest-ranked head voted), or the top
        reliability-weighted score (a tie goes to the first class); with a linear read-out, its most probable class
        (ties: the first). ``allowed`` (n, C) bool restricts each query to some classes (``head_votes``)."""
        check_is_fitted(self)
        if getattr(self, "readout_", None) is not None:
            return self.classes_[self._scores(X, allowed).argmax(axis=1)]
        if self.voting == "reliability":
            return self.classes_[self._soft_votes(X, allowed).argmax(axis=1)]
        votes = self.head_votes(X, allowed)  # (n, k)
        counts = self._vote_counts(votes)  # (n, C)
        tied = counts == counts.max(axis=1, keepdims=True)  # (n, C): classes sharing the top count
        first = np.take_along_axis(tied, votes, axis=1).argmax(axis=1)  # (n,): first head voting a tied class
        return self.classes_[votes[np.arange(len(votes)), first]]

    def predict_proba(self, X: ArrayLike, allowed: ArrayLike | None = None) -> np.ndarray:
        """Class probabilities (n, C) in ``classes_`` order; rows sum to 1.

        Majority voting: vote shares. Reliability voting: CALM's scores sum_k w[k, c] P[k, c], normalised per
        query. With ``calibration="temperature"``: softmax(calibration_scale_ * those soft votes). A linear read-out:
        its probabilities (softmax(calibration_scale_ * log-probabilities) when calibrated). ``allowed`` (n, C) bool:
        the masked vote of ``head_votes`` (or the read-out renormalised over the allowed classes); classes not allowed
        get probability 0.
        """
        check_is_fitted(self)
        scores = self._scores(X, allowed)
        scale = getattr(self, "calibration_scale_", None)
        if getattr(self, "readout_", None) is not None:
            if scale is None and allowed is None:
                return np.exp(scores)
            return softmax(scores if scale is None else scale * scores, axis=1)
        if scale is None:
            return scores
        logits = scale * scores
        return softmax(logits if allowed is None else np.where(allowed, logits, -np.inf), axis=1)

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy, refusing labels never seen in fit (they could only ever count as errors)."""
        check_is_fitted(self)
        known = set(self.classes_.tolist())
        unseen = sorted({v for v in np.asarray(y).ravel().tolist() if v not in known}, key=str)
        if unseen:
            raise ValueError(
                f"y contains labels never seen in fit: {unseen}; known classes: {self.classes_.tolist()}."
            )
        return super().score(X, y, sample_weight=sample_weight)

    # --- reduction -----------------------------------------------------------------------------------------------
    def compact(self) -> SAVClassifier:
        """This fitted classifier on its voting heads alone, laid out as a (k, 1) grid in rank order.

        ``compact().predict(X[:, layer, head][:, :, None])`` (with ``layer, head = heads_.T``) equals
        ``predict(X)``; so do ``predict_proba`` and ``head_votes``. Nothing is refitted: the class means, head
        weights and calibration scale are carried over (refitting on the k heads would recompute the reliability
        weights identically, but not the calibration, whose folds re-select heads).

        To rebuild it elsewhere (e.g. from a saved file), keep: ``classes_``; ``class_means_[:, :, 0]`` (C, k, d);
        ``head_weights_`` (k, C; needed for reliability voting); ``calibration_scale_`` (float or None); and the
        parameters ``metric``, ``voting``, ``temperature``, ``readout`` with ``readout_`` (a linear read-out's
        arrays, over the heads in rank order). Then set, on
        ``SAVClassifier(heads=[(i, 0) for i in range(k)], metric=..., voting=..., temperature=...)``:
        ``classes_``, ``class_means_`` (C, k, 1, d), ``heads_`` ([[i, 0] ...]), ``head_grid_`` ((k, 1)),
        ``head_weights_``, ``calibration_scale_``, ``readout_`` and ``n_features_in_`` (k * d).
        """
        check_is_fitted(self)
        layer, head = self.heads_.T
        k = len(layer)
        scoring, selection = self._methods()
        out = clone(self).set_params(
            heads=[(i, 0) for i in range(k)], head_grid=None, scoring=scoring, selection=selection
        )
        out.classes_ = self.classes_.copy()
        out.class_means_ = self.class_means_[:, layer, head][:, :, None].copy()  # (C, k, 1, d)
        out.head_scores_ = self.head_scores_[layer, head][:, None].copy()  # (k, 1)
        out.heads_ = np.stack([np.arange(k), np.zeros(k, dtype=np.int64)], axis=1)
        out.head_grid_ = (k, 1)
        out.head_weights_ = self.head_weights_.copy()
        out.calibration_scale_ = self.calibration_scale_
        out.readout_ = getattr(self, "readout_", None)
        out.n_features_in_ = k * self.class_means_.shape[3]
        return out


def answer_set_mask(classes: Sequence[str], answer_sets: Sequence[Sequence[str] | None]) -> np.ndarray | None:
    """(n, C) bool: which of ``classes`` each query may take, from its answer set (None: any class); None when no
    query has one. An answer set sharing no class with ``classes`` is an error."""
    if all(a is None for a in answer_sets):
        return None
    classes = list(classes)
    mask = np.array([[a is None or c in a for c in classes] for a in answer_sets], dtype=bool).reshape(-1, len(classes))
    empty = [a for a, row in zip(answer_sets, mask, strict=True) if not row.any()]
    if empty:
        raise ValueError(f"answer set {list(empty[0])} shares no class with the classifier's {classes}")
    return mask


def _is_real(value: Any) -> bool:
    """A real number, not a bool."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
