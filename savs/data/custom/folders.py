"""A task from a folder of class folders (``root/<class>/...``, or ``root/train/<class>/...`` and ``root/test/...``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from savs.data.custom.common import (
    IMAGE_SUFFIXES,
    TEST_FRACTION,
    check_image,
    render_prompt,
    resolve_labels,
    sizes_text,
    split_clause,
    stratified_split,
)
from savs.examples import Example, Task


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
    label_set = resolve_labels([*train_files, *test_files], labels, str(root))
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
    how = split_clause(has_train, "train/ and test/ folders", test_fraction, split_seed)
    return Task(
        name=name or root.resolve().name,
        labels=label_set,
        train=train,
        test=test,
        description=f"image folders in {root} (classes from folder names): {sizes_text(train, test, label_set)}, {how}",
    )
