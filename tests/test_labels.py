"""Labels that are not class names are refused, naming the row, instead of becoming classes ('nan', 'True').

A JSONL ``NaN`` became a class named 'nan' while ``null`` was refused; a boolean became 'True'; 1.0 and 1 became
two classes. A label set naming a class twice drew the same examples twice for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from savs.data import from_dataset, from_table
from savs.examples import Example, Task


def _images(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        Image.fromarray(np.full((4, 4, 3), 20 * i, np.uint8)).save(root / f"{i}.png")
        names.append(f"{i}.png")
    return names


GOOD = ["a", "b", "a", "b", "a", "b"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("NaN", r"row 3: label nan is a missing value"),
        ("Infinity", r"row 3: label inf is a missing value"),
        ("-Infinity", r"row 3: label -inf is a missing value"),
        ("true", r"row 3: label True is a bool"),
        ("false", r"row 3: label False is a bool"),
        ("1.0", r"row 3: label 1.0 is a float \(1.0 and 1 would be two classes\)"),
        ("[1]", r"row 3: label \[1\] is a list"),
        ('{"x": 1}', r"row 3: label \{'x': 1\} is a dict"),
        ("null", r"row 3 has no label"),
        ('""', r"row 3 has no label"),
        ('"nan"', r"row 3: label 'nan' is how a missing value is written"),
        ('"None"', r"row 3: label 'None' is how a missing value is written"),
    ],
)
def test_jsonl_labels_that_are_no_class_names_are_refused(tmp_path, bad, message):
    images = _images(tmp_path, 6)
    lines = [json.dumps({"image": im, "label": lab}) for im, lab in zip(images, GOOD, strict=True)]
    lines[2] = f'{{"image": "{images[2]}", "label": {bad}}}'
    (tmp_path / "t.jsonl").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=message):
        from_table(tmp_path / "t.jsonl")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "None", "null", "  "])
def test_csv_labels_that_are_missing_values_are_refused(tmp_path, bad):
    images = _images(tmp_path, 6)
    rows = ["image,label", *(f"{im},{lab}" for im, lab in zip(images, GOOD, strict=True))]
    rows[3] = f"{images[2]},{bad}"
    (tmp_path / "t.csv").write_text("\n".join(rows))
    with pytest.raises(ValueError, match=r"t\.csv row 3(: label| has no label)"):
        from_table(tmp_path / "t.csv")


def test_integer_labels_are_class_names(tmp_path):
    images = _images(tmp_path, 6)
    lines = [json.dumps({"image": im, "label": i % 2}) for i, im in enumerate(images)]
    (tmp_path / "t.jsonl").write_text("\n".join(lines))
    assert from_table(tmp_path / "t.jsonl").labels == ("0", "1")


def test_dataset_float_labels_with_nan_are_refused():
    pixels = [Image.fromarray(np.full((4, 4, 3), 20 * i, np.uint8)) for i in range(6)]
    table = datasets.Dataset.from_dict({"image": pixels, "label": [0.0, 1.0, float("nan"), 1.0, 0.0, 1.0]})
    with pytest.raises(ValueError, match="row 1: label 0.0 is a float"):
        from_dataset(table)


def test_a_label_set_naming_a_class_twice_is_refused(tmp_path):
    images = _images(tmp_path, 6)
    lines = [json.dumps({"image": im, "label": lab}) for im, lab in zip(images, GOOD, strict=True)]
    (tmp_path / "t.jsonl").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"names \['a'\] more than once"):
        from_table(tmp_path / "t.jsonl", labels=["a", "a", "b"])
    train = [Example("q", lab, uid=str(i)) for i, lab in enumerate("aabb")]
    with pytest.raises(ValueError, match=r"task 't': labels \['a'\] appear more than once"):
        Task("t", ("a", "a", "b"), train, train)


@pytest.mark.parametrize(
    ("bad", "message"),
    [("NaN", "row 3 has an empty 'question'"), ('"nan"', r"row 3: question 'nan' is no question"),
     ("5", "row 3: question 5 is no question"), ('"  "', "row 3 has an empty 'question'")],
)  # fmt: skip
def test_per_row_questions_that_are_missing_values_are_refused(tmp_path, bad, message):
    """A NaN question cell was asked as the question "nan"."""
    images = _images(tmp_path, 6)
    lines = [json.dumps({"image": im, "label": lab, "question": "What is it?"})
             for im, lab in zip(images, GOOD, strict=True)]  # fmt: skip
    lines[2] = f'{{"image": "{images[2]}", "label": "a", "question": {bad}}}'
    (tmp_path / "t.jsonl").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=message):
        from_table(tmp_path / "t.jsonl", split=None)
