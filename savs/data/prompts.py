"""Prompt builders in the paper's style, shared by every task loader so prompts stay uniform."""

from __future__ import annotations

from collections.abc import Sequence

YES_NO_LABELS: tuple[str, str] = ("Yes", "No")


def classification_prompt(question: str, labels: Sequence[str]) -> str:
    """Multiple-choice classification: the question, the options in label order, the answer format."""
    return f"{question} Options: {', '.join(labels)}. Answer with the class name."


def yes_no_prompt(question: str) -> str:
    """Binary question whose labels are ``YES_NO_LABELS``."""
    return f"{question} Answer with Yes or No."
