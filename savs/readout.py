"""Linear read-outs of the selected heads: what ``SAVClassifier(readout="logistic" | "lda")`` fits instead of a vote.

SAVs classify by a majority vote of the selected heads, each voting for its nearest class mean. The paper's summary
calls SAVs sparse head features "followed by few-shot linear classification"; this module is that linear
classification, on the same heads: their vectors concatenated in rank order, (n, k * d), standardised with the
few-shot set's mean and standard deviation, then

* ``"logistic"``: multinomial logistic regression (L2), its strength C chosen from ``C_GRID`` by stratified
  cross-validated log loss on the few-shot set (``LogisticRegressionCV``; folds as ``SAVClassifier``'s, fixed);
* ``"lda"``: linear discriminant analysis with the pooled within-class covariance shrunk toward a scaled identity,
  ``shrinkage="auto"`` being the Ledoit-Wolf estimate (no cross-validation needed) or a given float, solved in the
  span of the few-shot examples (an n x n solve, not F x F: 40 heads of 64 are 2560 features).

Both reduce to one affine map, logits = ((x - mean) / scale) @ coef.T + intercept, kept as four arrays
(``LinearReadout``): that is all prediction and a saved pipeline need (safetensors, no pickle). Probabilities
follow scikit-learn: softmax of the logits, or for two classes (one logit row) the logistic sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit, log_softmax
from sklearn.linear_model import LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

READOUTS = ("vote", "logistic", "lda")
LINEAR_READOUTS = READOUTS[1:]
# Logistic regression's inverse L2 strengths tried by the inner cross-validation (standardised features).
C_GRID = np.logspace(-4, 2, 7)
MAX_ITER = 2000
ARRAY_NAMES = ("readout_mean", "readout_scale", "readout_coef", "readout_intercept")


@dataclass(frozen=True)
class LinearReadout:
    """A fitted linear read-out over F = k * d concatenated head features: logits = ((x - mean) / scale) @ coef.T
    + intercept. ``coef`` is (C, F), or (1, F) for two classes (the logit of the second class)."""

    kind: str
    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,): > 0
    coef: np.ndarray  # (C or 1, F)
    intercept: np.ndarray  # (C or 1,)
    regularization: float  # logistic: the chosen C; lda: the shrinkage used

    def logits(self, Z: np.ndarray) -> np.ndarray:
        """Decision values of Z (n, F): (n, C), or (n,) for two classes."""
        out = ((Z - self.mean) / self.scale) @ self.coef.T + self.intercept  # (n, C or 1)
        return out[:, 0] if len(self.coef) == 1 else out

    def log_proba(self, Z: np.ndarray) -> np.ndarray:
        """Log class probabilities (n, C), as scikit-learn's ``predict_proba`` of the same model, in log space."""
        logits = self.logits(Z)
        if logits.ndim == 1:  # two classes: sigmoid of the second class's logit
            return np.stack([log_expit(-logits), log_expit(logits)], axis=1)
        return log_softmax(logits, axis=1)

    def proba(self, Z: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C); rows sum to 1."""
        logits = self.logits(Z)
        if logits.ndim == 1:
            p = expit(logits)
            return np.stack([1 - p, p], axis=1)
        return np.exp(log_softmax(logits, axis=1))

    def arrays(self) -> dict[str, np.ndarray]:
        """The four arrays, named as a saved pipeline stores them: C-contiguous float64 (safetensors writes memory as
        it lies, and a fitted ``coef_`` can be Fortran-ordered)."""
        arrays = (self.mean, self.scale, self.coef, self.intercept)
        return {name: np.ascontiguousarray(a, dtype=np.float64) for name, a in zip(ARRAY_NAMES, arrays, strict=True)}


def check_readout_arrays(kind: str, arrays: dict[str, np.ndarray], n_features: int, n_classes: int) -> str | None:
    """Why ``arrays`` cannot be a ``kind`` read-out over ``n_features`` features and ``n_classes`` classes (None: they
    can): names, shapes, finiteness, positive scales."""
    if kind not in LINEAR_READOUTS:
        return f"readout {kind!r} is not one of {LINEAR_READOUTS}"
    rows = 1 if n_classes == 2 else n_classes
    want = {"readout_mean": (n_features,), "readout_scale": (n_features,), "readout_coef": (rows, n_features),
            "readout_intercept": (rows,)}  # fmt: skip
    for name, shape in want.items():
        if name not in arrays:
            return f"{name}: missing"
        a = arrays[name]
        if a.shape != shape or a.dtype.kind != "f":
            return f"{name}: expected a float array of shape {shape}, got shape {a.shape} of {a.dtype}"
        if not np.isfinite(a).all():
            return f"{name}: {int((~np.isfinite(a)).sum())} values are NaN or infinite"
    if not (arrays["readout_scale"] > 0).all():
        return "readout_scale: expected positive scales"
    return None


def readout_from_arrays(kind: str, arrays: dict[str, np.ndarray], regularization: float = np.nan) -> LinearReadout:
    """A ``LinearReadout`` from its saved arrays (checked by ``check_readout_arrays`` first), in float64."""
    a = {name: np.asarray(arrays[name], dtype=np.float64) for name in ARRAY_NAMES}
    return LinearReadout(kind, a["readout_mean"], a["readout_scale"], a["readout_coef"], a["readout_intercept"],
                         float(regularization))  # fmt: skip


def fit_readout(
    kind: str, Z: np.ndarray, y_idx: np.ndarray, folds: np.ndarray, shrinkage: float | str = "auto"
) -> LinearReadout:
    """Fit a ``kind`` read-out on the few-shot features Z (n, F), classes y_idx (n,) in 0..C-1.

    ``folds`` (n,): each example's inner cross-validation fold (logistic's choice of C; stratified, fixed by the
    caller). ``shrinkage``: LDA's, "auto" (Ledoit-Wolf) or a float in [0, 1]. Nothing outside Z is looked at.
    """
    scaler = StandardScaler().fit(Z)
    S = scaler.transform(Z)  # (n, F): standardised on the few-shot set only
    if kind == "logistic":
        # An L2-penalised solution lies in the span of the rows it is fitted on (every fold's rows are some of S's),
        # so with more features than shots the same fits run on S's coordinates in its row basis, (n, n): the
        # penalty and every logit are unchanged, each step costs n instead of F per row.
        basis = np.linalg.svd(S, full_matrices=False)[2] if S.shape[1] > len(S) else np.eye(S.shape[1])  # (r, F)
        splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in np.unique(folds)]
        model = LogisticRegressionCV(Cs=C_GRID, l1_ratios=(0.0,), cv=splits, scoring="neg_log_loss",
                                     max_iter=MAX_ITER, use_legacy_attributes=False)  # fmt: skip
        model.fit(S @ basis.T, y_idx)  # (n, r): S in its row basis
        regularization = float(model.C_)
        coef, intercept = model.coef_ @ basis, model.intercept_  # (C or 1, F)
    elif kind == "lda":
        coef, intercept, regularization = _shrunk_lda(S, y_idx, shrinkage)
    else:
        raise ValueError(f"readout must be one of {LINEAR_READOUTS} here; got {kind!r}")
    return LinearReadout(kind, scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64),
                         np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64),
                         regularization)  # fmt: skip


def _ledoit_wolf(Y: np.ndarray) -> tuple[float, float]:
    """(shrinkage, mu) of ``sklearn.covariance.ledoit_wolf(Y, assume_centered=True)`` on Y (m, F), from its m x m
    Gram matrix alone: ||Y^T Y||_F^2 = ||Y Y^T||_F^2 and sum_ij ((Y^2)^T Y^2)_ij = sum_k |y_k|^4, so no F x F
    matrix is formed."""
    m, F = Y.shape
    norms2 = np.einsum("kf,kf->k", Y, Y)  # (m,)
    mu = norms2.sum() / (m * F)
    if F == 1:
        return 0.0, mu
    delta_ = ((Y @ Y.T) ** 2).sum() / m**2
    beta = (np.sum(norms2**2) / m - delta_) / (F * m)
    delta = (delta_ - 2.0 * mu * norms2.sum() / m + F * mu**2) / F
    beta = min(beta, delta)
    return (0.0 if beta == 0 else beta / delta), mu


def _shrunk_lda(S: np.ndarray, y_idx: np.ndarray, shrinkage: float | str) -> tuple[np.ndarray, np.ndarray, float]:
    """Shrinkage LDA on S (n, F): coef (C, F) and intercept (C,) (one row, class 1 against 0, for two classes, as
    scikit-learn), and the shrinkage used.

    Sigma = (1 - lam) S_W + lam mu I, S_W the pooled within-class covariance (class-centred vectors, divided by n),
    mu = tr(S_W) / F, lam the Ledoit-Wolf estimate on the class-centred vectors ("auto") or the given float: the
    covariance of ``_fisher_scores``. (scikit-learn's LDA shrinks each class's covariance on its own, which at two
    shots per class leaves it singular up to rounding.) coef = means Sigma^-1, intercept = -means Sigma^-1 means / 2
    + log(priors). Sigma is a scaled identity plus a rank-n term, so Woodbury's identity solves it with an n x n
    system instead of an F x F one (F = k heads x head size is far larger than n at a few shots).
    """
    n, F = S.shape
    C = int(y_idx.max()) + 1
    priors = np.bincount(y_idx, minlength=C) / n  # (C,)
    onehot = (y_idx == np.arange(C)[:, None]).astype(np.float64)  # (C, n)
    means = (onehot @ S) / onehot.sum(axis=1, keepdims=True)  # (C, F)
    Xc = S - means[y_idx]  # (n, F): class-centred
    lam, mu = _ledoit_wolf(Xc) if shrinkage == "auto" else (float(shrinkage), np.einsum("kf,kf->", Xc, Xc) / (n * F))
    lam = min(max(lam, 0.0), 1.0)
    a, U = lam * mu, np.sqrt((1 - lam) / n) * Xc  # Sigma = a I + U^T U
    if a > 0 and F > n:
        inner = a * np.eye(n) + U @ U.T  # (n, n)
        coef = (means - (means @ U.T) @ np.linalg.solve(inner, U)) / a  # (C, F): Woodbury, means Sigma^-1
    else:  # few features, or no shrinkage (or no spread): least squares on Sigma itself
        coef = np.linalg.lstsq(a * np.eye(F) + U.T @ U, means.T, rcond=None)[0].T  # (C, F)
    intercept = -0.5 * np.einsum("cf,cf->c", means, coef) + np.log(priors)  # (C,)
    if C == 2:
        coef, intercept = (coef[1] - coef[0])[None], intercept[1:] - intercept[:1]
    return coef, intercept, lam
