"""The paper's image classification benchmarks as multiple-choice prompts "... Options: a, b, c. Answer with
the class name.": EuroSAT, Oxford-IIIT Pets, Flowers102, CUB-200 and ImageNet-1k.

How many options a prompt lists: every class when the set has at most ``MAX_OPTIONS`` (40) classes (EuroSAT's
10, Pets' 37); otherwise the true class plus ``MAX_OPTIONS - 1`` distractors drawn from the example's uid (so
a prompt never changes between runs or seeds), listed in class order (Flowers 102, CUB 200, ImageNet 1,000
classes). The classes themselves stay the full set: SAVs still classify among all of them. ``max_options``
overrides it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from savs.data.benchmarks._common import Row, Source, build, rgb, tables
from savs.data.prompts import classification_prompt
from savs.examples import Example, Task

MAX_OPTIONS = 40


def tidy(name: str) -> str:
    """A hub class name as a model would say it: no "001." prefix, spaces for "_", its first synonym."""
    return re.sub(r"^\d+\.", "", name).replace("_", " ").split(",")[0].strip()


def split_camel(name: str) -> str:
    """ "AnnualCrop" -> "Annual Crop" (EuroSAT's names)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)


@dataclass(frozen=True)
class ClassSet:
    """A classification benchmark: registry name, hub source (label column ``label``), question, tidying."""

    name: str
    title: str
    source: Source
    question: str
    rename: Callable[[str], str] = tidy


def class_names(names: Sequence[str], rename: Callable[[str], str]) -> tuple[str, ...]:
    """The renamed class names; a name two classes share gets its class index, e.g. "crane (134)"."""
    renamed = [rename(n) for n in names]
    counts: dict[str, int] = {}
    for n in renamed:
        counts[n] = counts.get(n, 0) + 1
    return tuple(n if counts[n] == 1 else f"{n} ({k})" for k, n in enumerate(renamed))


def options(labels: tuple[str, ...], gold: str, max_options: int | None, uid: str) -> tuple[str, ...]:
    """The classes a prompt lists: all, or ``gold`` plus distractors drawn from ``uid``, in class order."""
    if max_options is None or len(labels) <= max_options:
        return labels
    if max_options < 2:
        raise ValueError(f"max_options must be >= 2 or None, got {max_options}")
    drawn = set(random.Random(uid).sample([lab for lab in labels if lab != gold], max_options - 1))
    return tuple(lab for lab in labels if lab == gold or lab in drawn)


def load_classification(
    spec: ClassSet,
    split: str,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    source: str | Path | None,
    max_options: int | None = MAX_OPTIONS,
) -> Task:
    """Shared loader: pool from the train split, ``split`` as test, both taking the classes in turn."""
    train_table, test_table = tables(spec.source, split, source)
    label_names = []
    for table in (train_table, test_table):
        feature = table.features["label"]
        if not hasattr(feature, "names"):
            raise ValueError(
                f"{spec.name}: column 'label' must be a ClassLabel with class names, not {feature}"
            )
        label_names.append(tuple(feature.names))
    if label_names[0] != label_names[1]:
        raise ValueError(f"{spec.name}: the train and {split!r} splits name their classes differently")
    labels = class_names(label_names[1], spec.rename)
    prompts: dict[tuple[str, ...], str] = {}

    def convert(row: Row, prefix: str) -> list[Example]:
        gold = labels[row["label"]]
        shown = options(labels, gold, max_options, prefix)
        if shown not in prompts:
            prompts[shown] = classification_prompt(spec.question, shown)
        return [Example(text=prompts[shown], label=gold, images=(rgb(row["image"]),), uid=prefix)]

    return build(
        spec.name,
        labels,
        train_table,
        test_table,
        convert,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"{spec.title} ({spec.source.test_repo or spec.source.repo} {split}), {len(labels)} classes",
        stratum="label",
    )


IMAGENET_HOW_TO = (
    "ImageNet-1k is gated: accept its terms at https://huggingface.co/datasets/ILSVRC/imagenet-1k and log in "
    "(`huggingface-cli login`); or build a local copy with columns image, label (ClassLabel) and splits "
    "train, validation (e.g. load it where you have access and save_to_disk(DIR)) and pass source=DIR."
)
EUROSAT = ClassSet(
    "eurosat",
    "EuroSAT RGB land cover (MIT licence)",
    Source("timm/eurosat-rgb", columns=("image", "label"), train_split="train"),
    "What type of land use or land cover does this satellite image show?",
    split_camel,
)
PETS = ClassSet(
    "oxford_pets",
    "Oxford-IIIT Pet breeds (CC BY-SA 4.0)",
    Source("timm/oxford-iiit-pet", columns=("image", "label"), train_split="train"),
    "What breed of cat or dog is shown in this image?",
)
FLOWERS = ClassSet(
    "flowers102",
    "Oxford Flowers102",
    Source(
        "Multimodal-Fatima/OxfordFlowers_train",
        columns=("image", "label"),
        train_split="train",
        test_repo="Multimodal-Fatima/OxfordFlowers_test",
    ),
    "What type of flower is shown in this image?",
)
CUB = ClassSet(
    "cub200",
    "CUB-200-2011 bird species",
    Source("bentrevett/caltech-ucsd-birds-200-2011", columns=("image", "label"), train_split="train"),
    "What species of bird is shown in this image?",
)
IMAGENET = ClassSet(
    "imagenet1k",
    "ImageNet-1k (ILSVRC 2012, non-commercial research licence)",
    Source("ILSVRC/imagenet-1k", columns=("image", "label"), train_split="train", how_to=IMAGENET_HOW_TO),
    "What object is shown in this image?",
)


def load_eurosat(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    max_options: int | None = MAX_OPTIONS,
) -> Task:
    """EuroSAT RGB (Helber et al. 2019), 10 land-cover classes ("Annual Crop", ..., "Sea Lake").

    Hub: ``timm/eurosat-rgb`` (no config), splits ``train`` (pool) / ``validation`` / ``test``, columns
    ``image``, ``label`` (ClassLabel AnnualCrop ... SeaLake), ``image_id``; confirmed from the dataset card.
    ``n_train``/``n_test`` count images, classes taken in turn.
    """
    return load_classification(EUROSAT, split, n_train, n_test, seed, source, max_options)


def load_oxford_pets(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    max_options: int | None = MAX_OPTIONS,
) -> Task:
    """Oxford-IIIT Pet (Parkhi et al. 2012), 37 cat and dog breeds ("abyssinian", "american bulldog", ...).

    Hub: ``timm/oxford-iiit-pet`` (no config), splits ``train`` (pool) / ``test``, columns ``image``,
    ``label`` (ClassLabel abyssinian ... yorkshire_terrier), ``image_id``, ``label_cat_dog``; confirmed from
    the card.
    """
    return load_classification(PETS, split, n_train, n_test, seed, source, max_options)


def load_flowers102(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    max_options: int | None = MAX_OPTIONS,
) -> Task:
    """Oxford Flowers102 (Nilsback & Zisserman 2008), 102 flower species ("pink primrose", ...).

    Hub: two repos, ``Multimodal-Fatima/OxfordFlowers_train`` split ``train`` (pool) and
    ``Multimodal-Fatima/OxfordFlowers_test`` split ``test``, columns ``image``, ``label`` (ClassLabel with the
    flower names); confirmed from the train repo's card, the test repo's columns are unconfirmed (same
    builder). A local ``source`` is one DatasetDict with ``train`` and ``test``.
    """
    return load_classification(FLOWERS, split, n_train, n_test, seed, source, max_options)


def load_cub200(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    max_options: int | None = MAX_OPTIONS,
) -> Task:
    """CUB-200-2011 (Wah et al. 2011), 200 bird species ("Black footed Albatross", ...).

    Hub: ``bentrevett/caltech-ucsd-birds-200-2011`` (no config), splits ``train`` (pool) / ``test``, columns
    ``image``, ``label`` (ClassLabel "001.Black_footed_Albatross" ...; the number and "_" are dropped),
    ``bbox``; confirmed from the dataset card.
    """
    return load_classification(CUB, split, n_train, n_test, seed, source, max_options)


def load_imagenet1k(
    split: str = "validation",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    max_options: int | None = MAX_OPTIONS,
) -> Task:
    """ImageNet-1k (ILSVRC 2012), 1,000 classes named by their first synonym ("tench", ...).

    A first synonym two classes share (e.g. "crane") gets each class's index appended. Hub:
    ``ILSVRC/imagenet-1k`` (gated: accept the licence on the hub and log in), splits ``train`` (pool) /
    ``validation`` (``test`` has no labels), columns ``image``, ``label`` (ClassLabel "tench, Tinca tinca",
    ...); column names unconfirmed here (standard for this repo). Use ``n_train`` to avoid decoding 1.28M
    images: the pool takes the classes in turn, so ``n_train=20000`` gives 20 per class.
    """
    return load_classification(IMAGENET, split, n_train, n_test, seed, source, max_options)


CLASSIFICATION_LOADERS = {
    "eurosat": load_eurosat,
    "oxford_pets": load_oxford_pets,
    "flowers102": load_flowers102,
    "cub200": load_cub200,
    "imagenet1k": load_imagenet1k,
}
