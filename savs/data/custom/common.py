"""What every builder of a user's task shares: the constants, the prompt, the image and shot checks, the seeded
stratified split, and reading a row's label and question (refusing what is no class name)."""

from __future__ import annotations

import io
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from savs.data.prompts import classification_prompt
from savs.examples import Example, ImageModeError, Task, mode_problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_QUESTION = "What is shown in this image?"
TEST_FRACTION = 0.2  # share of each class held out for test where the data bring no split of their own
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
SPLITS = ("train", "test")
SPLIT_COLUMN = "split"  # a table's split column by default: used where present


# --- prompts -------------------------------------------------------------------------------------------------------


def render_prompt(labels: Sequence[str], prompt: str | None = None, question: str | None = None) -> str:
    """An example's text (see the module docstring): our multiple-choice prompt, or ``prompt`` as question or
    template."""
    if prompt is not None and not prompt.strip():
        raise ValueError("the prompt is empty")
    if prompt is not None and question and "{question}" not in prompt:  # the row's question would be dropped
        raise ValueError(
            "a prompt and a per-row question were both given; to use both, put {question} (and {labels}) in the prompt"
        )
    if prompt is not None and ("{labels}" in prompt or "{question}" in prompt):
        if "{question}" in prompt and not question:
            raise ValueError(
                f"the prompt {prompt!r} has a {{question}} placeholder but there is no question to put there"
            )
        return prompt.replace("{labels}", ", ".join(labels)).replace("{question}", question or "")
    return classification_prompt(question or prompt or DEFAULT_QUESTION, labels)


# --- shared checks and the stratified split ------------------------------------------------------------------------


def check_image(source: str | Path | bytes, name: str | None = None) -> None:
    """Open and decode ``source`` (a file or encoded bytes); a ValueError naming it if that fails. Decoding is what
    finds a truncated or corrupt file (``verify`` reads no JPEG data); a JPEG is decoded at its smallest draft
    scale, which still reads all of its data but costs little."""
    name = name or str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im.draft(im.mode, (1, 1))  # JPEG only; other formats ignore it
            im.load()
            problem = mode_problem(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"image {name} does not exist") from None
    except Exception as e:  # PIL raises many kinds for a bad file: UnidentifiedImageError, OSError, SyntaxError...
        raise ValueError(f"cannot read image {name}: {type(e).__name__}: {e}") from e
    if problem:
        raise ImageModeError(f"cannot read image {name}: {problem}")


def check_shots(task: Task, k: int) -> None:
    """A clear error, naming every short class and its count, when the training part has fewer than ``k`` of one."""
    counts = Counter(e.label for e in task.train)
    short = {lab: counts.get(lab, 0) for lab in task.labels if counts.get(lab, 0) < k}
    if short:
        listed = ", ".join(f"{lab!r}: {n}" for lab, n in short.items())
        raise ValueError(
            f"{k} shots per class asked, but the training part of {task.name!r} has fewer images of "
            f"{len(short)} class(es) ({listed}); lower the shots or add images"
        )


def _check_fraction(test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive); got {test_fraction!r}")


def stratified_split(
    by_label: dict[str, list[Any]], test_fraction: float, seed: int
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Hold out ``round(test_fraction * n)`` items of every class (at least one, never all), drawn with ``seed``.

    Items keep their order within each part; the draw depends only on the seed and each class's items, so adding
    a class does not reshuffle the others.
    """
    _check_fraction(test_fraction)
    train, test = {}, {}
    for label, items in by_label.items():
        if len(items) < 2:
            raise ValueError(
                f"class {label!r} has {len(items)} image(s): a split needs at least 2 (one to train on, one to test)"
            )
        n_test = min(len(items) - 1, max(1, round(test_fraction * len(items))))
        held = set(random.Random(f"{seed}/{label}").sample(range(len(items)), n_test))
        train[label] = [x for i, x in enumerate(items) if i not in held]
        test[label] = [x for i, x in enumerate(items) if i in held]
    return train, test


MISSING_MARKERS = ("nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity", "none", "null", "<na>", "nat")


def label_text(value: Any, where: str) -> str:
    """A row's label as a class name: a string (surrounding spaces dropped: "cat, dog" in a CSV gives " dog") or an
    integer. Anything else is refused, naming the row: a missing one, a boolean, a float (NaN and inf are what
    pandas and numpy write for a missing value; 1.0 and 1 would be two classes), a list or an object, and the text
    of a missing value ("nan", "None", "null", ...) that ``str()`` of one leaves in a CSV."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where} has no label")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: label {value!r} is a {type(value).__name__}; labels are class names (strings) "
                         "or integers")  # fmt: skip
    if isinstance(value, float):
        what = "a missing value" if not math.isfinite(value) else "a float (1.0 and 1 would be two classes)"
        raise ValueError(f"{where}: label {value!r} is {what}; labels are class names (strings) or integers")
    text = str(value).strip()
    if text.lower() in MISSING_MARKERS:
        raise ValueError(f"{where}: label {text!r} is how a missing value is written, not a class name; fix the row "
                         "or drop it")  # fmt: skip
    return text


def question_text(value: Any, column: str, where: str) -> str:
    """A row's question: text, not empty, and not the text of a missing value (a NaN cell became "nan")."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or not str(value).strip():
        raise ValueError(f"{where} has an empty {column!r}")
    if not isinstance(value, str) or value.strip().lower() in MISSING_MARKERS:
        raise ValueError(f"{where}: {column} {value!r} is no question (a missing value?); questions are text")
    return value


def resolve_labels(found: Iterable[str], labels: Sequence[str] | None, where: str) -> tuple[str, ...]:
    """The task's labels: ``labels`` as given (every found label must be in it), else the found ones sorted."""
    found = set(found)
    if labels is None:
        out = tuple(sorted(found))
    else:
        out = tuple(labels)
        if twice := sorted({lab for lab in out if out.count(lab) > 1}):
            raise ValueError(f"the given label set {list(out)} names {twice} more than once")
        unknown = sorted(found - set(out))
        if unknown:
            raise ValueError(f"{where} has classes {unknown} outside the given label set {list(out)}")
    if len(out) < 2:
        found_text = ", ".join(map(repr, out))
        raise ValueError(f"{where} has {len(out)} class(es) ({found_text}); a classifier needs 2 or more")
    return out


def split_clause(kept: bool, how: str, test_fraction: float, split_seed: int) -> str:
    """How a task was split, for its description: kept as given (``how``), or the seeded stratified split here."""
    if kept:
        return f"split as given ({how})"
    return (
        f"a seeded stratified split (split seed {split_seed}): {test_fraction:.0%} of each class held out for test, "
        "at least one"
    )


def sizes_text(train: list[Example], test: list[Example], labels: Sequence[str]) -> str:
    """The task's size, for its description: classes and train / test examples."""
    return f"{len(labels)} classes, {len(train)} train / {len(test)} test examples"
