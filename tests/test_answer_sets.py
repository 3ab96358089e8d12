"""A query answered from its own answer set: NaturalBench VQA's yes/no and A/B questions share one SAV.

The masked vote is checked against a direct computation: each head's cosine to each allowed class mean, its argmax,
the majority of the heads.
"""

from __future__ import annotations

import numpy as np
import pytest
from stand_ins import load

from savs.baselines.features import probe_predict
from savs.classifier import SAVClassifier, answer_set_mask
from savs.methods import allowed

CLASSES = ["A", "B", "No", "Yes"]  # sorted, as classes_


def fitted(voting: str = "majority", seed: int = 0) -> tuple[SAVClassifier, np.ndarray, np.ndarray]:
    """A SAV on random 4-class head vectors (3 x 4 heads x 8 dims), with queries near class A's mean."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 3, 4, 8))  # (C, L, H, d)
    y = np.repeat(CLASSES, 6)
    X = centres[np.repeat(np.arange(4), 6)] + 0.8 * rng.normal(size=(24, 3, 4, 8))  # (24, L, H, d)
    clf = SAVClassifier(n_heads=5, voting=voting).fit(X, y)
    queries = centres[0] + 0.3 * rng.normal(size=(10, 3, 4, 8))  # (10, L, H, d): all look like "A"
    return clf, queries, centres


def test_masked_majority_vote_equals_a_direct_computation() -> None:
    clf, Q, _ = fitted()
    assert set(clf.predict(Q)) == {"A"}  # unrestricted, a yes/no question would be answered with a letter
    mask = answer_set_mask(clf.classes_, [("Yes", "No")] * len(Q))
    got = clf.predict(Q, mask)
    yes_no = [CLASSES.index("No"), CLASSES.index("Yes")]
    for q, prediction in zip(Q, got, strict=True):
        votes = []
        for layer, head in clf.heads_:
            x = q[layer, head]
            means = clf.class_means_[yes_no, layer, head]  # (2, d)
            cos = means @ x / (np.linalg.norm(means, axis=1) * np.linalg.norm(x))
            votes.append(CLASSES[yes_no[int(cos.argmax())]])
        counts = {c: votes.count(c) for c in set(votes)}
        top = max(counts.values())
        assert prediction == next(v for v in votes if counts[v] == top)  # ties: the first-ranked head's class
    assert set(got) <= {"Yes", "No"}


@pytest.mark.parametrize("voting", ["majority", "reliability"])
def test_masked_probabilities_keep_to_the_answer_set(voting: str) -> None:
    clf, Q, _ = fitted(voting)
    sets = [("Yes", "No") if k % 2 else None for k in range(len(Q))]  # None: any class
    mask = answer_set_mask(clf.classes_, sets)
    proba = clf.predict_proba(Q, mask)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba[~mask] == 0).all()
    predicted = clf.predict(Q, mask)
    assert all(p in ("Yes", "No") for p in predicted[1::2]) and list(predicted[::2]) == list(clf.predict(Q[::2]))


def test_answer_set_mask_refuses_what_it_cannot_apply() -> None:
    assert answer_set_mask(CLASSES, [None, None]) is None
    with pytest.raises(ValueError, match="shares no class"):
        answer_set_mask(CLASSES, [("maybe",)])
    clf, Q, _ = fitted()
    with pytest.raises(ValueError, match="expected \\(n_queries, n_classes\\)"):
        clf.predict(Q, np.ones((len(Q), 3), dtype=bool))


def test_probes_keep_to_the_answer_set() -> None:
    rng = np.random.default_rng(1)
    centres = 3 * np.eye(5)[:4]  # (4, 5): one direction per class
    X = np.repeat(centres, 6, axis=0) + 0.3 * rng.normal(size=(24, 5))
    y = np.repeat(CLASSES, 6)
    Q = centres[0] + 0.3 * rng.normal(size=(4, 5))  # near "A"
    for kind in ("linear", "knn"):
        assert set(probe_predict(X, y, Q, kind)) == {"A"}
        assert set(probe_predict(X, y, Q, kind, answer_sets=[("Yes", "No")] * 4)) <= {"Yes", "No"}


def test_naturalbench_examples_carry_their_question_types_answer_set(copies) -> None:
    task = load("naturalbench", copies)
    for e in [*task.train, *task.test]:
        expected = ("Yes", "No") if e.meta["question_type"] == "yes_no" else ("A", "B")
        assert e.meta["answer_set"] == expected and e.label in expected
    mask = allowed(np.array(sorted(task.labels)), task.test)
    assert mask is not None and mask.sum(axis=1).tolist() == [2] * len(task.test)
    assert allowed(np.array(["cat", "dog"]), load("eurosat", copies).test) is None  # no answer sets: no mask
