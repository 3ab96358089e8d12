"""A task from a table: a CSV / TSV / JSONL / JSON file of image paths and labels (``from_table``), or a
``datasets`` ``Dataset`` / ``DatasetDict`` (``from_dataset``); both end in one shared builder, ``_rows_to_task``."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from savs.data.custom.common import (
    SPLIT_COLUMN,
    SPLITS,
    TABLE_SUFFIXES,
    TEST_FRACTION,
    check_image,
    label_text,
    question_text,
    render_prompt,
    resolve_labels,
    sizes_text,
    split_clause,
    stratified_split,
)
from savs.examples import Example, LazyImage, Task

if TYPE_CHECKING:
    import datasets


def _require_columns(have: Sequence[str], wanted: dict[str, str | None], where: str) -> None:
    """A ValueError naming a wanted column (``role -> name``) that ``have`` lacks, and the columns there are."""
    for role, col in wanted.items():
        if col is not None and col not in have:
            raise ValueError(f"{role} column {col!r} is not in {where}; its columns are {list(have)}")


def _rows_to_task(
    rows: list[dict[str, Any]],
    image_of: Callable[[int], LazyImage],
    *,
    label: str,
    text: str | None,
    split: str | None,
    prompt: str | None,
    labels: Sequence[str] | None,
    test_fraction: float,
    split_seed: int,
    name: str,
    where: str,
    uid_of: Callable[[int], str],
) -> Task:
    """The shared tail of the table builders: labels, split (given or seeded), prompts, Examples.

    ``rows`` hold each row's label (and question, split) already as plain values; ``image_of(i)`` makes row ``i``'s
    image; errors name the row as ``where`` row ``i + 1``. Labels (the rows' and ``labels``) lose surrounding spaces.
    """
    values = [label_text(row[label], f"{where} row {i + 1}") for i, row in enumerate(rows)]
    label_set = resolve_labels(values, None if labels is None else [lab.strip() for lab in labels], where)
    if split is not None:
        parts: dict[str, list[int]] = {s: [] for s in SPLITS}
        for i, row in enumerate(rows):
            value = str(row[split]).strip().lower()
            if value not in parts:
                raise ValueError(f"{where} row {i + 1}: {split} is {row[split]!r}, neither 'train' nor 'test'")
            parts[value].append(i)
        for s, idx in parts.items():
            if not idx:
                raise ValueError(f"{where} has a {split!r} column but no {s!r} rows")
        train_idx, test_idx = parts["train"], parts["test"]
    else:
        by_label: dict[str, list[int]] = {lab: [] for lab in label_set}
        for i, value in enumerate(values):
            by_label[value].append(i)
        by_label = {lab: idx for lab, idx in by_label.items() if idx}
        train_by, test_by = stratified_split(by_label, test_fraction, split_seed)
        train_idx = sorted(i for idx in train_by.values() for i in idx)
        test_idx = sorted(i for idx in test_by.values() for i in idx)

    def examples(indices: list[int]) -> list[Example]:
        out = []
        for i in indices:
            question = question_text(rows[i][text], text, f"{where} row {i + 1}") if text is not None else None
            out.append(
                Example(
                    text=render_prompt(label_set, prompt, None if question is None else str(question).strip()),
                    label=values[i],
                    images=(image_of(i),),
                    uid=uid_of(i),
                    meta={"row": i},
                )
            )
        return out

    train, test = examples(train_idx), examples(test_idx)
    how = split_clause(split is not None, f"its {split!r} column", test_fraction, split_seed)
    questions = f", per-row questions from {text!r}" if text is not None else ""
    return Task(
        name=name,
        labels=label_set,
        train=train,
        test=test,
        description=f"{where}: {sizes_text(train, test, label_set)}{questions}, {how}",
    )


def _path_image(path: Path, where: str, check: bool) -> LazyImage:
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image {path} does not exist")
    if check:
        check_image(path)
    return LazyImage(path)


def from_table(
    path: str | Path,
    prompt: str | None = None,
    *,
    image: str = "image",
    label: str = "label",
    text: str | None = None,
    split: str | None = SPLIT_COLUMN,
    labels: Sequence[str] | None = None,
    test_fraction: float = TEST_FRACTION,
    split_seed: int = 0,
    name: str | None = None,
    check_images: bool = True,
    progress: bool = False,
) -> Task:
    """A task from a CSV / TSV file (with a header row), a JSONL file or a JSON list of objects: one row per
    example, with an image path (relative to the file's folder, or absolute) and a label.

    ``text``: a column holding each row's question (VQA-style: the question, then the options, see the module
    docstring); by default the ``question`` column where there is one. ``split``: a column of ``train`` / ``test``
    values that fixes the split (the default ``split`` column is used where present; another name must be a column;
    None ignores it). Uids are ``<file name>:<row number>``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist")
    rows, columns = _read_rows(path)
    if not rows:
        raise ValueError(f"table {path} has no rows")
    if text is None and "question" in columns:
        text = "question"
    named_split = split if split != SPLIT_COLUMN else None  # a split column asked for by name must be there
    _require_columns(columns, {"image": image, "label": label, "text": text, "split": named_split}, str(path))
    split = split if split is not None and split in columns else None
    where, folder = str(path), path.parent
    images: list[LazyImage] = []
    for i, row in enumerate(tqdm(rows, desc="checking images", unit="img", disable=not progress or len(rows) < 500)):
        value = row[image]
        if value is None or not str(value).strip():
            raise ValueError(f"{where} row {i + 1} has no image path")
        file = Path(str(value).strip())
        images.append(_path_image(file if file.is_absolute() else folder / file, f"{where} row {i + 1}", check_images))
    return _rows_to_task(
        rows,
        images.__getitem__,
        label=label,
        text=text,
        split=split,
        prompt=prompt,
        labels=labels,
        test_fraction=test_fraction,
        split_seed=split_seed,
        name=name or path.stem,
        where=where,
        uid_of=lambda i: f"{path.name}:{i + 1}",
    )


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a CSV / TSV / JSONL / JSON table and its column names."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: a table must be one of {', '.join(TABLE_SUFFIXES)}; got {suffix or 'no suffix'}")
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            rows = list(reader)
            return rows, list(reader.fieldnames or [])
    try:
        if suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON{'L' if suffix != '.json' else ''}: {e}") from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected one JSON object per row")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [{c: r.get(c) for c in columns} for r in rows], columns


