"""Plumbing shared by the benchmark loaders: hub-or-local tables, seeded group-keeping splits, Examples.

A loader's life: ``tables`` fetches the evaluated split (and the benchmark's train split, if it has one) from
the Hugging Face Hub or a local copy and checks its columns; ``split_parts`` orders the rows' groups with the
seed (taking the classes in turn when a stratum column is given) and, when there is no train split, gives the
first ``POOL_FRACTION`` of them to the few-shot pool; ``take`` keeps the first ``n`` groups; ``examples``
builds the kept rows' examples with lazily decoded images (``savs.examples.LazyImage``: a paper-scale test set
is never held decoded in memory). ``build`` chains them for the common case.

Every paper benchmark speaks two prompt ``PROTOCOLS``: ``"authors"`` (the default: the prompt strings, option
formats and splits of the paper's released code, ``chancharikmitra/SAVs`` at commit 901be34, as listed in the
README's protocol table) and ``"savs"`` (our own uniform prompts). An authors' prompt keeps their leading
``<image>\n`` markers; adapters place the images there (Qwen2-VL, as the authors ran it, also keeps the markers
as literal text: ``Adapter.literal_image_markers``).
"""

from __future__ import annotations

import json
import random
import zipfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from savs.examples import Example, ImageLike, LazyImage, Task, _check_count, to_rgb

if TYPE_CHECKING:
    import datasets

POOL_FRACTION = 0.25  # share of the groups that forms the few-shot pool of a benchmark without a train split
PROTOCOLS = ("authors", "savs")

Row = dict[str, Any]
Convert = Callable[[Row, str], list[Example]]  # (row, uid prefix) -> the row's examples


class BenchmarkUnavailableError(RuntimeError):
    """A benchmark's data could not be loaded (hub unreachable or gated, files missing); says what to do."""


@dataclass(frozen=True)
class Source:
    """Where a benchmark lives on the hub, the columns its rows need, and how to get it when loading fails.

    ``train_split`` None: the benchmark has no train split, so the few-shot pool is a seeded disjoint part of
    the evaluated split. ``test_repo``: the evaluated split's repo where the hub keeps splits in separate
    repos. ``renames``: (old, new) column names unified before the check (hub revisions differ).
    """

    repo: str
    config: str | None = None
    columns: tuple[str, ...] = ()
    train_split: str | None = None
    test_repo: str | None = None
    renames: tuple[tuple[str, str], ...] = ()
    how_to: str = ""


@dataclass
class Part:
    """One side of a benchmark (few-shot pool or test): a table and its row groups in seeded order."""

    table: datasets.Dataset
    groups: list[list[int]]


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of ``PROTOCOLS``, else a ValueError listing them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown prompt protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


def unavailable(repo: str, reason: str, how_to: str = "") -> BenchmarkUnavailableError:
    """The error for a hub dataset that could not be fetched: names it, says why and what to do instead."""
    hint = f" {how_to}" if how_to else ""
    return BenchmarkUnavailableError(
        f"could not load {repo!r} from the Hugging Face Hub ({reason}).{hint} "
        "To run without the hub, pass source=<path to a local copy with the same columns>."
    )


def hub_table(repo: str, config: str | None, split: str, how_to: str = "") -> datasets.Dataset:
    """``datasets.load_dataset(repo, config, split=split)``; a failure becomes an error naming ``repo``."""
    import datasets

    try:
        return datasets.load_dataset(repo, config, split=split)
    except Exception as e:  # offline, gated, unknown split, ...: all end the run here, never half-way
        where = f"config {config!r}, split {split!r}" if config else f"split {split!r}"
        raise unavailable(repo, f"{where}: {type(e).__name__}: {e}", how_to) from e


