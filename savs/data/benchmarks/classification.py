"""The paper's image classification benchmarks as multiple-choice prompts: EuroSAT, Oxford-IIIT Pets, Flowers102,
CUB-200 and ImageNet-1k. SAVs always classify among every class; the prompt only shows a few.

``protocol="authors"`` (the paper's released code, their EuroSAT and Pets formatters and few-shot files): four
options, the true class among three others drawn at random, lettered::

    <image>\\nWhat type of remote sensing image does the given image belong to?\\nA. Pasture B. SeaLake
    C. HerbaceousVegetation D. AnnualCrop Answer with the class name.

The options are drawn from the example's uid, so a prompt never changes between runs or seeds. Labels are the
authors' class names: EuroSAT's CamelCase folder names, Pets' 35 first words of the image file names (cats
capitalised; "american" and "english" each merge two breeds). Flowers, CUB and ImageNet had no released
formatter; they get the same form with a question in the same style (the paper's CLIP rows only make sense for a
few options).

``protocol="savs"``: "... Options: a, b, c. Answer with the class name.", listing every class when the set has
at most ``MAX_OPTIONS`` (40), else the true class plus ``MAX_OPTIONS - 1`` distractors in class order.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from savs.data.benchmarks._common import Part, Row, Source, build, check_protocol, ordered_groups, rgb, tables
from savs.data.prompts import classification_prompt, image_markers
from savs.examples import Example, Task

if TYPE_CHECKING:
    import datasets

MAX_OPTIONS = 40
AUTHORS_OPTIONS = 4
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Oxford-IIIT Pet's cat breeds: their image files are capitalised ("Abyssinian_201.jpg"), the dogs' are not.
PET_CATS = {"abyssinian", "bengal", "birman", "bombay", "british", "egyptian", "maine", "persian", "ragdoll",
            "russian", "siamese", "sphynx"}  # fmt: skip


def tidy(name: str) -> str:
    """A hub class name as a model would say it: no "001." prefix, spaces for "_", its first synonym."""
    return re.sub(r"^\d+\.", "", name).replace("_", " ").split(",")[0].strip()


def split_camel(name: str) -> str:
    """ "AnnualCrop" -> "Annual Crop" (EuroSAT's names)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)


def class_names(names: Sequence[str], rename: Callable[[str], str]) -> tuple[str, ...]:
    """The renamed class names; a name two classes share gets its class index, e.g. "crane (134)"."""
    renamed = [rename(n) for n in names]
    counts = Counter(renamed)
    return tuple(n if counts[n] == 1 else f"{n} ({k})" for k, n in enumerate(renamed))


def pet_first_words(names: Sequence[str]) -> tuple[str, ...]:
    """Oxford-IIIT Pet labels as the authors named them: the first word of the image file name, so two pairs of
    breeds merge ("american_bulldog", "american_pit_bull_terrier" -> "american") and 37 classes become 35."""
    first = [re.split(r"[_ ]", n.strip())[0].lower() for n in names]
    return tuple(w.capitalize() if w in PET_CATS else w for w in first)


@dataclass(frozen=True)
class ClassSet:
    """A classification benchmark: registry name, hub source (label column ``label``), and per protocol its
    question and class naming (``authors_labels`` maps the hub's class names, in order, to one label each)."""

    name: str
    title: str
    source: Source
    question: str
    authors_question: str
    rename: Callable[[str], str] = tidy
    authors_labels: Callable[[Sequence[str]], tuple[str, ...]] = lambda names: class_names(names, tidy)


def savs_options(labels: tuple[str, ...], gold: str, max_options: int | None, uid: str) -> tuple[str, ...]:
    """Our protocol's options: all classes, or ``gold`` plus distractors drawn from ``uid``, in class order."""
    if max_options is None or len(labels) <= max_options:
        return labels
    if max_options < 2:
        raise ValueError(f"max_options must be >= 2 or None, got {max_options}")
    drawn = set(random.Random(uid).sample([lab for lab in labels if lab != gold], max_options - 1))
    return tuple(lab for lab in labels if lab == gold or lab in drawn)


def authors_options(labels: tuple[str, ...], gold: str, uid: str, n: int = AUTHORS_OPTIONS) -> tuple[str, ...]:
    """The authors' options: ``gold`` and ``n - 1`` other classes drawn at random (from ``uid``), in random order."""
    rng = random.Random(uid)
    shown = [gold, *rng.sample([lab for lab in labels if lab != gold], min(n, len(labels)) - 1)]
    rng.shuffle(shown)
    return tuple(shown)


def authors_prompt(question: str, shown: Sequence[str]) -> str:
    """``<image>\\n{question}\\nA. x B. y C. z D. w Answer with the class name.``"""
    lettered = " ".join(f"{LETTERS[k]}. {lab}" for k, lab in enumerate(shown))
    return f"{image_markers(1)}{question}\n{lettered} Answer with the class name."


def top_up(pool: Part, test: Part, min_per_class: int, seed: int) -> tuple[Part, Part]:
    """Move test images of any class with fewer than ``min_per_class`` pool images into the pool (the first ones of
    the test's seeded order), so every class can give its few-shot sets; the test set loses just those. The new
    pool is the pool's own rows plus the moved ones: where pool and test share one table (no train split), the
    test's other rows stay out of it."""
    import datasets

    pool_labels = pool.table["label"]
    have = Counter(pool_labels[g[0]] for g in pool.groups)
    need = {c: min_per_class - have.get(c, 0) for c in set(test.table["label"])}
    test_labels = test.table["label"]
    moved, kept = [], []
    for g in test.groups:
        c = test_labels[g[0]]
        if need.get(c, 0) > 0:
            moved.append(g)
            need[c] -= 1
        else:
            kept.append(g)
    if not moved:
        return pool, test
    columns = ["image", "label"]
    own = pool.table.select(sorted(i for g in pool.groups for i in g))  # table order: a whole train split is as is
    table = datasets.concatenate_datasets(
        [own.select_columns(columns), test.table.select([i for g in moved for i in g]).select_columns(columns)]
    )
    return Part(table, ordered_groups(table, seed, stratum="label")), Part(test.table, kept)


def load_classification(
    spec: ClassSet,
    split: str,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    source: str | Path | None,
    protocol: str = "authors",
    max_options: int | None = MAX_OPTIONS,
    pool_min_per_class: int | None = None,
) -> Task:
    """Shared loader (each ``load_<benchmark>`` passes its keyword arguments here): pool from the train split,
    ``split`` as test, both taking the classes in turn. ``protocol``: "authors" or "savs" (module docstring);
    ``max_options``: how many classes a "savs" prompt lists; ``pool_min_per_class``: top the pool up from
    ``split`` where a class has fewer images than that."""
    check_protocol(protocol)
    train_table, test_table = tables(spec.source, split, source)
    hub_names = _label_names(spec, train_table, test_table, split)
    names = spec.authors_labels(hub_names) if protocol == "authors" else class_names(hub_names, spec.rename)
    labels = tuple(dict.fromkeys(names))  # merged names (the authors' Pets) count once
    prompts: dict[tuple[str, ...], str] = {}

    def convert(row: Row, prefix: str) -> list[Example]:
        gold = names[row["label"]]
        if protocol == "authors":
            shown = authors_options(labels, gold, prefix)
            make = lambda: authors_prompt(spec.authors_question, shown)  # noqa: E731
        else:
            shown = savs_options(labels, gold, max_options, prefix)
            make = lambda: classification_prompt(spec.question, shown)  # noqa: E731
        if shown not in prompts:
            prompts[shown] = make()
        meta = {"options": list(shown)}  # what the prompt offers (a contrastive model chooses among the same)
        return [Example(text=prompts[shown], label=gold, images=(rgb(row["image"]),), uid=prefix, meta=meta)]

    def parts(pool: Part, test: Part) -> tuple[Part, Part]:
        return top_up(pool, test, pool_min_per_class, seed) if pool_min_per_class else (pool, test)

    repo = spec.source.test_repo or spec.source.repo
    return build(
        spec.name,
        labels,
        train_table,
        test_table,
        convert,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"{spec.title} ({repo} {split}), {len(labels)} classes, {protocol} prompts",
        stratum="label",
        adjust=parts,
    )


def _label_names(
    spec: ClassSet, train: datasets.Dataset | None, test: datasets.Dataset, split: str
) -> tuple[str, ...]:
    """The hub class names (column ``label`` must be a ClassLabel; both splits must name classes alike). No train
    table (a local single Dataset): the test table's names."""
    found = []
    for table in (train or test, test):
        feature = table.features["label"]
        if not hasattr(feature, "names"):
            raise ValueError(f"{spec.name}: column 'label' must be a ClassLabel with class names, not {feature}")
        found.append(tuple(feature.names))
    if found[0] != found[1]:
        raise ValueError(f"{spec.name}: the train and {split!r} splits name their classes differently")
    return found[1]


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
    "What type of remote sensing image does the given image belong to?",
    split_camel,
    authors_labels=tuple,
)
PETS = ClassSet(
    "oxford_pets",
    "Oxford-IIIT Pet breeds (CC BY-SA 4.0)",
    Source("timm/oxford-iiit-pet", columns=("image", "label"), train_split="train"),
    "What breed of cat or dog is shown in this image?",
    "What type of animal is in the image?",
    authors_labels=pet_first_words,
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
    "What type of flower is in the image?",
)
CUB = ClassSet(
    "cub200",
    "CUB-200-2011 bird species",
    Source("bentrevett/caltech-ucsd-birds-200-2011", columns=("image", "label"), train_split="train"),
    "What species of bird is shown in this image?",
    "What type of bird is in the image?",
)
IMAGENET = ClassSet(
    "imagenet1k",
    "ImageNet-1k (ILSVRC 2012, non-commercial research licence)",
    Source("ILSVRC/imagenet-1k", columns=("image", "label"), train_split="train", how_to=IMAGENET_HOW_TO),
    "What object is shown in this image?",
    "What type of object is in the image?",
)


