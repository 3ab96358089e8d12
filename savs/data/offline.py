"""The offline task suite: small image tasks from locally installed data, so everything runs without a hub.

Every loader takes ``n_train``/``n_test`` (None: the whole split; else a seeded subset whose class counts
differ by at most one where the data allow) and ``seed``; it decodes only the images it returns and caches
nothing on disk. A missing data source raises an error saying how to install it.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from savs.data.prompts import YES_NO_LABELS, classification_prompt, yes_no_prompt
from savs.examples import Example, Task

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "SAVS_FASHION_MNIST_DIR"
FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
EASY_VQA_LABELS: dict[str, tuple[str, ...]] = {
    "yesno": YES_NO_LABELS,
    "shape": ("circle", "rectangle", "triangle"),
    "color": ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow"),
}
DIGITS_LABELS = tuple(str(d) for d in range(10))


def _subset(labels: Sequence[Hashable], n: int | None, seed: int) -> list[int]:
    """Sorted indices of ``n`` items (all if None or more) drawn with ``seed``, classes taken in turn."""
    if n is None:
        return list(range(len(labels)))
    if n < 0:
        raise ValueError(f"subset size must be >= 0 or None, got {n}")
    order = np.random.default_rng(seed).permutation(len(labels))
    seen: dict[Hashable, int] = {}
    rank = []  # rank[j]: how many of order[j]'s class come before it in the shuffle
    for i in order:
        rank.append(seen.get(labels[i], 0))
        seen[labels[i]] = rank[-1] + 1
    return sorted(order[np.argsort(rank, kind="stable")[:n]].tolist())


def _sizes(train: list[Example], test: list[Example], n_train_all: int, n_test_all: int) -> str:
    """The description's size clause: loaded and full split sizes."""
    return f"{len(train)} of {n_train_all} train, {len(test)} of {n_test_all} test examples"


def _read_image(path: str | Path) -> Image.Image:
    """An image file as RGB; an unreadable file raises a ValueError naming it (not a bare PIL error)."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


# --- Fashion-MNIST -------------------------------------------------------------------------------


def _fashion_mnist_file(name: str) -> Path:
    """Path of a Fashion-MNIST file in $SAVS_FASHION_MNIST_DIR or the Debian location, or an install hint."""
    root = Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {root} (no {name}): install it with "
            f"`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or download the four *-ubyte.gz "
            f"files from https://github.com/zalandoresearch/fashion-mnist and set {FASHION_MNIST_ENV}=<dir>"
        )
    return path


def _read_idx(path: Path) -> np.ndarray:
    """The uint8 array in a gzipped IDX file, checked against its header so a corrupt file fails loudly."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable gzip file ({e}); reinstall the dataset") from e
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim  # 8 for labels, 16 for images
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but {len(data) - offset} bytes follow")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _fashion_mnist_split(split: str, prefix: str, n: int | None, seed: int) -> tuple[list[Example], int]:
    """A seeded subset of one Fashion-MNIST split (images decoded only for it), and the split's full size."""
    labels_file = _fashion_mnist_file(f"{prefix}-labels-idx1-ubyte.gz")
    labels = _read_idx(labels_file)
    images = _read_idx(_fashion_mnist_file(f"{prefix}-images-idx3-ubyte.gz"))
    if len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
    bad = np.flatnonzero(labels >= len(FASHION_MNIST_LABELS))
    if len(bad):
        raise ValueError(
            f"{labels_file}: label byte {labels[bad[0]]} at index {bad[0]} is not a class (0-9; {len(bad)} such "
            "bytes): the file is corrupt, reinstall the dataset"
        )
    text = classification_prompt("What type of clothing is this?", FASHION_MNIST_LABELS)
    examples = [
        Example(
            text=text,
            label=FASHION_MNIST_LABELS[labels[i]],
            images=(Image.fromarray(images[i]).convert("RGB"),),
            uid=f"fashion_mnist/{split}/{i}",
            meta={"index": i},
        )
        for i in _subset(labels.tolist(), n, seed)
    ]
    return examples, len(labels)


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Task:
    """Fashion-MNIST: 10 clothing classes, 28x28 grayscale images as RGB; train and t10k splits."""
    train, n_train_all = _fashion_mnist_split("train", "train", n_train, seed)
    test, n_test_all = _fashion_mnist_split("test", "t10k", n_test, seed)
    return Task(
        name="fashion_mnist",
        labels=FASHION_MNIST_LABELS,
        train=train,
        test=test,
        description="Fashion-MNIST (Zalando Research, MIT licence; Debian dataset-fashion-mnist), "
        f"28x28 grayscale as RGB: {_sizes(train, test, n_train_all, n_test_all)}",
    )