def hub_files(repo: str, patterns: Sequence[str], how_to: str = "") -> Path:
    """A local copy of the ``patterns`` files of the hub dataset ``repo``, with its zip archives extracted."""
    import datasets
    from huggingface_hub import snapshot_download

    root = Path(datasets.config.HF_DATASETS_CACHE) / "savs" / repo.replace("/", "--")
    try:
        snapshot_download(repo, repo_type="dataset", allow_patterns=list(patterns), local_dir=root)
    except Exception as e:
        raise unavailable(repo, f"{type(e).__name__}: {e}", how_to) from e
    for archive in root.glob("*.zip"):
        done = root / f".{archive.name}.extracted"
        if not done.exists():
            extract_archive(archive, root)
            done.touch()
    return root


def extract_archive(archive: Path, root: Path) -> Path:
    """Unzip ``archive`` into its own folder ``root/<stem>/``: as it is where every member already sits under
    ``<stem>/``, else into that folder. So two archives never mix (VLGuard's train.zip and test.zip, whose images
    sit in the same category folders), and a loader finds each one's files under its name. Returns the folder."""
    with zipfile.ZipFile(archive) as z:
        nested = all(name.startswith(f"{archive.stem}/") for name in z.namelist())
        z.extractall(root if nested else root / archive.stem)
    return root / archive.stem


def local_tables(source: str | Path) -> datasets.Dataset | datasets.DatasetDict:
    """A local copy: a ``save_to_disk`` Dataset/DatasetDict, or a dir ``datasets.load_dataset`` reads."""
    import datasets

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"source {path} does not exist")
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return datasets.load_from_disk(str(path))
    return datasets.load_dataset(str(path))


def checked(table: datasets.Dataset, src: Source, where: str) -> datasets.Dataset:
    """``table`` with ``src.renames`` applied, or a ValueError naming the columns it lacks."""
    for old, new in src.renames:
        if old in table.column_names and new not in table.column_names:
            table = table.rename_column(old, new)
    have = set(table.column_names)
    missing = [c for c in src.columns if c not in have]
    if missing:
        raise ValueError(f"{where} lacks columns {missing}; it has {sorted(have)}")
    return table


def tables(
    src: Source, split: str, source: str | Path | None
) -> tuple[datasets.Dataset | None, datasets.Dataset]:
    """(train table or None, evaluated table) from the hub (``source`` None) or a local copy.

    A local Dataset (not a DatasetDict) is the whole benchmark: its few-shot pool is then a seeded disjoint
    part.
    """
    import datasets

    if split == src.train_split:
        raise ValueError(f"split {split!r} is the few-shot pool's split; evaluate on another split")
    if source is None:
        test = hub_table(src.test_repo or src.repo, src.config, split, src.how_to)
        train = hub_table(src.repo, src.config, src.train_split, src.how_to) if src.train_split else None
        where = src.repo
    else:
        data = local_tables(source)
        if isinstance(data, datasets.Dataset):
            train, test = None, data
        else:
            test = pick(data, split, source)
            train = pick(data, src.train_split, source) if src.train_split else None
        where = str(source)
    test = checked(test, src, f"{where} split {split!r}")
    return (checked(train, src, f"{where} split {src.train_split!r}") if train is not None else None), test


def pick(data: datasets.DatasetDict, split: str, source: str | Path) -> datasets.Dataset:
    """Split ``split`` of a local DatasetDict, or an error listing the splits it has."""
    if split not in data:
        raise KeyError(f"{source} has no split {split!r}; it has {sorted(data)}")
    return data[split]


def ordered_groups(
    table: datasets.Dataset, seed: int, key: str | None = None, stratum: str | None = None
) -> list[list[int]]:
    """Row indices grouped by ``key`` (one row each if None), in a seeded order.

    With a ``stratum`` column the strata are taken in turn, so any prefix is as balanced as the data allow.
    """
    keys: Iterable[Hashable] = list(table[key]) if key else range(len(table))
    by_key: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    groups = list(by_key.values())
    random.Random(seed).shuffle(groups)
    if stratum is None:
        return groups
    strata = list(table[stratum])
    by_stratum: dict[Hashable, list[list[int]]] = {}
    for g in groups:
        by_stratum.setdefault(strata[g[0]], []).append(g)
    return [g for turn in zip_longest(*by_stratum.values()) for g in turn if g is not None]


