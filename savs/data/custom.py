"""Your own data as a ``Task``: a folder of class folders, a ``datasets`` table, or a CSV / JSONL file.

``from_folder(root)``, ``from_dataset(ds)`` and ``from_table(path)`` return a ``Task`` whose examples hold their
images as file paths or table rows, read and decoded only when a model needs the pixels (``LazyImage``), so a
folder of 100,000 photos costs no memory up front. Every image is decoded once while the task is built
(``check_images``), so an unreadable or truncated file is named now, not an hour into extraction.
``from_path(source)`` picks the builder from what ``source`` is (the ``savs`` command's DATA argument).

Prompts. Every example's text is the project's own ("savs") multiple-choice prompt
(``savs.data.prompts.classification_prompt``),
``"<question> Options: <class 1>, <class 2>, .... Answer with the class name."``, classes in label order, with the
question ``DEFAULT_QUESTION`` ("What is shown in this image?") unless a table row has its own (VQA-style).
``prompt=`` changes it: a plain sentence replaces the question (options and answer format are still appended);
a text holding ``{labels}`` and/or ``{question}`` is the whole prompt, with the comma-separated classes and the
row's own question filled in. Rows with their own questions need ``{question}`` in a ``prompt=``, which would
otherwise drop them.

Splits. A folder with ``train/`` and ``test/`` subfolders, a ``DatasetDict`` with train and test splits, or a
table with a ``split`` column (``train`` / ``test``) keeps its split. Anything else is split here: a seeded
stratified split that holds out ``test_fraction`` of every class for test (at least one image, and at least one
left to train on). ``split_seed`` fixes it, so the few-shot draw (``Task.few_shot(k, seed)``) can change while the
test part stays put. The task's description says which happened.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from tqdm.auto import tqdm

from savs.data.prompts import classification_prompt
from savs.examples import Example, ImageModeError, LazyImage, Task, mode_problem

if TYPE_CHECKING:
    import datasets

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


def _label_text(value: Any, where: str) -> str:
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


def _question_text(value: Any, column: str, where: str) -> str:
    """A row's question: text, not empty, and not the text of a missing value (a NaN cell became "nan")."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or not str(value).strip():
        raise ValueError(f"{where} has an empty {column!r}")
    if not isinstance(value, str) or value.strip().lower() in MISSING_MARKERS:
        raise ValueError(f"{where}: {column} {value!r} is no question (a missing value?); questions are text")
    return value


def _label_set(found: Iterable[str], labels: Sequence[str] | None, where: str) -> tuple[str, ...]:
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


def _split_clause(kept: bool, how: str, test_fraction: float, split_seed: int) -> str:
    if kept:
        return f"split as given ({how})"
    return (
        f"a seeded stratified split (split seed {split_seed}): {test_fraction:.0%} of each class held out for test, "
        "at least one"
    )


def _sizes(train: list[Example], test: list[Example], labels: Sequence[str]) -> str:
    return f"{len(labels)} classes, {len(train)} train / {len(test)} test examples"


# --- folders ---------------------------------------------------------------------------------------------------------


