"""Generated text -> one label of the task: the rule every generation baseline is scored by."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Stripped from both ends of an answer before the exact comparison ("Yes." and '"cat"' are exact answers).
_EDGE = " \t\n.,;:!?\"'`*"


def _names(label: str) -> list[str]:
    """How an answer may name ``label``: the label itself, or one part of an "A/B" label ("T-shirt/top")."""
    whole = label.strip().lower()
    parts = [p.strip() for p in whole.split("/")] if "/" in whole else []
    return [whole, *(p for p in parts if p)]


def match_answer(text: str, labels: Sequence[str]) -> str | None:
    """The label ``text`` answers, or None.

    1. Exact: the whole answer, trimmed of whitespace, quotes and end punctuation, equals a label or one
       part of an "A/B" label (case-insensitive).
    2. Else the label named earliest in the text as a whole word (case-insensitive; "no" does not match
       "not", "cat" does not match "category"); a tie at the same position goes to the longer name
       ("ankle boot" over "ankle").
    """
    answer = text.strip(_EDGE).lower()
    for label in labels:
        if answer in _names(label):
            return label
    lowered = text.lower()
    hits = [
        (hit.start(), -len(name), i)
        for i, label in enumerate(labels)
        for name in _names(label)
        if (hit := re.search(rf"(?<!\w){re.escape(name)}(?!\w)", lowered))
    ]
    return labels[min(hits)[2]] if hits else None
