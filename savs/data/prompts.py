"""Prompt pieces shared by every task loader, so prompts stay uniform.

``classification_prompt`` and ``yes_no_prompt`` are our own ("savs" protocol). The paper's authors began every
prompt with one ``<image>\n`` per image (``image_markers``); adapters place the images where the markers stand
and strip them (``strip_image_markers``), except Qwen2-VL, which the authors ran with the markers left in the text.
"""

from __future__ import annotations

from collections.abc import Sequence

YES_NO_LABELS: tuple[str, str] = ("Yes", "No")
IMAGE_MARKER = "<image>\n"


def classification_prompt(question: str, labels: Sequence[str]) -> str:
    """Multiple-choice classification: the question, the options in label order, the answer format."""
    return f"{question} Options: {', '.join(labels)}. Answer with the class name."


def yes_no_prompt(question: str) -> str:
    """Binary question whose labels are ``YES_NO_LABELS``."""
    return f"{question} Answer with Yes or No."


def image_markers(n: int) -> str:
    """The authors' way of placing ``n`` images before a prompt: one ``<image>\n`` each."""
    return IMAGE_MARKER * n


def strip_image_markers(text: str, n: int) -> str:
    """``text`` without its ``n`` leading image markers (unchanged when it does not start with them)."""
    markers = image_markers(n)
    return text[len(markers) :] if n and text.startswith(markers) else text