def load_eurosat(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    **kwargs,
) -> Task:
    """EuroSAT RGB (Helber et al. 2019), 10 land-cover classes ("AnnualCrop" ... "SeaLake"; ours: "Annual Crop").

    Hub: ``timm/eurosat-rgb`` (no config), splits ``train`` (pool) / ``validation`` / ``test``, columns
    ``image``, ``label`` (ClassLabel AnnualCrop ... SeaLake), ``image_id``; confirmed from the dataset card.
    ``n_train``/``n_test`` count images, classes taken in turn; keyword arguments: ``load_classification``.
    Authors' question: "What type of remote sensing
    image does the given image belong to?"
    """
    return load_classification(EUROSAT, split, n_train, n_test, seed, source, **kwargs)


def load_oxford_pets(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    **kwargs,
) -> Task:
    """Oxford-IIIT Pet (Parkhi et al. 2012): the authors' 35 labels ("Abyssinian", "american", ...) or the 37
    breeds ("abyssinian", "american bulldog", ...).

    Hub: ``timm/oxford-iiit-pet`` (no config), splits ``train`` (pool) / ``test``, columns ``image``,
    ``label`` (ClassLabel abyssinian ... yorkshire_terrier), ``image_id``, ``label_cat_dog``; confirmed from
    the card. Authors' question: "What type of animal is in the image?"
    """
    return load_classification(PETS, split, n_train, n_test, seed, source, **kwargs)


