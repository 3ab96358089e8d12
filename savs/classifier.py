"""SAVClassifier: few-shot classification by a majority vote of sparse attention-head vectors.

Sparse Attention Vectors (SAVs; Mitra et al., arXiv 2412.00142) turn a generative multimodal model into a
few-shot classifier: take every attention head's output at the last prompt token, average it per class,
keep the heads whose nearest-class-mean rule classifies the few-shot set best, and let them vote.
This module holds the model-free part: it consumes per-head activations as a numpy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

METRICS = ("cosine", "euclidean")
SELECTIONS = ("in_sample", "leave_one_out")


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


def _row_slices(n: int, row_bytes: int) -> list[slice]:
    """Slices of ``range(n)`` whose rows take at most ``BLOCK_BYTES`` together (at least one row each)."""
    step = max(1, BLOCK_BYTES // max(1, row_bytes))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _class_similarities(X: np.ndarray, means: np.ndarray, metric: str) -> np.ndarray:
    """Per-head similarity of every example to every class mean: X (n, K, d), means (C, K, d) -> (n, K, C)."""
    W, b = _nearest_mean_terms(means, metric)  # (C, K, d), (C, K)
    dots = np.matmul(X.transpose(1, 0, 2), W.transpose(1, 2, 0))  # (K, n, C)
    return dots.transpose(1, 0, 2) + b.T  # (n, K, C)


class SAVClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot classifier voting with the attention heads whose class means classify best (SAVs).

    Every head's vector is averaged per class; each head is scored by the training accuracy of its
    nearest-class-mean rule; the ``n_heads`` best heads are kept, and a query takes the majority vote of
    their nearest class means. The defaults (cosine, in-sample scoring, 20 heads) are the authors'
    released method. The method is deterministic, so there is no ``random_state``.

    Parameters
    ----------
    n_heads : int or "all", default=20
        How many top-scoring heads vote (clipped to the number of heads); "all" keeps every head.
    metric : {"cosine", "euclidean"}, default="cosine"
        Nearest class mean by cosine similarity (the paper) or by L2 distance.
    selection : {"in_sample", "leave_one_out"}, default="in_sample"
        How heads are scored. "in_sample" (released method) compares each training example with class
        means that include it. "leave_one_out" compares it with its own class mean computed without it
        (other means unchanged), which stops noise heads from scoring by memorizing; it needs at least
        two examples per class.
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
        Training accuracy of each head's nearest-class-mean rule (a count divided by n_examples).
    heads_ : ndarray of shape (k, 2)
        Voting (layer, head) pairs, best first. Heads with equal scores keep layer-major order.
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
    similarities are computed in float64, a block of examples at a time.
    Ties are deterministic: a nearest-mean tie goes to the class first in ``classes_``; a vote tie goes to
    the tied class voted by the highest-ranked head. ``predict_proba`` returns vote shares, so its argmax
    can differ from ``predict`` on vote ties.

    References
    ----------
    Mitra et al., "Sparse Attention Vectors: Generative Multimodal Model Features Are Discriminative
    Vision-Language Classifiers", arXiv:2412.00142.

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
    """

    def __init__(
        self,
        n_heads: int | str = 20,
        metric: str = "cosine",
        selection: str = "in_sample",
        head_grid: tuple[int, int] | None = None,
        heads: ArrayLike | None = None,
    ) -> None:
        self.n_heads = n_heads
        self.metric = metric
        self.selection = selection
        self.head_grid = head_grid
        self.heads = heads

    def _check_params(self) -> None:
        """Reject bad constructor arguments with a message naming the argument and what is allowed."""
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {self.metric!r}.")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}; got {self.selection!r}.")
        is_int = isinstance(self.n_heads, int | np.integer) and not isinstance(self.n_heads, bool)
        if not (self.n_heads == "all" if isinstance(self.n_heads, str) else is_int and self.n_heads >= 1):
            raise ValueError(f"n_heads must be an int >= 1 or 'all'; got {self.n_heads!r}.")
        grid = self.head_grid
        if grid is not None and not (
            isinstance(grid, tuple | list)
            and len(grid) == 2
            and all(isinstance(g, int | np.integer) and g >= 1 for g in grid)
        ):
            raise ValueError(f"head_grid must be (n_layers, n_heads) with positive ints; got {grid!r}.")

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

    def fit(self, X: ArrayLike, y: ArrayLike) -> SAVClassifier:
        """Compute every head's class means, score each head on the training set, and select the voters."""
        self._check_params()
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
        if self.selection == "leave_one_out" and counts.min() < 2:
            raise ValueError(
                f"selection='leave_one_out' needs at least 2 examples per class; "
                f"classes {self.classes_[counts < 2].tolist()} have only one."
            )
        onehot = (y_idx == np.arange(C)[:, None]).astype(np.float64)  # (C, n)
        blocks = _row_slices(n, K * max(C, d) * 8)
        sums = sum(onehot[:, r] @ X[r].reshape(-1, K * d).astype(np.float64) for r in blocks)  # (C, K*d)
        means = (sums / counts[:, None]).reshape(C, K, d)  # (C, K, d)
        correct = np.empty((n, K), dtype=bool)
        for r in blocks:
            correct[r] = self._classified(X[r].astype(np.float64), y_idx[r], means, counts)
        scores = correct.sum(axis=0) / n  # (K,)

        self.head_grid_ = (L, H)
        self.class_means_ = means.reshape(C, L, H, d)
        self.head_scores_ = scores.reshape(L, H)
        if self.heads is not None:
            self.heads_ = self._given_heads(L, H)
        else:
            k = K if self.n_heads == "all" else min(int(self.n_heads), K)
            order = np.argsort(-scores, kind="stable")[:k]  # best first; equal scores keep layer-major order
            self.heads_ = np.stack(np.unravel_index(order, (L, H)), axis=1).astype(np.int64)  # (k, 2)
        return self

    def _classified(self, X: np.ndarray, y_idx: np.ndarray, means: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Whether each head's nearest class mean is each example's own class: X (m, K, d) -> (m, K) bool."""
        sims = _class_similarities(X, means, self.metric)  # (m, K, C)
        if self.selection == "leave_one_out":
            n_own = counts[y_idx][:, None, None]  # (m, 1, 1)
            own_loo = (n_own * means[y_idx] - X) / (n_own - 1)  # (m, K, d): own class mean without x_i
            W, b = _nearest_mean_terms(own_loo, self.metric)  # (m, K, d), (m, K)
            own_sims = np.einsum("nkd,nkd->nk", X, W) + b  # (m, K)
            np.put_along_axis(sims, y_idx[:, None, None], own_sims[:, :, None], axis=2)
        return sims.argmax(axis=2) == y_idx[:, None]  # argmax: ties go to the first class

    def head_votes(self, X: ArrayLike) -> np.ndarray:
        """Class index (into ``classes_``) that each selected head votes for: (n, k), heads in rank order."""
        check_is_fitted(self)
        L, H = self.head_grid_
        d = self.class_means_.shape[3]
        X, shape4 = _flatten_4d(X)
        if shape4 is not None and shape4 != (L, H, d):
            raise ValueError(f"X has per-example shape {shape4}, but the classifier was fit on {(L, H, d)}")
        X = validate_data(self, X, reset=False, dtype=FLOATS).reshape(-1, L, H, d)  # (n, L, H, d)
        layer, head = self.heads_.T
        means = self.class_means_[:, layer, head]  # (C, k, d)
        rows = _row_slices(len(X), len(layer) * len(means) * 8)
        return np.concatenate(
            [_class_similarities(X[r, layer, head].astype(np.float64), means, self.metric).argmax(axis=2) for r in rows]
        )

    def _vote_counts(self, votes: np.ndarray) -> np.ndarray:
        """Count votes per class: (n, k) class indices -> (n, C) counts in ``classes_`` order."""
        return (votes[:, :, None] == np.arange(len(self.classes_))).sum(axis=1)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Majority vote of the selected heads; a tie goes to the tied class the highest-ranked head voted."""
        check_is_fitted(self)
        votes = self.head_votes(X)  # (n, k)
        counts = self._vote_counts(votes)  # (n, C)
        tied = counts == counts.max(axis=1, keepdims=True)  # (n, C): classes sharing the top count
        first = np.take_along_axis(tied, votes, axis=1).argmax(axis=1)  # (n,): first head voting a tied class
        return self.classes_[votes[np.arange(len(votes)), first]]

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Vote shares per class, shape (n, C) in ``classes_`` order; rows sum to 1."""
        check_is_fitted(self)
        votes = self.head_votes(X)  # (n, k)
        return self._vote_counts(votes) / votes.shape[1]

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
