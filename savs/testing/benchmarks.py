"""Local stand-ins of every benchmark, in the layout its loader reads: the one writer behind ``make paper-dryrun``
and the tests' ``copies`` fixture.

``write_benchmark(task, root, scale)`` writes ``root/<task>`` with the hub's columns and split names (or the hub
repo's JSON + image files), and the authors' NaturalBench-Retrieval test file in their format under
``root/authors/``; point ``$SAVS_DATA`` at ``root`` and every loader reads these instead of the hub. The content is
one, the size is the ``scale``:

- ``"real"`` (the dry run: the paper's 25 tasks): the real split and class sizes as far as they are known
  (``REAL``; the unconfirmed ones say so). Only what a CPU cannot extract in a CI run is scaled down: the three
  classification sets with 100-1,000 classes keep their per-class sizes over their first ``BIG_CLASS_SETS``
  classes, and ImageNet's train split keeps ``IMAGENET_TRAIN_PER_CLASS`` images per class.
- ``"small"`` (the loader and golden-prompt tests: every registry benchmark): a few rows each (``SMALL``).

Images are 8x8 PNGs whose colour encodes an index that ``ImageIds`` hands out, so no two images share a
fingerprint; every third MHaluBench image is greyscale (loaders convert to RGB).

    python -m savs.testing.benchmarks --out /tmp/savs-paper-dryrun/data
"""

from __future__ import annotations

import argparse
import io
import json
import random
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from savs.data.benchmarks.retrieval import NBR_AUTHORS_TEST, SUGARCREPE_SUBSETS
from savs.data.benchmarks.vqa import BLINK_SUBTASKS, blink_name

BIG_CLASS_SETS = 20  # classes kept of Flowers102, CUB-200 and ImageNet-1k at the real scale
IMAGENET_TRAIN_PER_CLASS = 40  # of ~1,300

EUROSAT_NAMES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
                 "Residential", "River", "SeaLake"]  # fmt: skip
PETS_NAMES = ("Abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle Bengal Birman Bombay boxer "
              "British_Shorthair chihuahua Egyptian_Mau english_cocker_spaniel english_setter german_shorthaired "
              "great_pyrenees havanese japanese_chin keeshond leonberger Maine_Coon miniature_pinscher newfoundland "
              "Persian pomeranian pug Ragdoll Russian_Blue saint_bernard samoyed scottish_terrier shiba_inu Siamese "
              "Sphynx staffordshire_bull_terrier wheaten_terrier yorkshire_terrier").split()  # fmt: skip
CLASS_NAMES: dict[str, Callable[[int], list[str]]] = {  # task -> its first n class names (the hub's spelling)
    "eurosat": lambda n: EUROSAT_NAMES[:n],
    "oxford_pets": lambda n: PETS_NAMES[:n],
    "flowers102": lambda n: [f"flower {k}" for k in range(n)],
    "cub200": lambda n: ["001.Black_footed_Albatross", "002.Laysan_Albatross",
                         *(f"{k:03d}.Bird_{k}" for k in range(3, 201))][:n],  # fmt: skip
    # ImageNet's names repeat ("crane" the bird and the machine): the loader numbers them apart
    "imagenet1k": lambda n: ["tench, Tinca tinca", "crane", "crane, lifting device", "maillot", "maillot, tank suit",
                             *(f"class {k}, synonym" for k in range(5, 1000))][:n],  # fmt: skip
}
# BLINK's val per subtask: (images per item, choices) as the real items have them.
BLINK_ITEMS: dict[str, tuple[int, list[str]]] = {
    "Art_Style": (3, ["the second image", "the third image"]),
    "Counting": (1, ["0", "3", "2", "1"]),
    "Forensic_Detection": (4, ["the first image", "the second image", "the third image", "the fourth image"]),
    "Functional_Correspondence": (2, ["Point A", "Point B", "Point C", "Point D"]),
    "IQ_Test": (1, ["picture A", "picture B", "picture C", "picture D"]),
    "Jigsaw": (3, ["the second image", "the third image"]),
    "Multi-view_Reasoning": (2, ["left", "right"]),
    "Object_Localization": (1, ["Box A", "Box B"]),
    "Relative_Depth": (1, ["A is closer", "B is closer"]),
    "Relative_Reflectance": (1, ["A is darker", "B is darker", "About the same"]),
    "Semantic_Correspondence": (2, ["Point A", "Point B", "Point C", "Point D"]),
    "Spatial_Relation": (1, ["yes", "no"]),
    "Visual_Correspondence": (2, ["Point A", "Point B", "Point C", "Point D"]),
    "Visual_Similarity": (3, ["the second image", "the third image"]),
}
MHALU_FILES = {"val": "MHaluBench_val-v0.2.json", "train": "MHaluBench_train.json"}
MHALU_LABELS = ("hallucination", "non-hallucination", "Non-Hallucination")  # the files spell it both ways
VQA_ANSWERS = ["yes", "no", "2", "red", "dog"]


