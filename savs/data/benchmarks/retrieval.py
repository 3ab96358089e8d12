"""The paper's image-text retrieval benchmarks as Yes/No matching: NaturalBench-Retrieval (groups of two
images x two captions, text / image / group accuracy) and SugarCrepe (an image with its caption and a hard
negative; a pair counts only when both are right). Neither has a train split. As the authors ran them
(``protocol="authors"``): NaturalBench-Retrieval is tested on the groups of their fixed test file as their scoring
loop read it, a group the file lists twice tested twice (the few-shot pool is the other groups), SugarCrepe on all
its pairs but a small seeded few-shot pool. Our protocol keeps a seeded disjoint quarter of the groups as the pool."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from savs.data.authors import authors_file
from savs.data.benchmarks._common import (
    GroupedTask,
    Row,
    Source,
    build,
    check_protocol,
    checked,
    hub_files,
    hub_table,
    local_tables,
    pick,
    read_json,
    rgb,
    table_from_records,
)
from savs.data.prompts import YES_NO_LABELS, image_markers, yes_no_prompt
from savs.examples import Example, Task

if TYPE_CHECKING:
    import datasets

    from savs.examples import ImageLike

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
NBR_AUTHORS_TEST = "naturalbench_ret_test.jsonl"  # the authors' fixed test groups
SUGARCREPE_POOL_PAIRS = 100  # the authors' few-shot pool size is unknown; ours is small so nearly all pairs are tested


SUGARCREPE_WORDINGS = ("first", "later")  # the authors' SugarCrepe prompts: see load_sugarcrepe


def match_prompt(caption: str, benchmark: str, protocol: str, wording: str = "first") -> str:
    """The Yes/No image-caption matching question: the authors' wording, or our shared one. SugarCrepe's
    ``wording="later"``: their code from 9599fdd on (no marker, "Please answer"; their LLaVA helper put the image
    first)."""
    if protocol == "savs":
        return yes_no_prompt(f'Does this image match the caption "{caption.strip()}"?')
    question = f"Does this image show '{caption}'?"
    if benchmark == "sugarcrepe" and wording == "later":
        return f"{question} Please answer with Yes or No."
    return f"{image_markers(1)}{question} Answer with Yes or No."


def match_example(
    image: ImageLike,
    caption: str,
    match: bool,
    uid: str,
    meta: dict,
    benchmark: str,
    protocol: str,
    wording: str = "first",
) -> Example:
    """One (image, caption) matching example; Yes when the caption belongs to the image. ``meta["query"]``: the
    caption (what a contrastive model scores against the image)."""
    label = YES_NO_LABELS[0] if match else YES_NO_LABELS[1]
    text = match_prompt(caption, benchmark, protocol, wording)
    return Example(text=text, label=label, images=(rgb(image),), uid=uid, meta={**meta, "query": caption})


# --- NaturalBench-Retrieval ----------------------------------------------------------------------


def _nbr_examples(row: Row, prefix: str, protocol: str) -> list[Example]:
    """The group's four (image, caption) examples, image-major; caption k belongs to image k."""
    return [
        match_example(
            row[f"image_{i}"],
            row[f"caption_{c}"],
            i == c,
            f"{prefix}/i{i}c{c}",
            {"group": prefix, "group_size": 4, "image": i, "caption": c},
            "naturalbench_retrieval",
            protocol,
        )
        for i in (0, 1)
        for c in (0, 1)
    ]


def caption_pair(record: Row) -> frozenset[str]:
    """A group's two captions: what identifies it in the authors' test file."""
    return frozenset((record["caption_0"], record["caption_1"]))