# --- easy-VQA ------------------------------------------------------------------------------------


def _easy_vqa_split(kind: str, split: str, n: int | None, seed: int) -> tuple[list[Example], int]:
    """A seeded subset of the ``kind`` questions of one easy-VQA split, and how many such questions it has."""
    try:
        import easy_vqa
    except ImportError as e:
        raise ModuleNotFoundError(
            "easy-VQA not found: install it with `pip install easy-vqa==1.0` (or `pip install 'savs[mini]'`)"
        ) from e
    texts, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    labels = EASY_VQA_LABELS[kind]
    to_label = {lab.lower(): lab for lab in labels}  # the data's answers are lower case
    keep = [i for i, a in enumerate(answers) if a in to_label]
    picked = [keep[j] for j in _subset([answers[i] for i in keep], n, seed)]
    images: dict[int, Image.Image] = {}  # questions about one image share its decoded copy
    examples = []
    for i in picked:
        image_id = image_ids[i]
        if image_id not in paths:
            raise FileNotFoundError(f"easy-VQA {split} image {image_id}.png (question {i}) is missing")
        if image_id not in images:
            images[image_id] = _read_image(paths[image_id])
        question = texts[i][:1].upper() + texts[i][1:]
        text = yes_no_prompt(question) if kind == "yesno" else classification_prompt(question, labels)
        examples.append(
            Example(
                text=text,
                label=to_label[answers[i]],
                images=(images[image_id],),
                uid=f"easy_vqa_{kind}/{split}/{i}",
                meta={"index": i, "image_id": image_id},
            )
        )
    return examples, len(keep)


def load_easy_vqa(kind: str, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Task:
    """easy-VQA questions whose answer is a ``kind`` ("yesno", "shape" or "color") on 64x64 shape images."""
    if kind not in EASY_VQA_LABELS:
        raise ValueError(f"unknown easy-VQA kind {kind!r}; known: {', '.join(EASY_VQA_LABELS)}")
    train, n_train_all = _easy_vqa_split(kind, "train", n_train, seed)
    test, n_test_all = _easy_vqa_split(kind, "test", n_test, seed)
    return Task(
        name=f"easy_vqa_{kind}",
        labels=EASY_VQA_LABELS[kind],
        train=train,
        test=test,
        description=f"easy-VQA {kind} questions (Victor Zhou, MIT licence; PyPI easy-vqa), 64x64 synthetic "
        f"shapes: {_sizes(train, test, n_train_all, n_test_all)}",
    )


# --- scikit-learn digits -------------------------------------------------------------------------


def load_digits(n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Task:
    """scikit-learn's 8x8 digits as 32x32 RGB; a fixed stratified 50/50 split (seed 0), as it has none."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    target = digits.target
    halves = train_test_split(np.arange(len(target)), test_size=0.5, stratify=target, random_state=0)
    pools = [np.sort(half) for half in halves]
    text = classification_prompt("What digit is shown in this image?", DIGITS_LABELS)
    splits = []
    for split, pool, n in zip(("train", "test"), pools, (n_train, n_test), strict=True):
        splits.append(
            [
                Example(
                    text=text,
                    label=DIGITS_LABELS[target[i]],
                    images=(_digit_image(digits.images[i]),),
                    uid=f"digits/{split}/{i}",  # index into load_digits(), shared by both splits
                    meta={"index": int(i)},
                )
                for i in pool[_subset(target[pool].tolist(), n, seed)]
            ]
        )
    train, test = splits
    return Task(
        name="digits",
        labels=DIGITS_LABELS,
        train=train,
        test=test,
        description="scikit-learn digits (UCI handwritten digits, CC BY 4.0 licence), 8x8 upscaled to 32x32 "
        f"RGB, fixed stratified 50/50 split: {_sizes(train, test, *map(len, pools))}",
    )


def _digit_image(pixels: np.ndarray) -> Image.Image:
    """An 8x8 digit (values 0-16) as a 32x32 RGB image (0-255, NEAREST so the pixels stay crisp)."""
    gray = Image.fromarray(np.round(pixels * (255 / 16)).astype(np.uint8))
    return gray.resize((32, 32), Image.Resampling.NEAREST).convert("RGB")


OFFLINE_TASKS: dict[str, Callable[..., Task]] = {
    "fashion_mnist": load_fashion_mnist,
    "easy_vqa_yesno": partial(load_easy_vqa, "yesno"),
    "easy_vqa_shape": partial(load_easy_vqa, "shape"),
    "easy_vqa_color": partial(load_easy_vqa, "color"),
    "digits": load_digits,
}