def load_flowers102(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    **kwargs,
) -> Task:
    """Oxford Flowers102 (Nilsback & Zisserman 2008), 102 flower species ("pink primrose", ...).

    Hub: two repos, ``Multimodal-Fatima/OxfordFlowers_train`` split ``train`` (pool) and
    ``Multimodal-Fatima/OxfordFlowers_test`` split ``test`` (6,149 images), columns ``image``, ``label``
    (ClassLabel with the flower names); confirmed from the train repo's card, the test repo's columns are
    unconfirmed (same builder). Flowers102's standard train split has 10 images per class, fewer than 20 shots:
    ``pool_min_per_class`` tops the pool up from the test split (the paper profile asks for it). A local
    ``source`` is one DatasetDict with ``train`` and ``test``.
    """
    return load_classification(FLOWERS, split, n_train, n_test, seed, source, **kwargs)


def load_cub200(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    **kwargs,
) -> Task:
    """CUB-200-2011 (Wah et al. 2011), 200 bird species ("Black footed Albatross", ...).

    Hub: ``bentrevett/caltech-ucsd-birds-200-2011`` (no config), splits ``train`` (pool) / ``test``, columns
    ``image``, ``label`` (ClassLabel "001.Black_footed_Albatross" ...; the number and "_" are dropped),
    ``bbox``; confirmed from the dataset card.
    """
    return load_classification(CUB, split, n_train, n_test, seed, source, **kwargs)


def load_imagenet1k(
    split: str = "validation",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    **kwargs,
) -> Task:
    """ImageNet-1k (ILSVRC 2012), 1,000 classes named by their first synonym ("tench", ...).

    A first synonym two classes share (e.g. "crane") gets each class's index appended. Hub:
    ``ILSVRC/imagenet-1k`` (gated: accept the licence on the hub and log in), splits ``train`` (pool) /
    ``validation`` (``test`` has no labels), columns ``image``, ``label`` (ClassLabel "tench, Tinca tinca",
    ...); column names unconfirmed here (standard for this repo). Use ``n_train`` to keep the pool small: it
    takes the classes in turn, so ``n_train=60000`` gives 60 per class (images are read lazily either way).
    """
    return load_classification(IMAGENET, split, n_train, n_test, seed, source, **kwargs)


CLASSIFICATION_LOADERS = {
    "eurosat": load_eurosat,
    "oxford_pets": load_oxford_pets,
    "flowers102": load_flowers102,
    "cub200": load_cub200,
    "imagenet1k": load_imagenet1k,
}
