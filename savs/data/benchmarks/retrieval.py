"""The paper's image-text retrieval benchmarks as Yes/No matching: NaturalBench-Retrieval (groups of two
images x two captions, text / image / group accuracy) and SugarCrepe (an image with its caption and a hard
negative; a pair counts only when both are right). Neither has a train split: the few-shot pool is a seeded
disjoint part of the groups."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from savs.data.benchmarks._common import (
    GroupedTask,
    Row,
    Source,
    build,
    checked,
    hub_files,
    hub_table,
    local_tables,
    pick,
    read_json,
    rgb,
    table_from_records,
)
from savs.data.prompts import YES_NO_LABELS, yes_no_prompt
from savs.examples import Example, Task

if TYPE_CHECKING:
    import datasets
    from PIL import Image

NBR_REPO = "BaiqiL/NaturalBench"
NBR_ZIP = "NaturalBench-Retrieval.zip"
NBR_HOW_TO = (
    f"Download https://huggingface.co/datasets/{NBR_REPO}/resolve/main/{NBR_ZIP}, unzip it and pass "
    "source=<the NaturalBench-Retrieval directory> (metadata.json and images/)."
)
NBR_UNITS = {"text_acc": ("group", "image"), "image_acc": ("group", "caption"), "group_acc": ("group",)}
SUGARCREPE_SUBSETS = (
    "add_obj",
    "add_att",
    "replace_obj",
    "replace_att",
    "replace_rel",
    "swap_obj",
    "swap_att",
)
SUGARCREPE_COLUMNS = ("image", "tested_labels", "true_label")


def match_prompt(caption: str) -> str:
    """The Yes/No image-caption matching question both retrieval benchmarks ask."""
    return yes_no_prompt(f'Does this image match the caption "{caption.strip()}"?')


def match_example(image: Image.Image, caption: str, match: bool, uid: str, meta: dict) -> Example:
    """One (image, caption) matching example; Yes when the caption belongs to the image."""
    label = YES_NO_LABELS[0] if match else YES_NO_LABELS[1]
    return Example(text=match_prompt(caption), label=label, images=(rgb(image),), uid=uid, meta=dict(meta))


# --- NaturalBench-Retrieval ----------------------------------------------------------------------


def _nbr_examples(row: Row, prefix: str) -> list[Example]:
    """The group's four (image, caption) examples, image-major; caption k belongs to image k."""
    return [
        match_example(
            row[f"image_{i}"],
            row[f"caption_{c}"],
            i == c,
            f"{prefix}/i{i}c{c}",
            {"group": prefix, "group_size": 4, "image": i, "caption": c},
        )
        for i in (0, 1)
        for c in (0, 1)
    ]


def load_naturalbench_retrieval(
    split: str = "all",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
) -> Task:
    """NaturalBench-Retrieval (Li et al. 2024): two images, two captions, caption k describes image k.

    Hub: ``BaiqiL/NaturalBench``, file ``NaturalBench-Retrieval.zip`` (not a hub table): ``metadata.json``, a
    list of records with ``index``, ``image_0``, ``image_1`` (file names under ``images/``), ``caption_0``,
    ``caption_1``; confirmed from the t2v_metrics loader. ``source``: the unzipped ``NaturalBench-Retrieval``
    directory. Scored as in the authors' ``run_natural_ret.py``, each image / caption counted separately:
    ``text_acc`` = % of (group, image) whose two caption answers are right, ``image_acc`` = % of (group,
    caption) whose two image answers are right, ``group_acc`` = % of groups with all four right. ``split`` is
    "all" (one set). ``n_train``/``n_test`` count groups.
    """
    if split != "all":
        raise ValueError(f"NaturalBench-Retrieval has one set, 'all', not {split!r}")
    root = (
        hub_files(NBR_REPO, [NBR_ZIP], NBR_HOW_TO) / "NaturalBench-Retrieval"
        if source is None
        else Path(source)
    )
    records = [
        {
            "image_0": str(root / "images" / r["image_0"]),
            "image_1": str(root / "images" / r["image_1"]),
            "caption_0": r["caption_0"],
            "caption_1": r["caption_1"],
        }
        for r in read_json(root / "metadata.json", NBR_HOW_TO)
    ]
    return build(
        "naturalbench_retrieval",
        YES_NO_LABELS,
        None,
        table_from_records(records, ["image_0", "image_1"], NBR_HOW_TO),
        _nbr_examples,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"NaturalBench-Retrieval ({NBR_REPO}, Apache-2.0), image-caption matching in groups of four",
        task_type=partial(GroupedTask, units=NBR_UNITS),
    )


