"""Local stand-ins of the paper's 25 benchmark tasks, for ``make paper-dryrun``: the paper profile's whole code path,
offline, without a GPU.

``write_fixtures(out)`` writes one copy per task under ``out/<task>`` in the layout its loader reads (the hub's
columns and split names, or the hub repo's JSON + image files), with the real split and class sizes as far as they
are known (``SIZES``; the unconfirmed ones say so) and tiny images, plus a stand-in for the authors' fixed
NaturalBench-Retrieval test file in their format (``out/authors/``). Point ``$SAVS_DATA`` at ``out`` and every
loader reads these instead of the hub. Only what a CPU cannot extract in a CI run is scaled down: the three
classification sets with 100-1,000 classes keep their per-class sizes over their first ``BIG_CLASS_SETS`` classes
(20 shots x 1,000 ImageNet classes is 20,000 forward passes per seed), and ImageNet's train split keeps
``IMAGENET_TRAIN_PER_CLASS`` images per class. Images are 8x8 PNGs whose colour encodes their row, so no two
examples share a fingerprint.

    python -m savs.dryrun --out /tmp/savs-dryrun/data
"""

from __future__ import annotations

import argparse
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from savs.data.benchmarks.retrieval import SUGARCREPE_SUBSETS
from savs.data.benchmarks.vqa import BLINK_SUBTASKS, blink_name

BIG_CLASS_SETS = 20  # classes kept of Flowers102, CUB-200 and ImageNet-1k
IMAGENET_TRAIN_PER_CLASS = 40  # of ~1,300

# Split sizes (rows, or groups where noted) of the real benchmarks; "unconfirmed" ones are best public knowledge.
SIZES = {
    # val: MHaluBench's 620 examples and 2,847 claims (its paper); train: estimated from the file sizes (2.63 MB vs
    # val's 639 kB), unconfirmed
    "mhalubench": {"val": (620, 2847), "train": (2500, 11500)},  # (images, claims)
    "vlguard": {"train": (977, 1023), "test": (558, 442)},  # (safe, unsafe) images; unconfirmed
    "blink_val": {  # BLINK val per subtask (sums to 1,901): (items, images per item, choices)
        "Art_Style": (117, 3, ["the second image", "the third image"]),
        "Counting": (120, 1, ["0", "3", "2", "1"]),
        "Forensic_Detection": (132, 4, ["the first image", "the second image", "the third image", "the fourth image"]),
        "Functional_Correspondence": (130, 2, ["Point A", "Point B", "Point C", "Point D"]),
        "IQ_Test": (150, 1, ["picture A", "picture B", "picture C", "picture D"]),
        "Jigsaw": (150, 3, ["the second image", "the third image"]),
        "Multi-view_Reasoning": (133, 2, ["left", "right"]),
        "Object_Localization": (122, 1, ["Box A", "Box B"]),
        "Relative_Depth": (124, 1, ["A is closer", "B is closer"]),
        "Relative_Reflectance": (134, 1, ["A is darker", "B is darker", "About the same"]),
        "Semantic_Correspondence": (139, 2, ["Point A", "Point B", "Point C", "Point D"]),
        "Spatial_Relation": (143, 1, ["yes", "no"]),
        "Visual_Correspondence": (172, 2, ["Point A", "Point B", "Point C", "Point D"]),
        "Visual_Similarity": (135, 3, ["the second image", "the third image"]),
    },
    "vizwiz": {"val": 4319, "unanswerable": 0.25},  # unanswerable share unconfirmed
    "naturalbench": {"groups": 1900, "yes_no": 0.6},  # type mix unconfirmed
    # 1,900 unconfirmed; the authors' file: 950 groups, 78 of them repeating an earlier group's images and captions
    "naturalbench_retrieval": {"groups": 1900, "authors_test": 950, "listed_twice": 78},
    "sugarcrepe": {"add_obj": 2062, "add_att": 692, "replace_obj": 1652, "replace_att": 788, "replace_rel": 1406,
                   "swap_obj": 246, "swap_att": 666},  # fmt: skip
    "eurosat": {"train": 16200, "validation": 5400, "test": 5400, "classes": 10},  # timm's splits; unconfirmed
    "oxford_pets": {"train": 3680, "test": 3669, "classes": 37},
    "flowers102": {"train": 1020, "test": 6149, "classes": 102},  # 10 train images per class
    "cub200": {"train": 5994, "test": 5794, "classes": 200},
    "imagenet1k": {"train": 1281167, "validation": 50000, "classes": 1000},
}
EUROSAT = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake"]  # fmt: skip
PETS = ("Abyssinian american_bulldog american_pit_bull_terrier basset_hound beagle Bengal Birman Bombay boxer "
        "British_Shorthair chihuahua Egyptian_Mau english_cocker_spaniel english_setter german_shorthaired "
        "great_pyrenees havanese japanese_chin keeshond leonberger Maine_Coon miniature_pinscher newfoundland Persian "
        "pomeranian pug Ragdoll Russian_Blue saint_bernard samoyed scottish_terrier shiba_inu Siamese Sphynx "
        "staffordshire_bull_terrier wheaten_terrier yorkshire_terrier").lower().split()  # fmt: skip