def _classes(classes: int, splits: dict[str, int], listed: int | None = None) -> dict[str, Any]:
    """A classification set's size: ``classes`` with images, ``listed`` class names (default: as many), and each
    split's image count (spread evenly over the classes)."""
    return {"classes": classes, "listed": listed or classes, "splits": splits}


def _cut(total: int, splits: dict[str, int]) -> dict[str, Any]:
    """A big class set of ``total`` classes cut to its first ``BIG_CLASS_SETS`` at its real per-class sizes."""
    return _classes(BIG_CLASS_SETS, {k: n * BIG_CLASS_SETS // total for k, n in splits.items()})


# Sizes of the real benchmarks: rows, or groups where noted; "unconfirmed" ones are best public knowledge.
REAL: dict[str, Any] = {
    # val: MHaluBench's 620 examples and 2,847 claims (its paper); train: estimated from the file sizes (2.63 MB vs
    # val's 639 kB), unconfirmed. (images, claims)
    "mhalubench": {"val": (620, 2847), "train": (2500, 11500)},
    "vlguard": {"train": (977, 1023), "test": (558, 442)},  # (safe, unsafe) images; unconfirmed
    **{blink_name(s): n for s, n in zip(BLINK_SUBTASKS, (117, 120, 132, 130, 150, 150, 133, 122, 124, 134, 139, 143,
                                                         172, 135), strict=True)},  # val items (1,901 in all)
    "vizwiz": {"val": 4319, "unanswerable_every": 4},  # unanswerable share unconfirmed
    "naturalbench": {"groups": 1900},  # 3 in 5 yes/no, 2 in 5 multiple choice: unconfirmed
    # 1,900 unconfirmed; the authors' file: 950 groups, 78 of them repeating an earlier group's images and captions
    "naturalbench_retrieval": {"groups": 1900, "authors_test": 950, "listed_twice": 78},
    "sugarcrepe": {"add_obj": 2062, "add_att": 692, "replace_obj": 1652, "replace_att": 788, "replace_rel": 1406,
                   "swap_obj": 246, "swap_att": 666},  # fmt: skip
    "eurosat": _classes(10, {"train": 16200, "validation": 5400, "test": 5400}),  # timm's; unconfirmed
    "oxford_pets": _classes(37, {"train": 3680, "test": 3669}),
    "flowers102": _cut(102, {"train": 1020, "test": 6149}),  # 10 train images per class
    "cub200": _cut(200, {"train": 5994, "test": 5794}),
    "imagenet1k": _classes(BIG_CLASS_SETS, {"train": IMAGENET_TRAIN_PER_CLASS * BIG_CLASS_SETS,
                                            "validation": 50 * BIG_CLASS_SETS}),  # 50 val images per class
}
# A few rows of each, for tests: 2 pool images and 1 test image for each of the first 10 classes.
SMALL: dict[str, Any] = {
    "mhalubench": {"val": (8, 20), "train": (8, 20)},
    "vlguard": {"train": (4, 4), "test": (4, 4)},
    **{blink_name(s): 8 for s in BLINK_SUBTASKS},
    "vizwiz": {"val": 12, "unanswerable_every": 3},
    "naturalbench": {"groups": 8},
    "naturalbench_retrieval": {"groups": 8, "authors_test": 4, "listed_twice": 0},
    "sugarcrepe": dict.fromkeys(SUGARCREPE_SUBSETS, 2),
    **{task: _classes(10, {"train": 20, split: 10}, listed) for task, split, listed in (
        ("eurosat", "test", 10), ("oxford_pets", "test", 37), ("flowers102", "test", 12), ("cub200", "test", 12),
        ("imagenet1k", "validation", 50))},  # fmt: skip
    "mme": 8,  # images, two questions each
    "vqav2": 40,  # questions, two per image
    "okvqa": 40,
}
SCALES = {"real": REAL, "small": SMALL}


class ImageIds:
    """Hands out image indices so every image of every task differs."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last += 1
        return self.last


def image(index: int, mode: str = "RGB") -> Image.Image:
    """An 8x8 image whose colour encodes ``index`` (distinct for the first 16.7M indices), in ``mode``."""
    colour = (index % 256, index // 256 % 256, index // 65536 % 256)
    return Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).convert(mode)


def png(index: int, mode: str = "RGB") -> bytes:
    """``image(index, mode)`` as PNG bytes."""
    buf = io.BytesIO()
    image(index, mode).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, index: int, mode: str = "RGB") -> None:
    """``image(index, mode)`` saved at ``path`` (parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(index, mode))


def image_cell(index: int) -> dict:
    """A ``datasets.Image`` cell of ``image(index)``."""
    return {"bytes": png(index), "path": None}


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal counts."""
    return [total // parts + (k < total % parts) for k in range(parts)]


def save_dict(out: Path, splits: dict[str, list[dict]], features: Any) -> Path:
    """``splits`` as a ``datasets.DatasetDict`` with ``features``, saved to ``out``."""
    import datasets

    data = {name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items()}
    datasets.DatasetDict(data).save_to_disk(str(out))
    return out


# --- one writer per benchmark: (out, size, ids) -------------------------------------------------------------------


def mhalubench(out: Path, size: dict, ids: ImageIds) -> None:
    """The repo layout: ``MHALU_FILES`` (image_path, claim_list, ref_claim_label, ...) and data/image-to-text/.
    Every fourth image is named by a COCO train2014 path on the annotators' disk and the one two after it by a
    TextVQA path, as the real files name theirs, and placed by file name (as ``python -m savs.data.mhalu_images``
    places them); the rest by repo paths. Claim ``j`` of image ``i`` reads "claim i.j." (its period kept)."""
    for split, (n_images, n_claims) in size.items():
        prefix = "" if split == "val" else f"{split}_"
        records = []
        for i, n in enumerate(spread(n_claims, n_images)):
            if i % 4 == 0:
                name, path = f"COCO_{prefix}{i}.jpg", "/data/coco2014/train2014/{}"
            elif i % 4 == 2:
                name, path = f"{prefix}{i:016x}.jpg", "/data/textvqa/train_images/{}"
            else:
                name, path = f"{prefix}{i}.png", "data/image-to-text/{}"
            write_png(out / "data" / "image-to-text" / name, ids(), "L" if i % 3 else "RGB")
            records.append({"image_path": path.format(name), "claim_list": [f"claim {i}.{j}." for j in range(n)],
                            "ref_claim_label": [MHALU_LABELS[j % 3] for j in range(n)], "ref_reason": [],
                            "ref_prompt": "describe"})  # fmt: skip
        (out / MHALU_FILES[split]).write_text(json.dumps(records))


def vlguard(out: Path, size: dict, ids: ImageIds) -> None:
    """train.json / test.json and the images: a safe image has a safe and an unsafe instruction ("describe i",
    "misuse i"), an unsafe one one ("harm i"), in a seeded order."""
    for split, (safe, unsafe) in size.items():
        flags = [True] * safe + [False] * unsafe
        random.Random(0).shuffle(flags)
        records = []
        for i, is_safe in enumerate(flags):
            name = f"bad_ads/{split}{i}.png"
            write_png(out / split / name, ids())
            if is_safe:
                pairs = [{"safe_instruction": f"describe {i}", "response": "ok"},
                         {"unsafe_instruction": f"misuse {i}", "response": "no"}]  # fmt: skip
                records.append({"id": f"{split}{i}", "image": name, "safe": True, "instr-resp": pairs})
            else:
                records.append({"id": f"{split}{i}", "image": name, "safe": False, "harmful_category": "privacy",
                                "harmful_subcategory": "personal data",
                                "instr-resp": [{"instruction": f"harm {i}", "response": "no"}]})  # fmt: skip
        (out / f"{split}.json").write_text(json.dumps(records))


def blink(out: Path, size: int, ids: ImageIds, subtask: str) -> None:
    """One subtask's ``val`` split (hub columns) with its real image count and choices ("Question i of
    <subtask>?"), answers spread evenly over the letters."""
    import datasets

    n_images, choices = BLINK_ITEMS[subtask]
    features = datasets.Features(
        {"idx": datasets.Value("string"), "question": datasets.Value("string"), "sub_task": datasets.Value("string"),
         **{f"image_{k}": datasets.Image() for k in (1, 2, 3, 4)},
         "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
         "prompt": datasets.Value("string"), "explanation": datasets.Value("string")}
    )  # fmt: skip
    options = "\n".join(f"({chr(65 + c)}) {t}" for c, t in enumerate(choices))
    rows = []
    for i in range(size):
        question = f"Question {i} of {subtask}?"
        rows.append({"idx": f"val_{subtask}_{i}", "question": question, "sub_task": subtask,
                     **{f"image_{k}": image_cell(ids()) if k <= n_images else None for k in (1, 2, 3, 4)},
                     "choices": choices, "answer": f"({chr(65 + i % len(choices))})",
                     "prompt": f"{question}\nSelect from the following choices.\n{options}",
                     "explanation": ""})  # fmt: skip
    save_dict(out, {"val": rows}, features)


def vizwiz(out: Path, size: dict, ids: ImageIds) -> None:
    """The ``val`` split: question_id, image, question ("what color i?"), ten answers, category; every
    ``unanswerable_every``-th question unanswerable by majority."""
    import datasets

    features = datasets.Features(
        {"question_id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
         "answers": datasets.Sequence(datasets.Value("string")), "category": datasets.Value("string")}
    )  # fmt: skip
    rows = []
    for i in range(size["val"]):
        unanswerable = i % size["unanswerable_every"] == 0
        answers = ["unanswerable"] * 6 + ["red"] * 4 if unanswerable else ["Red."] * 7 + ["unanswerable"] * 3
        rows.append({"question_id": f"VizWiz_val_{i:08d}.jpg", "image": image_cell(ids()),
                     "question": f"what color {i}?", "answers": answers, "category": "other"})  # fmt: skip
    save_dict(out, {"val": rows}, features)


def naturalbench(out: Path, size: dict, ids: ImageIds) -> None:
    """The ``train`` split (its only one): groups of two images x two questions; 3 groups in 5 yes/no, the others
    A/B."""
    import datasets

    text = ("Question_0", "Image_0_Question_0", "Image_1_Question_0", "Question_1", "Image_0_Question_1",
            "Image_1_Question_1", "Question_Type", "Source")  # fmt: skip
    features = datasets.Features({"Index": datasets.Value("int64"), "Image_0": datasets.Image(),
                                  "Image_1": datasets.Image(), **{c: datasets.Value("string") for c in text}})
    rows = []
    for i in range(size["groups"]):
        yes_no = i % 5 < 3
        a, b = ("Yes", "No") if yes_no else ("A", "B")
        rows.append({"Index": i, "Image_0": image_cell(ids()), "Image_1": image_cell(ids()),
                     "Question_0": f"Is it {i}?", "Image_0_Question_0": a, "Image_1_Question_0": b,
                     "Question_1": f"Is it not {i}?", "Image_0_Question_1": b, "Image_1_Question_1": a,
                     "Question_Type": "yes_no" if yes_no else "multiple_choice", "Source": "flickr"})  # fmt: skip
    save_dict(out, {"train": rows}, features)


def authors_test_file(path: Path, groups: Iterable[int]) -> Path:
    """A stand-in of the authors' fixed NaturalBench-Retrieval test file (their format, our captions) listing
    ``groups`` in order, one ``question_id`` each (a group listed twice gets two)."""
    rows = [{"image": f"/data/naturalbench/{i}_{k}.png", "question": f"Does this image show '{caption}'?",
             "question_id": q + 1, "label": "Yes" if k == c else "No"}
            for q, i in enumerate(groups) for c, caption in enumerate((f"a caption {i}", f"another caption {i}"))
            for k in (0, 1)]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def naturalbench_retrieval(out: Path, size: dict, ids: ImageIds) -> None:
    """metadata.json + images/, and the authors' test file (``authors_test_file``) in ``out/../authors/``: every
    other group up to ``authors_test``, ``listed_twice`` of them (seeded) listed a second time as the real file
    lists some."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(size["groups"]):
        for k in (0, 1):
            (out / "images" / f"{i}_{k}.png").write_bytes(png(ids()))
        records.append({"index": i, "image_0": f"{i}_0.png", "image_1": f"{i}_1.png",
                        "caption_0": f"a caption {i}", "caption_1": f"another caption {i}"})  # fmt: skip
    (out / "metadata.json").write_text(json.dumps(records))
    distinct = list(range(0, size["groups"], 2))[: size["authors_test"] - size["listed_twice"]]
    listed = distinct + random.Random(0).sample(distinct, size["listed_twice"])
    authors_test_file(out.parent / "authors" / NBR_AUTHORS_TEST, listed)


def sugarcrepe(out: Path, size: dict, ids: ImageIds) -> None:
    """One split per subset with HuggingFaceM4's columns (image, tested_labels, true_label), the true caption
    ("<subset> true i") first or second in turn."""
    import datasets

    data = {}
    for subset in SUGARCREPE_SUBSETS:
        positives = [f"{subset} true {i}" for i in range(size[subset])]
        features = datasets.Features({"image": datasets.Image(),
                                      "tested_labels": datasets.Sequence(datasets.Value("string")),
                                      "true_label": datasets.ClassLabel(names=positives)})  # fmt: skip
        rows = [{"image": image_cell(ids()), "tested_labels": [p, f"{subset} false {i}"][:: 1 - 2 * (i % 2)],
                 "true_label": i} for i, p in enumerate(positives)]  # fmt: skip
        data[subset] = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict(data).save_to_disk(str(out))


def classification(out: Path, size: dict, ids: ImageIds, task: str) -> None:
    """A DatasetDict (image, label ClassLabel of the first ``listed`` names): each split's images spread evenly
    over the first ``classes`` classes."""
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES[task](size["listed"]))}
    )
    rows = {split: [{"image": image_cell(ids()), "label": k} for k, m in enumerate(spread(n, size["classes"]))
                    for _ in range(m)] for split, n in size["splits"].items()}  # fmt: skip
    save_dict(out, rows, features)


def mme(out: Path, size: int, ids: ImageIds) -> None:
    """A DatasetDict ``test`` of MME pairs: two rows per image sharing ``question_id``, one "Yes", one "No"."""
    import datasets

    features = datasets.Features({c: datasets.Value("string") for c in ("question_id", "question", "answer",
                                                                        "category")} | {"image": datasets.Image()})
    rows = []
    for i in range(size):
        cell = image_cell(ids())
        rows += [{"question_id": f"count/{i:04d}.png", "image": cell, "answer": "Yes" if k == 0 else "No",
                  "question": f"Is there {k + 1} dog? Please answer yes or no.", "category": "count"}
                 for k in (0, 1)]  # fmt: skip
    save_dict(out, {"test": rows}, features)


def vqav2(out: Path, size: int, ids: ImageIds) -> None:
    """A DatasetDict ``validation`` with lmms-lab/VQAv2's columns, two questions per image, ten human answers."""
    import datasets

    answer = {"answer": datasets.Value("string"), "answer_confidence": datasets.Value("string"),
              "answer_id": datasets.Value("int64")}  # fmt: skip
    strings = ("question_type", "multiple_choice_answer", "answer_type", "question")
    features = datasets.Features({**{c: datasets.Value("string") for c in strings}, "answers": [answer],
                                  "image_id": datasets.Value("int64"), "question_id": datasets.Value("int64"),
                                  "image": datasets.Image()})  # fmt: skip
    cells = [image_cell(ids()) for _ in range((size + 1) // 2)]
    rows = []
    for q in range(size):
        gold = VQA_ANSWERS[q % 5] if q % 7 else "blue"
        humans = [gold] * 8 + ["other", "two"]
        rows.append({"question_type": "what", "multiple_choice_answer": gold.capitalize(),
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                 for j, a in enumerate(humans)],
                     "image_id": q // 2, "answer_type": "other", "question_id": q, "question": f"What is {q}?",
                     "image": cells[q // 2]})  # fmt: skip
    save_dict(out, {"validation": rows}, features)


def okvqa(out: Path, size: int, ids: ImageIds) -> None:
    """A DatasetDict ``val2014`` with lmms-lab/OK-VQA's columns (plain-string answers)."""
    import datasets

    strings = ("question_id", "question", "question_type", "answer_type")
    features = datasets.Features({**{c: datasets.Value("string") for c in strings}, "image": datasets.Image(),
                                  "answers": datasets.Sequence(datasets.Value("string"))})  # fmt: skip
    rows = [{"question_id": str(q), "image": image_cell(ids()), "question": f"What sport {q}?",
             "answers": [VQA_ANSWERS[q % 5]] * 6 + ["Two", "the dog", "x", "y"], "question_type": "other",
             "answer_type": "other"} for q in range(size)]  # fmt: skip
    save_dict(out, {"val2014": rows}, features)


WRITERS: dict[str, Callable[[Path, Any, ImageIds], None]] = {
    "mhalubench": mhalubench,
    "vlguard": vlguard,
    **{blink_name(s): partial(blink, subtask=s) for s in BLINK_SUBTASKS},
    "vizwiz": vizwiz,
    "naturalbench": naturalbench,
    "naturalbench_retrieval": naturalbench_retrieval,
    "sugarcrepe": sugarcrepe,
    **{task: partial(classification, task=task) for task in CLASS_NAMES},
    "mme": mme,
    "vqav2": vqav2,
    "okvqa": okvqa,
}


def write_benchmark(task: str, root: str | Path, scale: str = "small", ids: ImageIds | None = None) -> Path:
    """``task``'s stand-in at ``scale`` ("real" or "small") in ``root/<task>``, written unless a finished one is
    there; returns that folder. ``ids``: shared by the tasks of one root, so that their images all differ."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    if task not in WRITERS:
        raise ValueError(f"no stand-in of {task!r}; known: {', '.join(WRITERS)}")
    if task not in SCALES[scale]:
        raise ValueError(f"{task!r} has no {scale!r} size (the real scale covers the paper's tasks)")
    out = Path(root) / task
    if not (out / ".done").is_file():
        out.mkdir(parents=True, exist_ok=True)
        WRITERS[task](out, SCALES[scale][task], ids or ImageIds())
        (out / ".done").touch()
    return out


def write_benchmarks(
    root: str | Path, scale: str = "real", tasks: Iterable[str] | None = None, progress: Callable[[str], None] = print
) -> Path:
    """Every task's stand-in (default: each one ``scale`` has a size for) under ``root``; returns ``root``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    root, ids = Path(root), ImageIds()
    for task in SCALES[scale] if tasks is None else tasks:
        write_benchmark(task, root, scale, ids)
        progress(f"stand-in {task} written")
    return root


def main(argv: list[str] | None = None) -> None:
    """``python -m savs.testing.benchmarks --out DIR [--scale real|small] [TASK ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the stand-ins to ($SAVS_DATA)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="real")
    parser.add_argument("tasks", nargs="*", help="tasks to write (default: every one the scale has a size for)")
    args = parser.parse_args(argv)
    import datasets

    datasets.disable_progress_bars()
    write_benchmarks(args.out, args.scale, args.tasks or None)


if __name__ == "__main__":
    main()