# --- SugarCrepe ----------------------------------------------------------------------------------


def _sugarcrepe_subset(
    subset: str, source: str | Path | None, local: datasets.DatasetDict | None
) -> datasets.Dataset:
    """One SugarCrepe subset as (image, caption, negative_caption, subset) rows, images undecoded."""
    src = Source(f"HuggingFaceM4/SugarCrepe_{subset}", columns=SUGARCREPE_COLUMNS)
    table = hub_table(src.repo, None, "test") if local is None else pick(local, subset, source)
    table = checked(table, src, f"{source or src.repo} subset {subset!r}")
    names = getattr(table.features["true_label"], "names", None)
    positives = [names[t] if names else t for t in table["true_label"]]
    negatives = []
    for pos, tested in zip(positives, table["tested_labels"], strict=True):
        others = [t for t in tested if t != pos]
        if len(others) != 1 or len(tested) != 2:
            raise ValueError(
                f"SugarCrepe {subset}: tested_labels {tested} do not hold {pos!r} and one negative"
            )
        negatives.append(others[0])
    return (
        table.select_columns(["image"])
        .add_column("caption", positives)
        .add_column("negative_caption", negatives)
        .add_column("subset", [subset] * len(table))
    )


def _sugarcrepe_examples(row: Row, prefix: str) -> list[Example]:
    """The pair: the image with its caption (Yes) and with the hard negative (No)."""
    meta = {"group": prefix, "group_size": 2, "subset": row["subset"]}
    return [
        match_example(row["image"], row["caption"], True, f"{prefix}/pos", meta),
        match_example(row["image"], row["negative_caption"], False, f"{prefix}/neg", meta),
    ]


def load_sugarcrepe(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    subsets: Sequence[str] = SUGARCREPE_SUBSETS,
) -> Task:
    """SugarCrepe (Hsieh et al. 2023) image-caption matching; a pair counts only when both are right.

    Hub: ``HuggingFaceM4/SugarCrepe_<subset>`` for the seven subsets (add_obj, add_att, replace_obj,
    replace_att, replace_rel, swap_obj, swap_att), split ``test``, columns ``image``, ``tested_labels``
    ([caption, negative]) and ``true_label`` (ClassLabel whose name is the true caption); confirmed from
    HuggingFaceM4's build script. ``source``: a DatasetDict with one split per subset name. Metric
    ``pair_acc``: % of (image, caption, negative) pairs with both answers right (the authors'
    ``run_sugarcrepe.py``). No train split: the few-shot pool is a seeded disjoint quarter of the pairs.
    ``n_train``/``n_test`` count pairs.
    """
    import datasets

    if split != "test":
        raise ValueError(f"SugarCrepe has only a 'test' split, not {split!r}")
    unknown = set(subsets) - set(SUGARCREPE_SUBSETS)
    if unknown:
        raise ValueError(f"unknown SugarCrepe subsets {sorted(unknown)}; known: {SUGARCREPE_SUBSETS}")
    local = None if source is None else local_tables(source)
    if local is not None and not isinstance(local, datasets.DatasetDict):
        raise ValueError(f"SugarCrepe source {source} must be a DatasetDict with one split per subset")
    table = datasets.concatenate_datasets([_sugarcrepe_subset(s, source, local) for s in subsets])
    return build(
        "sugarcrepe",
        YES_NO_LABELS,
        None,
        table,
        _sugarcrepe_examples,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"SugarCrepe {'+'.join(subsets)} (HuggingFaceM4/SugarCrepe_*) as Yes/No pairs",
        task_type=partial(GroupedTask, units={"pair_acc": ("group",)}),
    )
