"""The head rules of ``SAVClassifier``: how heads are scored, chosen and weighed, as plain functions on arrays.

Every function here works on per-head vectors already flattened to X (n, K, d) (K heads, layer-major), class
labels as indices ``y_idx`` (n,) into C classes, and the class ``counts`` (C,), ``sums`` (C, K, d) and ``means``
(C, K, d) that ``SAVClassifier.fit`` computes once. The estimator (``savs.classifier``) validates its input and
parameters and calls:

* ``head_scores`` -- every head's score: ``in_sample`` (SAVs), ``leave_one_out``, ``cv`` or ``fisher``;
* ``pursuit`` -- the voting heads by simultaneous orthogonal matching pursuit (``selection="pursuit"``);
* ``reliability_weights`` and ``posteriors`` -- CALM's reliability-weighted soft vote (``voting="reliability"``);
* ``class_similarities``, ``row_slices`` and ``folds`` -- the nearest-class-mean geometry, memory blocks and
  cross-validation folds these rules share with prediction.

The rules themselves (with their papers) are described in ``SAVClassifier``'s docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

# Similarity blocks (examples x heads x classes, float64) are computed a slice of examples at a time, at most this
# many bytes each: ImageNet-1k at 20 shots on a 7B model would otherwise need (20000, 784, 1000) doubles = 125 GB.
BLOCK_BYTES = 2**28
# Head pursuit holds every candidate head's similarities (n, candidates, C) at once; at most this many bytes.
PURSUIT_BYTES = 2**30


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



def row_slices(n: int, row_bytes: int) -> list[slice]:
    """Slices of ``range(n)`` whose rows take at most ``BLOCK_BYTES`` together (at least one row each)."""
    step = max(1, BLOCK_BYTES // max(1, row_bytes))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def class_similarities(X: np.ndarray, means: np.ndarray, metric: str) -> np.ndarray:
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
    sims = class_similarities(X, means, metric)  # (m, K, C)
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


def folds(y_idx: np.ndarray, n_classes: int, n_folds: int) -> np.ndarray:
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
    for r in row_slices(len(held), sums[0].size * 8):
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

    blocks = row_slices(n, K * max(C, d) * 8)
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


def pursuit(
    X: np.ndarray, y_idx: np.ndarray, means: np.ndarray, counts: np.ndarray, order: np.ndarray, k: int, metric: str
) -> np.ndarray:
    """Flat indices (k,) of the heads chosen by simultaneous orthogonal matching pursuit, SOMP (``selection``).

    After Head Pursuit (Basile et al., arXiv 2510.21518), which probes attention heads with SOMP; using it to pick
    voting heads is our adaptation, not that paper's classifier. The signals are the C centred class indicators (one
    per class, explained simultaneously); head h offers one atom per class c, the examples' similarity to h's
    class-c mean (leave-one-out for the example's own class, so memorization cannot look like signal), centred
    across classes per example and across examples, unit norm. Each step adds the head with the largest sum over
    classes of squared correlations between its atoms and the residuals, then projects every class's indicator on
    its chosen atoms (orthogonal least squares, per class). A head that repeats what the chosen heads already
    explain has little correlation with the residual, so redundant heads are skipped.

    ``order``: every head, best-scored first; it breaks ties (the better-scored head wins) and limits the candidates
    to what fits in ``PURSUIT_BYTES``. Heads left once the labels are explained (or never candidates) follow in
    ``order``.
    """
    n, K, _ = X.shape
    C = len(counts)
    n_candidates = K if n * K * C * 8 <= PURSUIT_BYTES else max(k, PURSUIT_BYTES // (n * C * 8))
    candidates = order[:n_candidates]
    atoms = np.empty((n, len(candidates), C))  # atoms[:, j, c]: candidate j's similarity to class c, per example
    for r in row_slices(n, len(candidates) * max(C, X.shape[2]) * 8):
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


def head_scores(
    scoring: str,
    X: np.ndarray,
    y_idx: np.ndarray,
    means: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    *,
    metric: str,
    n_folds: int,
    shrinkage: Any,
) -> np.ndarray:
    """Every head's score under ``scoring``: (K,).

    "in_sample", "leave_one_out", "cv": the fraction of the examples whose nearest class mean is their own class,
    with every example in the means, with its own class mean computed without it, or with the means of the other
    ``n_folds`` - 1 folds (``folds``). "fisher" (after HEC, de Senneville et al., arXiv 2603.24181, which ranks heads
    the way Gaussian discriminant analysis separates classes): tr(Sigma^-1 S_B), S_B the between-class scatter of the
    class means (weighted by class frequency) and Sigma the pooled within-class covariance shrunk toward a scaled
    identity by ``shrinkage``; vectors are L2-normalized first under the cosine metric. With shrinkage 1 it is
    d * tr(S_B) / tr(S_W), the isotropic Fisher ratio. This is the shrunk multi-class Fisher (LDA) criterion that
    HEC's description names, not a port of its code, which we have not seen.
    """
    n, K, d = X.shape
    if scoring == "fisher":
        return _fisher_scores(X, y_idx, counts, metric, shrinkage)
    correct = np.empty((n, K), dtype=bool)
    row_bytes = K * max(len(counts), d) * 8
    if scoring == "cv":
        fold = folds(y_idx, len(counts), n_folds)
        for f in range(n_folds):
            held = np.flatnonzero(fold == f)
            if not len(held):
                continue
            fold_means = _means_without(X, y_idx, sums, counts, held, None)  # (C, K, d)
            for r in row_slices(len(held), row_bytes):
                idx = held[r]
                sims = _similarities(_block(X, idx, None), y_idx[idx], fold_means, counts, metric)
                correct[idx] = sims.argmax(axis=2) == y_idx[idx, None]
    else:
        for r in row_slices(n, row_bytes):
            sims = _similarities(
                _block(X, r, None), y_idx[r], means, counts, metric, leave_one_out=scoring == "leave_one_out"
            )
            correct[r] = sims.argmax(axis=2) == y_idx[r, None]  # argmax: ties go to the first class
    return correct.sum(axis=0) / n


def posteriors(X: np.ndarray, means: np.ndarray, metric: str, temperature: float) -> np.ndarray:
    """CALM's per-head class posteriors softmax(sim / temperature): X (m, k, d), means (C, k, d) -> (m, k, C)."""
    sims = _as_true(class_similarities(X, means, metric), X, metric)
    return softmax(sims / temperature, axis=2)


def reliability_weights(
    X: np.ndarray,
    y_idx: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
    flat: np.ndarray,
    *,
    metric: str,
    n_folds: int,
    temperature: float,
    alpha: float,
) -> np.ndarray:
    """CALM's per-head, per-class weights (k, C) for the heads ``flat`` (Mehta et al., arXiv 2602.07077).

    The examples are split into ``n_folds`` folds and each example's posteriors P (``posteriors``) computed with
    class means from the other folds; r[k, c] = mean over the examples of class c of max(P[k, c] - max_{c' != c}
    P[k, c'], 0) (CALM's "margin_clamped"); shrunk toward the mean reliability r_bar over these heads and classes,
    r_hat = r * n_c / (n_c + ``alpha``) + r_bar * alpha / (n_c + alpha), n_c the examples of class c; normalised per
    class, w[:, c] = r_hat[:, c] / sum_k r_hat[k, c] (uniform when that sum is 0). Each column sums to 1.
    """
    C, k = len(counts), len(flat)
    fold = folds(y_idx, C, n_folds)
    margin_sums = np.zeros((C, k))
    for f in range(n_folds):
        held = np.flatnonzero(fold == f)
        if not len(held):
            continue
        fold_means = _means_without(X, y_idx, sums[:, flat], counts, held, flat)  # (C, k, d)
        for r in row_slices(len(held), k * max(C, X.shape[2]) * 8):
            idx = held[r]
            P = posteriors(_block(X, idx, flat), fold_means, metric, temperature)  # (m, k, C)
            own = np.take_along_axis(P, y_idx[idx, None, None], axis=2)[:, :, 0]  # (m, k)
            np.put_along_axis(P, y_idx[idx, None, None], -np.inf, axis=2)
            margin = np.maximum(own - P.max(axis=2), 0.0)  # (m, k): "margin_clamped"
            onehot = (y_idx[idx] == np.arange(C)[:, None]).astype(np.float64)  # (C, m)
            margin_sums += onehot @ margin
    r = (margin_sums / counts[:, None]).T  # (k, C): mean clamped margin over each class's examples
    keep = counts / (counts + alpha)  # (C,)
    r_hat = r * keep + r.mean() * (1 - keep)
    totals = r_hat.sum(axis=0)  # (C,)
    return np.where(totals > 0, r_hat / np.where(totals > 0, totals, 1.0), 1 / k)