def from_dataset(
    ds: datasets.Dataset | datasets.DatasetDict,
    prompt: str | None = None,
    *,
    image: str = "image",
    label: str = "label",
    text: str | None = None,
    labels: Sequence[str] | None = None,
    train_split: str = "train",
    test_split: str = "test",
    image_root: str | Path | None = None,
    test_fraction: float = TEST_FRACTION,
    split_seed: int = 0,
    name: str = "dataset",
    check_images: bool = True,
    progress: bool = False,
) -> Task:
    """A task from a ``datasets.Dataset`` (split here, seeded) or ``DatasetDict`` (its ``train_split`` and
    ``test_split`` kept; one with a single split is split here), local or from the Hub.

    ``image``: a column of images (``datasets.Image``: read from the table row by row, never all decoded at once) or
    of image paths (relative to ``image_root``, default the working directory). ``label``: a ``ClassLabel`` column
    (its names, in its order) or any column of values (as strings, sorted). ``text``: a column of per-row questions.
    """
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if train_split in ds and test_split in ds:
            tables = [ds[train_split], ds[test_split]]
        elif len(ds) == 1:
            tables = [next(iter(ds.values()))]
        else:
            raise ValueError(
                f"the DatasetDict has splits {sorted(ds)}, not {train_split!r} and {test_split!r}: name the two to use "
                "(train_split=, test_split=; --train-split, --test-split on the command line)"
            )
    elif isinstance(ds, datasets.Dataset):
        tables = [ds]
    else:
        raise TypeError(f"from_dataset takes a datasets.Dataset or DatasetDict; got {type(ds).__name__}")
    root = Path(image_root) if image_root is not None else Path.cwd()
    rows: list[dict[str, Any]] = []
    sources: list[LazyImage] = []
    class_names: list[str] = []
    for s, table in enumerate(tables):
        where = f"{name} ({train_split if s == 0 else test_split} split)" if len(tables) == 2 else name
        _require_columns(table.column_names, {"image": image, "label": label, "text": text}, where)
        values = _label_values(table, label)
        questions = list(table[text]) if text is not None else [None] * len(values)
        for value, question in zip(values, questions, strict=True):
            row = {label: value, "split": SPLITS[s]}
            if text is not None:
                row[text] = question
            rows.append(row)
        sources.extend(_table_images(table, image, root, where, check_images, progress))
        feature = table.features[label]
        if labels is None and isinstance(feature, datasets.ClassLabel):
            class_names = [*class_names, *(n for n in feature.names if n not in class_names)]
    if labels is None and class_names:  # a ClassLabel's order, the classes present only
        present = {r[label] for r in rows}
        labels = [n for n in class_names if n in present]
    return _rows_to_task(
        rows,
        sources.__getitem__,
        label=label,
        text=text,
        split="split" if len(tables) == 2 else None,
        prompt=prompt,
        labels=labels,
        test_fraction=test_fraction,
        split_seed=split_seed,
        name=name,
        where=name,
        uid_of=lambda i: f"{name}/{rows[i]['split'] if len(tables) == 2 else 'row'}/{i}",
    )


def _label_values(table: datasets.Dataset, label: str) -> list[str | None]:
    """The label column: a ClassLabel's names (None for a missing one), anything else as stored."""
    import datasets

    feature = table.features[label]
    values = list(table[label])
    if isinstance(feature, datasets.ClassLabel):
        return [None if v is None or v < 0 else feature.names[v] for v in values]
    return values  # as stored: label_text refuses what is no class name (NaN, a boolean, ...)


def _table_images(
    table: datasets.Dataset, column: str, root: Path, where: str, check: bool, progress: bool
) -> list[LazyImage]:
    """One LazyImage per row: the row's encoded bytes read from the table on demand, or its image path."""
    import datasets

    feature = table.features[column]
    if isinstance(feature, datasets.Image):
        raw = table.select_columns([column]).cast_column(column, datasets.Image(decode=False))
        out = []
        for i in tqdm(range(len(raw)), desc="checking images", unit="img", disable=not progress or len(raw) < 500):
            out.append(LazyImage(_row_reader(raw, column, i, root)))
            if check:
                check_image(out[-1].read(), f"{where} row {i + 1}")
        return out
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        paths = [Path(p) if p is not None else None for p in table[column]]
        out = []
        for i, p in enumerate(paths):
            if p is None:
                raise ValueError(f"{where} row {i + 1} has no image")
            out.append(_path_image(p if p.is_absolute() else root / p, f"{where} row {i + 1}", check))
        return out
    raise ValueError(f"image column {column!r} of {where} holds {feature}, not images or image paths")


def _row_reader(raw: datasets.Dataset, column: str, i: int, root: Path) -> Callable[[], bytes | Path]:
    """Row ``i``'s encoded image (bytes, or its file where the table keeps only a path), read when called."""

    def read() -> bytes | Path:
        cell = raw[i][column]
        if cell is None:
            raise ValueError(f"row {i + 1} has no image")
        if cell.get("bytes"):
            return cell["bytes"]
        path = Path(cell["path"])
        return path if path.is_absolute() else root / path

    return read
