"""SAVClassifier: few-shot classification by a vote of sparse attention-head vectors, and the methods that followed.

Sparse Attention Vectors (SAVs; Mitra et al., arXiv 2412.00142) turn a generative multimodal model into a
few-shot classifier: take every attention head's output at the last prompt token, average it per class,
keep the heads whose nearest-class-mean rule classifies the few-shot set best, and let them vote.
This module holds the model-free estimator: it consumes per-head activations as a numpy array; the head rules it
calls (scoring, pursuit, reliability weights) are plain functions in ``savs.head_rules``.

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

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from savs.head_rules import class_similarities, folds, head_scores, posteriors, pursuit, reliability_weights, row_slices
from savs.readout import READOUTS, fit_readout

METRICS = ("cosine", "euclidean")
SCORINGS = ("in_sample", "leave_one_out", "cv", "fisher")
SELECTIONS = ("top_k", "pursuit")
VOTINGS = ("majority", "reliability")
CALIBRATIONS = (None, "temperature")
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


# float32 X is kept as is (head vectors at 7B scale are GBs); each block is converted to float64 for the maths.
FLOATS = [np.float64, np.float32]


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
        - "fisher" (after HEC, de Senneville et al., arXiv 2603.24181): per head, tr(Sigma^-1 S_B), the
          between-class scatter over the pooled within-class covariance shrunk by ``shrinkage`` (the shrunk
          multi-class Fisher criterion; details in ``savs.head_rules.head_scores``).
    selection : {"top_k", "pursuit"}, default="top_k"
        Which heads vote (``heads_``, in rank order).

        - "top_k" (SAVs): the ``n_heads`` best-scored heads; equal scores keep layer-major order.
        - "pursuit" (after Head Pursuit, Basile et al., arXiv 2510.21518; using it to pick voting heads is our
          adaptation): greedy simultaneous orthogonal matching pursuit over heads, explaining the class
          indicators, so a head that repeats what the chosen heads already explain is skipped; scores only order
          the candidates and break ties (``savs.head_rules.pursuit``).
        A scoring rule given here (as "leave_one_out" was before ``scoring`` existed) is an error that says to
        pass it as ``scoring``.
    voting : {"majority", "reliability"}, default="majority"
        How the selected heads vote.

        - "majority" (SAVs): each head votes for its nearest class mean; most votes wins, a tie goes to the tied
          class voted by the highest-ranked head.
        - "reliability" (CALM, Mehta et al., arXiv 2602.07077, weight scheme "margin_clamped"): head k gives
          posteriors P[k, c] = softmax_c(sim(x, m[k, c]) / ``temperature``); a query's score for class c is
          sum_k w[k, c] P[k, c] and the top score wins (ties: first class). The weights w are each head's
          out-of-fold reliability per class, shrunk by ``alpha`` (``savs.head_rules.reliability_weights``). CALM
          weighs all of a model's heads; here the ``n_heads`` selected ones (``n_heads="all"`` for CALM as released).
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
            ("selection", SELECTIONS),
            ("voting", VOTINGS),
            ("calibration", CALIBRATIONS),
            ("readout", READOUTS),
        ):
            if getattr(self, name) in allowed:
                continue
            if name == "selection" and self.selection in SCORINGS:  # ``selection`` named the scoring before issue #13
                raise ValueError(
                    f"selection must be one of {SELECTIONS}; got {self.selection!r}, which is a head-scoring rule: "
                    f"pass scoring={self.selection!r} (with selection 'top_k' or 'pursuit')."
                )
            raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}.")
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
        holding_out = [
            f"{name}={value!r}"
            for name, value, holds_out in (
                ("scoring", self.scoring, self.scoring in ("leave_one_out", "cv")),
                ("selection", self.selection, self.selection == "pursuit" and self.heads is None),
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

    def _check_counts(self, counts: np.ndarray) -> None:
        """Refuse classes too small for the rules that hold examples out (``examples_needed``)."""
        needs = self.examples_needed()
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
        self._check_counts(counts)
        onehot = (y_idx == np.arange(C)[:, None]).astype(np.float64)  # (C, n)
        blocks = row_slices(n, K * max(C, d) * 8)
        sums = sum(onehot[:, r] @ X[r].reshape(-1, K * d).astype(np.float64) for r in blocks)  # (C, K*d)
        sums = sums.reshape(C, K, d)
        means = sums / counts[:, None, None]  # (C, K, d)
        rule = {"metric": self.metric, "n_folds": self.n_folds}
        scores = head_scores(self.scoring, X, y_idx, means, sums, counts, **rule, shrinkage=self.shrinkage)  # (K,)

        self.head_grid_ = (L, H)
        self.class_means_ = means.reshape(C, L, H, d)
        self.head_scores_ = scores.reshape(L, H)
        if self.heads is not None:
            flat = np.ravel_multi_index(tuple(self._given_heads(L, H).T), (L, H))
        else:
            k = K if self.n_heads == "all" else min(int(self.n_heads), K)
            order = np.argsort(-scores, kind="stable")  # best first; equal scores keep layer-major order
            flat = order[:k] if self.selection == "top_k" else pursuit(X, y_idx, means, counts, order, k, self.metric)
        self.heads_ = np.stack(np.unravel_index(flat, (L, H)), axis=1).astype(np.int64)  # (k, 2)
        if self.voting == "reliability" and self.readout == "vote":
            calm = {"temperature": self.temperature, "alpha": self.alpha}
            self.head_weights_ = reliability_weights(X, y_idx, sums, counts, flat, **rule, **calm)
        else:
            self.head_weights_ = np.full((len(flat), C), 1 / len(flat))
        self.readout_ = None
        if self.readout != "vote":
            Z = X[:, flat].reshape(n, -1).astype(np.float64)  # (n, k*d): the selected heads, in rank order
            self.readout_ = fit_readout(self.readout, Z, y_idx, folds(y_idx, C, self.n_folds), self.shrinkage)
        self.calibration_scale_ = None
        if self.calibration == "temperature":
            self.calibration_scale_ = self._fit_calibration(X.reshape(n, L, H, d), y, y_idx)
        return self

    def _fit_calibration(self, X: np.ndarray, y: np.ndarray, y_idx: np.ndarray) -> float:
        """The scale s of softmax(s * votes) maximizing the likelihood of out-of-fold soft votes (fit per fold)."""
        C = len(self.classes_)
        inner = clone(self).set_params(calibration=None)
        fold = folds(y_idx, C, self.n_folds)
        votes = np.empty((len(y), C))
        for f in range(self.n_folds):
            held = fold == f
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
        rows = row_slices(len(X), len(layer) * len(means) * 8)
        votes = []
        for r in rows:
            sims = class_similarities(X[r, layer, head].astype(np.float64), means, self.metric)  # (m, k, C)
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
        rows = row_slices(len(X), len(layer) * max(len(means), means.shape[2]) * 8)
        P = (posteriors(X[r, layer, head].astype(np.float64), means, self.metric, self.temperature) for r in rows)
        scores = np.concatenate([np.einsum("mkc,kc->mc", p, self.head_weights_) for p in P])  # (n, C); p (m, k, C)
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
        out = clone(self).set_params(heads=[(i, 0) for i in range(k)], head_grid=None)
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