def _authors_test_groups(path: Path) -> list[frozenset[str]]:
    """The caption pair of each group (``question_id``) of the authors' test file, in file order (rows: image,
    "Does this image show '...'?"). A group the file lists under two ids is there twice: their scoring loop walks
    the file four rows at a time, so it tested and counted such a group twice."""
    groups: dict[object, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            caption = row["question"].removeprefix("Does this image show '").removesuffix("'?")
            groups.setdefault(row["question_id"], set()).add(caption)
    return [frozenset(captions) for captions in groups.values()]


def _authors_split(records: list[Row], wanted: list[frozenset[str]], root: Path) -> tuple[list[Row], list[Row]]:
    """(pool, test) records: the test set holds one record per group of the authors' file (a pair the hub holds
    more than once is its first record), the pool every record whose caption pair the file does not list."""
    by_pair: dict[frozenset[str], Row] = {}
    for r in records:
        by_pair.setdefault(caption_pair(r), r)
    found = sum(pair in by_pair for pair in wanted)
    if found != len(wanted):
        raise ValueError(
            f"{found} of the authors' {len(wanted)} NaturalBench-Retrieval test groups are in {root}: "
            "is it the hub's NaturalBench-Retrieval?"
        )
    tested = set(wanted)
    return [r for r in records if caption_pair(r) not in tested], [by_pair[pair] for pair in wanted]


def load_naturalbench_retrieval(
    split: str = "all",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    protocol: str = "authors",
    test_file: str | Path | None = None,
) -> Task:
    """NaturalBench-Retrieval (Li et al. 2024): two images, two captions, caption k describes image k.

    Hub: ``BaiqiL/NaturalBench``, file ``NaturalBench-Retrieval.zip`` (not a hub table): ``metadata.json``, a
    list of records with ``index``, ``image_0``, ``image_1`` (file names under ``images/``), ``caption_0``,
    ``caption_1``; confirmed from the t2v_metrics loader. ``source``: the unzipped ``NaturalBench-Retrieval``
    directory. Scored as in the authors' ``run_natural_ret.py``, each image / caption counted separately:
    ``text_acc`` = % of (group, image) whose two caption answers are right, ``image_acc`` = % of (group,
    caption) whose two image answers are right, ``group_acc`` = % of groups with all four right. ``split`` is
    "all" (one set). ``n_train``/``n_test`` count groups.

    ``protocol="authors"``: the test set is the groups of the authors' ``naturalbench_ret_test.jsonl`` (``test_file``
    or ``savs.data.authors``), one per ``question_id`` in file order, matched to the hub's records by their caption
    pairs. The file's 950 groups hold 78 pairs twice (same images and captions under two ids); their scoring loop
    counted those twice, and so do we: each is tested as two groups. ``n_test`` counts the file's groups. The
    few-shot pool is every record whose pair the file does not list (their own 40 few-shot items came from their
    test groups; ours never do). Prompt:
    ``<image>\nDoes this image show '{caption}'? Answer with Yes or No.``
    """
    check_protocol(protocol)
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
    train, test = None, records
    if protocol == "authors":
        train, test = _authors_split(records, _authors_test_groups(authors_file(NBR_AUTHORS_TEST, test_file)), root)
    table = partial(table_from_records, image_columns=["image_0", "image_1"], how_to=NBR_HOW_TO)
    return build(
        "naturalbench_retrieval",
        YES_NO_LABELS,
        None if train is None else table(train),
        table(test),
        partial(_nbr_examples, protocol=protocol),
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


def _sugarcrepe_examples(row: Row, prefix: str, protocol: str, wording: str) -> list[Example]:
    """The pair: the image with its caption (Yes) and with the hard negative (No)."""
    meta = {"group": prefix, "group_size": 2, "subset": row["subset"]}
    return [
        match_example(row["image"], caption, match, f"{prefix}/{kind}", meta, "sugarcrepe", protocol, wording)
        for caption, match, kind in ((row["caption"], True, "pos"), (row["negative_caption"], False, "neg"))
    ]


def load_sugarcrepe(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    subsets: Sequence[str] = SUGARCREPE_SUBSETS,
    protocol: str = "authors",
    pool_pairs: int = SUGARCREPE_POOL_PAIRS,
    wording: str = "first",
) -> Task:
    """SugarCrepe (Hsieh et al. 2023) image-caption matching; a pair counts only when both are right.

    Hub: ``HuggingFaceM4/SugarCrepe_<subset>`` for the seven subsets (add_obj, add_att, replace_obj,
    replace_att, replace_rel, swap_obj, swap_att), split ``test``, columns ``image``, ``tested_labels``
    ([caption, negative]) and ``true_label`` (ClassLabel whose name is the true caption); confirmed from
    HuggingFaceM4's build script. ``source``: a DatasetDict with one split per subset name. Metric
    ``pair_acc``: % of (image, caption, negative) pairs with both answers right (the authors'
    ``run_sugarcrepe.py``). No train split: the few-shot pool is a seeded disjoint set of ``pool_pairs`` pairs
    (``protocol="authors"``: the authors tested on all 7,511 pairs of their file; their few-shot source is not
    released) or a quarter of the pairs (``"savs"``). ``n_train``/``n_test`` count
    pairs. Prompt (authors): ``wording="first"``, their SugarCrepe runs nearest the paper (d6b95a3, 2025-01-28, which
    ran it through their NaturalBench-Retrieval formatter, and the SugarCrepe formatter of afe4ef4):
    ``<image>\nDoes this image show '{caption}'? Answer with Yes or No.``; ``"later"`` (9599fdd on): ``Does this
    image show '{caption}'? Please answer with Yes or No.``, the image put first by their model helper. Every
    version showed the image.
    """
    import datasets

    check_protocol(protocol)
    if split != "test":
        raise ValueError(f"SugarCrepe has only a 'test' split, not {split!r}")
    if wording not in SUGARCREPE_WORDINGS:
        raise ValueError(f"SugarCrepe wording must be one of {SUGARCREPE_WORDINGS}; got {wording!r}")
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
        partial(_sugarcrepe_examples, protocol=protocol, wording=wording),
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        pool_groups=pool_pairs if protocol == "authors" else None,
        title=f"SugarCrepe {'+'.join(subsets)} (HuggingFaceM4/SugarCrepe_*) as Yes/No pairs",
        task_type=partial(GroupedTask, units={"pair_acc": ("group",)}),
    )