def split_parts(
    train: datasets.Dataset | None,
    test: datasets.Dataset,
    seed: int,
    key: str | None = None,
    stratum: str | None = None,
    pool_groups: int | None = None,
) -> tuple[Part, Part]:
    """(few-shot pool, test): the train table, or else the first ``pool_groups`` (default: ``POOL_FRACTION``) of
    the test groups."""
    test_groups = ordered_groups(test, seed, key, stratum)
    if train is not None:
        return Part(train, ordered_groups(train, seed, key, stratum)), Part(test, test_groups)
    n_pool = max(1, round(POOL_FRACTION * len(test_groups))) if pool_groups is None else pool_groups
    if not 0 < n_pool < len(test_groups):
        raise ValueError(
            f"{len(test_groups)} group(s) cannot be split into a few-shot pool of {n_pool} and a test set"
        )
    return Part(test, test_groups[:n_pool]), Part(test, test_groups[n_pool:])


def take(part: Part, n: int | None) -> list[int]:
    """Row indices of the part's first ``n`` groups (all when None), in the part's seeded order."""
    if n is not None and n < 0:
        raise ValueError(f"n_train / n_test must be >= 0 or None, got {n}")
    return [i for g in part.groups[:n] for i in g]


def examples(part: Part, rows: list[int], convert: Convert, prefix: str) -> list[Example]:
    """The examples of ``rows``; uids start ``{prefix}/{row index}``. Image cells become ``LazyImage``s that read
    their bytes from the (memory-mapped) table when a model needs them; nothing is decoded here."""
    import datasets

    table = part.table
    image_columns = [name for name, f in table.features.items() if isinstance(f, datasets.Image)]
    raw = table
    for name in image_columns:
        raw = raw.cast_column(name, datasets.Image(decode=False))
    cells = {name: raw.select_columns([name]) for name in image_columns}
    out: list[Example] = []
    plain = raw.remove_columns(image_columns).select(rows)
    for i, row in zip(rows, plain, strict=True):
        row.update({name: lazy_cell(cells[name], i, name) for name in image_columns})
        out.extend(convert(row, f"{prefix}/{i}"))
    return out


def lazy_cell(column: datasets.Dataset, row: int, name: str) -> LazyImage | None:
    """The image in ``column[row][name]`` as a LazyImage (None where the row has no image)."""
    cell = column[row][name]
    if cell is None or (cell.get("bytes") is None and cell.get("path") is None):
        return None

    def fetch(column: datasets.Dataset = column, row: int = row, name: str = name) -> bytes | str:
        value = column[row][name]
        return value["bytes"] if value["bytes"] is not None else value["path"]

    return LazyImage(fetch)


def build(
    name: str,
    labels: Sequence[str],
    train_table: datasets.Dataset | None,
    test_table: datasets.Dataset,
    convert: Convert,
    *,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    title: str,
    key: str | None = None,
    stratum: str | None = None,
    task_type: Callable[..., Task] = Task,
    pool_groups: int | None = None,
    pool_is_test: bool = False,
    adjust: Callable[[Part, Part], tuple[Part, Part]] | None = None,
) -> Task:
    """The common loader tail: split into pool and test (``adjust`` may move groups between them), keep
    ``n_train``/``n_test`` groups, wrap.

    ``pool_is_test``: no split at all; the few-shot pool is the evaluated split (``Task.pool_is_test``), kept whole
    (``n_train``/``n_test`` do not apply: ``test_subset(n, exclude=few_shot)`` caps each seed's test set).
    """
    if pool_is_test:
        whole = Part(test_table, ordered_groups(test_table, seed, key, stratum))
        items = examples(whole, take(whole, None), convert, f"{name}/test")
        description = f"{title}: {len(items)} examples; each seed's few-shot set is drawn from them, the rest is tested"
        return task_type(name=name, labels=tuple(labels), train=items, test=items, description=description,
                         pool_is_test=True)  # fmt: skip
    pool, test = split_parts(train_table, test_table, seed, key, stratum, pool_groups)
    if adjust is not None:
        pool, test = adjust(pool, test)
    train_examples = examples(pool, take(pool, n_train), convert, f"{name}/train")
    test_examples = examples(test, take(test, n_test), convert, f"{name}/test")
    return task_type(
        name=name,
        labels=tuple(labels),
        train=train_examples,
        test=test_examples,
        description=describe(title, train_examples, test_examples, train_table is None),
    )