def _visible(path: Path, root: Path) -> bool:
    """Not hidden (no part of the path below ``root`` starts with a dot: .DS_Store, .ipynb_checkpoints)."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """``class name -> image files`` (recursively, sorted) for each visible subfolder of ``folder``."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p, folder))
    loose = sorted(p.name for p in folder.iterdir() if _is_image_file(p))
    if loose:
        raise ValueError(
            f"{folder} holds {len(loose)} image(s) outside class folders (e.g. {loose[0]}): put each class's images "
            "in a subfolder named after the class"
        )
    if not subdirs:
        raise ValueError(f"{folder} has no class folders: put each class's images in a subfolder named after the class")
    out = {}
    for d in subdirs:
        files = sorted(p for p in d.rglob("*") if _is_image_file(p) and _visible(p, d))
        if not files:
            raise ValueError(f"class folder {d} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        out[d.name] = files
    return out


def _check_files(files: list[Path], progress: bool) -> None:
    for path in tqdm(files, desc="checking images", unit="img", disable=not progress or len(files) < 500):
        check_image(path)


def from_folder(
    root: str | Path,
    prompt: str | None = None,
    *,
    labels: Sequence[str] | None = None,
    test_fraction: float = TEST_FRACTION,
    split_seed: int = 0,
    name: str | None = None,
    check_images: bool = True,
    progress: bool = False,
) -> Task:
    """A task from image files: ``root/<class>/...`` (split here, seeded) or ``root/train/<class>/...`` plus
    ``root/test/<class>/...`` (kept as given).

    Class names are the folder names, in sorted order (or ``labels``, to fix the set and order, e.g. the classes a
    saved classifier knows); image files (``IMAGE_SUFFIXES``, any case) are found recursively inside each class
    folder; hidden files and folders are skipped. Example uids are the paths relative to ``root``. ``prompt``: see
    the module docstring. Errors name the problem: a missing root, images outside class folders, an empty class
    folder, an unreadable image, a class too small to split.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        there, missing = ("train", "test") if has_train else ("test", "train")
        raise ValueError(
            f"{root} has a {there}/ folder but no {missing}/ folder: add it, or put the class folders directly in "
            f"{root} to have them split"
        )
    if has_train:
        train_files, test_files = _class_files(root / "train"), _class_files(root / "test")
        extra = sorted(set(test_files) - set(train_files))
        if extra and labels is None:
            raise ValueError(f"{root / 'test'} has classes {extra} that {root / 'train'} lacks")
    else:
        train_files, test_files = stratified_split(_class_files(root), test_fraction, split_seed)
    label_set = _label_set([*train_files, *test_files], labels, str(root))
    if check_images:
        _check_files([p for part in (train_files, test_files) for files in part.values() for p in files], progress)
    text = render_prompt(label_set, prompt)

    def examples(by_label: dict[str, list[Path]]) -> list[Example]:
        return [
            Example(text=text, label=lab, images=(p,), uid=p.relative_to(root).as_posix(), meta={"path": str(p)})
            for lab in label_set
            for p in by_label.get(lab, [])
        ]

    train, test = examples(train_files), examples(test_files)
    how = _split_clause(has_train, "train/ and test/ folders", test_fraction, split_seed)
    return Task(
        name=name or root.resolve().name,
        labels=label_set,
        train=train,
        test=test,
        description=f"image folders in {root} (classes from folder names): {_sizes(train, test, label_set)}, {how}",
    )


# --- tables: datasets, CSV, JSONL ----------------------------------------------------------------------------------


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
    values = [_label_text(row[label], f"{where} row {i + 1}") for i, row in enumerate(rows)]
    label_set = _label_set(values, None if labels is None else [lab.strip() for lab in labels], where)
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
            question = _question_text(rows[i][text], text, f"{where} row {i + 1}") if text is not None else None
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
    how = _split_clause(split is not None, f"its {split!r} column", test_fraction, split_seed)
    questions = f", per-row questions from {text!r}" if text is not None else ""
    return Task(
        name=name,
        labels=label_set,
        train=train,
        test=test,
        description=f"{where}: {_sizes(train, test, label_set)}{questions}, {how}",
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
    return values  # as stored: _label_text refuses what is no class name (NaN, a boolean, ...)


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


# --- any of them, from a string (the command line's DATA) --------------------------------------------------------


def from_path(
    source: str | Path,
    prompt: str | None = None,
    *,
    image: str | None = None,
    label: str | None = None,
    text: str | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
    **options: Any,
) -> Task:
    """The task ``source`` names: ``hf:<repo>[:<config>]`` (a Hub dataset), a CSV / TSV / JSONL / JSON file, a
    ``datasets`` ``save_to_disk`` folder, or an image folder (the ``savs`` command's DATA argument).

    The column and split options apply to tables only (None: the builder's default); ``options`` (``labels``,
    ``test_fraction``, ``split_seed``, ``check_images``, ``progress``) go to every builder.
    """
    columns = {k: v for k, v in {"image": image, "label": label, "text": text}.items() if v is not None}
    splits = {k: v for k, v in {"train_split": train_split, "test_split": test_split}.items() if v is not None}
    spec = str(source)
    if spec.startswith("hf:"):
        return from_dataset(_hub_dataset(spec), prompt, name=spec.removeprefix("hf:"), **columns, **splits, **options)
    path = Path(source)
    if path.is_file():
        if splits:
            raise ValueError(f"{path} is a table file: --train-split / --test-split apply to datasets only")
        return from_table(path, prompt, **columns, **options)
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        import datasets

        table = datasets.load_from_disk(str(path))
        return from_dataset(table, prompt, name=path.resolve().name, **columns, **splits, **options)
    if path.is_dir():
        if columns or splits:
            given = ", ".join(sorted({**columns, **splits}))
            raise ValueError(f"{path} is an image folder: the column / split options ({given}) apply to tables only")
        return from_folder(path, prompt, **options)
    raise FileNotFoundError(f"{source} does not exist (expected an image folder, a table file or hf:<dataset>)")


def _hub_dataset(spec: str) -> datasets.DatasetDict:
    """``hf:<repo>[:<config>]`` loaded with ``datasets.load_dataset``; a failure says what was asked."""
    import datasets

    repo, _, config = spec.removeprefix("hf:").partition(":")
    try:
        return datasets.load_dataset(repo, config or None)
    except Exception as e:  # offline, gated, unknown: one clear error
        raise FileNotFoundError(f"could not load {repo!r} from the Hugging Face Hub: {type(e).__name__}: {e}") from e


# --- the notebook's stand-in for a user's own photos ----------------------------------------------------------------

FASHION_PRODUCT_GROUPS: dict[str, tuple[str, ...]] = {
    "bags": ("Bag",),
    "dresses": ("Dress",),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "tops": ("T-shirt/top", "Pullover", "Shirt", "Coat"),
    "trousers": ("Trouser",),
}


def write_fashion_products(root: str | Path, per_class: int = 50, seed: int = 0, size: int = 112) -> Path:
    """Write ``root/<category>/t10k-<index>.jpg``: ``per_class`` product photos of each of five coarse categories
    (``FASHION_PRODUCT_GROUPS``), drawn with ``seed`` from Fashion-MNIST's t10k split and upscaled to ``size`` px.

    The example data of notebook 07: no image set beyond the project's own is available offline, so this is a
    different task (5 coarse product categories instead of 10 garment types) on Fashion-MNIST's Zalando product
    photos, laid out as a user's folder of JPEGs. ``root`` must not exist or be empty.
    """
    import numpy as np

    from savs.data.offline import FASHION_MNIST_LABELS, _fashion_mnist_file, _read_idx

    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; write the example folders somewhere new")
    labels = _read_idx(_fashion_mnist_file("t10k-labels-idx1-ubyte.gz"))
    images = _read_idx(_fashion_mnist_file("t10k-images-idx3-ubyte.gz"))
    rng = np.random.default_rng(seed)
    for group, members in FASHION_PRODUCT_GROUPS.items():
        codes = [FASHION_MNIST_LABELS.index(m) for m in members]
        pool = np.flatnonzero(np.isin(labels, codes))
        (root / group).mkdir(parents=True)
        for i in sorted(rng.choice(pool, size=per_class, replace=False).tolist()):
            photo = Image.fromarray(images[i]).resize((size, size), Image.Resampling.LANCZOS).convert("RGB")
            photo.save(root / group / f"t10k-{i:05d}.jpg", quality=95)
    return root