def png(index: int) -> bytes:
    """An 8x8 PNG whose colour encodes ``index`` (distinct for the first 16.7M indices)."""
    colour = (index % 256, index // 256 % 256, index // 65536 % 256)
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Counter:
    """Hands out image indices so every image of every task differs."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> int:
        self.next += 1
        return self.next


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal counts."""
    return [total // parts + (k < total % parts) for k in range(parts)]


def save_dict(out: Path, splits: dict[str, list[dict]], features: object) -> None:
    """``splits`` as a ``datasets.DatasetDict`` with ``features``, saved to ``out``."""
    import datasets

    data = {name: datasets.Dataset.from_list(rows, features=features) for name, rows in splits.items()}
    datasets.DatasetDict(data).save_to_disk(str(out))


def image_cell(index: int) -> dict:
    return {"bytes": png(index), "path": None}


# --- one writer per benchmark ---------------------------------------------------------------------------------


def mhalubench(out: Path, ids: Counter, rng: random.Random) -> None:
    """MHaluBench_train.json and MHaluBench_val-v0.2.json (image_path, claim_list, ref_claim_label) and the images in
    data/image-to-text/: val's named by repo paths, train's by COCO train2014 / TextVQA paths on the annotators' disk,
    placed by file name as ``python -m savs.data.mhalu_images`` places them."""
    (out / "data" / "image-to-text").mkdir(parents=True, exist_ok=True)
    for split, (n_images, n_claims) in SIZES["mhalubench"].items():
        records = []
        for i, n in enumerate(spread(n_claims, n_images)):
            if split == "val":
                name = f"{i:05d}.png"
                path = f"data/image-to-text/{name}"
            else:  # the train file's own paths (the authors' few-shot file names the same kind)
                name = f"COCO_train2014_{i:012d}.jpg" if i % 2 else f"{i:016x}.jpg"
                path = f"/data/coco2014/train2014/{name}" if i % 2 else f"/data/textvqa/train_images/{name}"
            (out / "data" / "image-to-text" / name).write_bytes(png(ids()))
            labels = [rng.choice(["hallucination", "non-hallucination"]) for _ in range(n)]
            records.append({"image_path": path, "claim_list": [f"Claim {i}.{j} about the image" for j in range(n)],
                            "ref_claim_label": labels})  # fmt: skip
        (out / f"MHaluBench_{'val-v0.2' if split == 'val' else split}.json").write_text(json.dumps(records))


def vlguard(out: Path, ids: Counter, rng: random.Random) -> None:
    """train.json / test.json and the images: a safe image has a safe and an unsafe instruction, an unsafe one one."""
    for split, (safe, unsafe) in SIZES["vlguard"].items():
        records = []
        for i in range(safe + unsafe):
            name = f"{split}/img/{i:05d}.png"
            (out / split / "img").mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(png(ids()))
            if i < safe:
                pairs = [{"safe_instruction": f"Describe image {i}.", "response": "..."},
                         {"unsafe_instruction": f"Misuse image {i}.", "response": "..."}]  # fmt: skip
            else:
                pairs = [{"instruction": f"Harmful request about image {i}.", "response": "..."}]
            records.append({"id": f"{split}{i}", "image": name.split("/", 1)[1], "safe": i < safe, "instr-resp": pairs})
        rng.shuffle(records)
        (out / f"{split}.json").write_text(json.dumps(records))


def blink(out: Path, ids: Counter, subtask: str) -> None:
    """One subtask's ``val`` split (hub columns), answers spread evenly over the letters."""
    import datasets

    n, n_images, choices = SIZES["blink_val"][subtask]
    features = datasets.Features(
        {"idx": datasets.Value("string"), "question": datasets.Value("string"), "sub_task": datasets.Value("string"),
         **{f"image_{k}": datasets.Image() for k in (1, 2, 3, 4)},
         "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
         "prompt": datasets.Value("string"), "explanation": datasets.Value("string")}
    )  # fmt: skip
    rows = []
    for i in range(n):
        question = f"Question {i} of {subtask}?"
        options = "\n".join(f"({chr(65 + c)}) {t}" for c, t in enumerate(choices))
        rows.append({"idx": f"val_{subtask}_{i}", "question": question, "sub_task": subtask,
                     **{f"image_{k}": image_cell(ids()) if k <= n_images else None for k in (1, 2, 3, 4)},
                     "choices": choices, "answer": f"({chr(65 + i % len(choices))})",
                     "prompt": f"{question}\nSelect from the following choices.\n{options}",
                     "explanation": ""})  # fmt: skip
    save_dict(out, {"val": rows}, features)


def vizwiz(out: Path, ids: Counter, rng: random.Random) -> None:
    """The ``val`` split: question_id, image, question, ten answers, category."""
    import datasets

    features = datasets.Features(
        {"question_id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
         "answers": datasets.Sequence(datasets.Value("string")), "category": datasets.Value("string")}
    )  # fmt: skip
    size = SIZES["vizwiz"]
    rows = []
    for i in range(size["val"]):
        unanswerable = rng.random() < size["unanswerable"]
        answers = ["unanswerable"] * 7 + ["red"] * 3 if unanswerable else ["red"] * 8 + ["unanswerable"] * 2
        rows.append({"question_id": f"VizWiz_val_{i:08d}.jpg", "image": image_cell(ids()),
                     "question": f"What colour is thing {i}?", "answers": answers, "category": "other"})  # fmt: skip
    save_dict(out, {"val": rows}, features)


def naturalbench(out: Path, ids: Counter, rng: random.Random) -> None:
    """The ``train`` split (its only one): groups of two images x two questions, yes/no or A/B answers."""
    import datasets

    text = ("Question_0", "Image_0_Question_0", "Image_1_Question_0", "Question_1", "Image_0_Question_1",
            "Image_1_Question_1", "Question_Type", "Source")  # fmt: skip
    features = datasets.Features({"Index": datasets.Value("int64"), "Image_0": datasets.Image(),
                                  "Image_1": datasets.Image(), **{c: datasets.Value("string") for c in text}})
    size = SIZES["naturalbench"]
    rows = []
    for i in range(size["groups"]):
        yes_no = rng.random() < size["yes_no"]
        a, b = ("Yes", "No") if yes_no else ("A", "B")
        rows.append({"Index": i, "Image_0": image_cell(ids()), "Image_1": image_cell(ids()),
                     "Question_0": f"Is there thing {i}?", "Image_0_Question_0": a, "Image_1_Question_0": b,
                     "Question_1": f"Is there no thing {i}?", "Image_0_Question_1": b, "Image_1_Question_1": a,
                     "Question_Type": "yes_no" if yes_no else "multiple_choice", "Source": "stand-in"})  # fmt: skip
    save_dict(out, {"train": rows}, features)


def naturalbench_retrieval(out: Path, ids: Counter, authors: Path, rng: random.Random) -> None:
    """metadata.json + images/, and a stand-in of the authors' fixed test file (their format) naming about half the
    groups, some of them twice under a second ``question_id`` as the real file does."""
    size = SIZES["naturalbench_retrieval"]
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(size["groups"]):
        names = [f"nb_{i:05d}_{k}.png" for k in (0, 1)]
        for name in names:
            (out / "images" / name).write_bytes(png(ids()))
        records.append({"index": i, "image_0": names[0], "image_1": names[1], "caption_0": f"A scene {i} seen one way.",
                        "caption_1": f"A scene {i} seen another way."})  # fmt: skip
    distinct = rng.sample(range(size["groups"]), size["authors_test"] - size["listed_twice"])
    listed = distinct + rng.sample(distinct, size["listed_twice"])
    rows = [{"image": f"/data/naturalbench/{records[i][f'image_{k}']}",
             "question": f"Does this image show '{records[i][f'caption_{c}']}'?", "question_id": q + 1,
             "label": "Yes" if k == c else "No"}
            for q, i in enumerate(listed) for c in (0, 1) for k in (0, 1)]  # fmt: skip
    (out / "metadata.json").write_text(json.dumps(records))
    authors.mkdir(parents=True, exist_ok=True)
    (authors / "naturalbench_ret_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def sugarcrepe(out: Path, ids: Counter) -> None:
    """One split per subset with HuggingFaceM4's columns (image, tested_labels, true_label)."""
    import datasets

    data = {}
    for subset in SUGARCREPE_SUBSETS:
        n = SIZES["sugarcrepe"][subset]
        positives = [f"{subset} caption {i}" for i in range(n)]
        features = datasets.Features({"image": datasets.Image(),
                                      "tested_labels": datasets.Sequence(datasets.Value("string")),
                                      "true_label": datasets.ClassLabel(names=positives)})  # fmt: skip
        pairs = [[positives[i], f"{subset} negative {i}"][:: 1 - 2 * (i % 2)] for i in range(n)]  # true one 1st or 2nd
        rows = [{"image": image_cell(ids()), "tested_labels": pair, "true_label": i} for i, pair in enumerate(pairs)]
        data[subset] = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict(data).save_to_disk(str(out))


def classification(out: Path, ids: Counter, names: list[str], splits: dict[str, int]) -> None:
    """A DatasetDict (image, label ClassLabel) with ``splits[name]`` images per class, spread evenly."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    rows = {split: [{"image": image_cell(ids()), "label": k} for k, m in enumerate(spread(n, len(names)))
                    for _ in range(m)] for split, n in splits.items()}  # fmt: skip
    save_dict(out, rows, features)


def _classification_sets() -> Iterator[tuple[str, list[str], dict[str, int]]]:
    """(task, class names, images per split) of the classification stand-ins, big class sets cut to their first
    ``BIG_CLASS_SETS`` classes at their real per-class sizes."""
    s = SIZES
    yield "eurosat", EUROSAT, {k: s["eurosat"][k] for k in ("train", "validation", "test")}
    yield "oxford_pets", PETS, {k: s["oxford_pets"][k] for k in ("train", "test")}
    for task, splits in (("flowers102", ("train", "test")), ("cub200", ("train", "test"))):
        names = [f"{task} class {k}" for k in range(BIG_CLASS_SETS)]
        yield task, names, {k: s[task][k] * BIG_CLASS_SETS // s[task]["classes"] for k in splits}
    names = [f"imagenet class {k}, synonym" for k in range(BIG_CLASS_SETS)]
    per_val = s["imagenet1k"]["validation"] // s["imagenet1k"]["classes"]
    yield "imagenet1k", names, {"train": IMAGENET_TRAIN_PER_CLASS * BIG_CLASS_SETS, "validation": per_val * len(names)}


def write_fixtures(out: str | Path, seed: int = 0, progress: Callable[[str], None] = print) -> Path:
    """Write every paper task's stand-in under ``out/<task>`` (and ``out/authors/``); returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids, rng = Counter(), random.Random(seed)
    writers: list[tuple[str, Callable[[Path], None]]] = [
        ("mhalubench", lambda p: mhalubench(p, ids, rng)),
        ("vlguard", lambda p: vlguard(p, ids, rng)),
        *((blink_name(s), lambda p, s=s: blink(p, ids, s)) for s in BLINK_SUBTASKS),
        ("vizwiz", lambda p: vizwiz(p, ids, rng)),
        ("naturalbench", lambda p: naturalbench(p, ids, rng)),
        ("naturalbench_retrieval", lambda p: naturalbench_retrieval(p, ids, out / "authors", rng)),
        ("sugarcrepe", lambda p: sugarcrepe(p, ids)),
        *((task, lambda p, n=names, sp=splits: classification(p, ids, n, sp)) for task, names, splits in
          _classification_sets()),
    ]  # fmt: skip
    for task, write in writers:
        if (out / task / ".done").is_file():
            continue
        (out / task).mkdir(parents=True, exist_ok=True)
        write(out / task)
        (out / task / ".done").touch()
        progress(f"fixture {task} written")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the stand-ins to ($SAVS_DATA)")
    args = parser.parse_args(argv)
    import datasets

    datasets.disable_progress_bars()
    write_fixtures(args.out)


if __name__ == "__main__":
    main()