def describe(title: str, train: list[Example], test: list[Example], held_out: bool) -> str:
    """The one-line task description: what it is, sizes, and where the few-shot pool came from."""
    pool = "a seeded disjoint part of the evaluated split" if held_out else "the train split"
    return f"{title}: {len(train)} few-shot-pool examples (from {pool}), {len(test)} test examples"


def rgb(image: ImageLike) -> ImageLike:
    """A decoded image as 8-bit RGB (hub images come in every mode: ``to_rgb`` scales 16-bit ones and composites
    transparency); a LazyImage as is (it decodes the same way)."""
    return image if isinstance(image, LazyImage) else to_rgb(image)


def present_images(images: Iterable[ImageLike | None]) -> tuple[ImageLike, ...]:
    """The present images of a row, in column order."""
    return tuple(rgb(im) for im in images if im is not None)


def read_json(path: Path, how_to: str) -> Any:
    """A benchmark's JSON file, or an error saying how to get it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. {how_to}")
    return json.loads(path.read_text(encoding="utf-8"))


def first_file(candidates: Iterable[Path]) -> str:
    """The first existing path of ``candidates`` (else the first one, for the missing-file error)."""
    paths = list(candidates)
    return str(next((p for p in paths if p.is_file()), paths[0]))


def table_from_records(records: list[Row], image_columns: Sequence[str], how_to: str) -> datasets.Dataset:
    """An in-memory table of JSON records whose ``image_columns`` hold existing image paths."""
    import datasets

    missing = [r[c] for r in records for c in image_columns if not Path(r[c]).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} referenced images are missing, e.g. {missing[:3]}. {how_to}")
    table = datasets.Dataset.from_list(records)
    for c in image_columns:
        table = table.cast_column(c, datasets.Image())
    return table


@dataclass
class GroupedTask(Task):
    """A task also scored per unit of examples: a unit is right only when all its examples are.

    ``units`` maps each extra metric to the meta keys that define its units; every example's meta holds
    ``group`` and ``group_size``.
    """

    units: dict[str, tuple[str, ...]] | None = None

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
        """Plain accuracy plus each unit metric, in %; a partial group is an error (it biases the units)."""
        out = super().evaluate(examples, predictions)
        sizes: dict[Hashable, int] = {}
        for e in examples:
            sizes[e.meta["group"]] = sizes.get(e.meta["group"], 0) + 1
        for e in examples:
            if sizes[e.meta["group"]] != e.meta["group_size"]:
                raise ValueError(
                    f"group {e.meta['group']!r} has {sizes[e.meta['group']]} of its {e.meta['group_size']} "
                    "examples; grouped metrics need whole groups (use task.test_subset)"
                )
        for metric, keys in (self.units or {}).items():
            right: dict[tuple, bool] = {}
            for e, p in zip(examples, predictions, strict=True):
                unit = tuple(e.meta[k] for k in keys)
                right[unit] = right.get(unit, True) and e.label == p
            out[metric] = 100.0 * sum(right.values()) / len(right)
        return out

    def test_subset(self, n: int | None = None, seed: int = 0, exclude: Iterable[Example] = ()) -> list[Example]:
        """Whole groups of a seeded shuffle of the groups, as many as fit in ``n`` examples (None: all); a group
        holding one of ``exclude`` is left out whole."""
        if n is not None:
            _check_count(n, "n (test examples)", 0)
        dropped = {e.meta["group"] for e in set(exclude)}
        groups: dict[Hashable, list[Example]] = {}
        for e in self.test:
            if e.meta["group"] not in dropped:
                groups.setdefault(e.meta["group"], []).append(e)
        order = list(groups.values())
        random.Random(seed).shuffle(order)
        out: list[Example] = []
        for g in order:
            if n is not None and len(out) + len(g) > n:
                break
            out.extend(g)
        return out
