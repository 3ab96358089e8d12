"""Generated text -> one label of the task: the rule every generation baseline is scored by."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Stripped from both ends of an answer before the exact comparison ("Yes." and '"cat"' are exact answers).
_EDGE = " \t\n.,;:!?\"'`*"


def match_answer(text: str, labels: Sequence[str]) -> str | None:
    """The label ``text`` answers, or None.

    1. Exact: the whole answer, trimmed of whitespace, quotes and end punctuation, equals a label
       (case-insensitive).
    2. Else the label found earliest in the text as a whole word (case-insensitive; "no" does not match
       "not", "cat" does not match "category"); a tie at the same position goes to the longer label
       ("ankle boot" over "ankle").
    """
    answer = text.strip(_EDGE).lower()
    for label in labels:
        if label.strip().lower() == answer:
            return label
    lowered = text.lower()
    best: tuple[int, int] | None = None
    found = None
    for label in labels:
        hit = re.search(rf"(?<!\w){re.escape(label.strip().lower())}(?!\w)", lowered)
        if hit and (best is None or (hit.start(), -len(label)) < best):
            best, found = (hit.start(), -len(label)), label
    return found
