"""Getting the paper's benchmark files into the layout their loaders read: MHaluBench's COCO / TextVQA images
(``python -m savs.data.mhalu_images``), VLGuard's two archives, Flowers102's two repos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from savs.data.benchmarks.safety import load_mhalubench
from savs.data.mhalu_images import main
from savs.testing.benchmarks import SMALL, ImageIds, image
from savs.testing.benchmarks import mhalubench as write_mhalubench


def test_images_found_by_name_are_linked_and_the_rest_listed(tmp_path: Path, capsys) -> None:
    root = tmp_path / "repo"
    write_mhalubench(root, SMALL["mhalubench"], ImageIds())
    coco = tmp_path / "unzipped" / "train2014"
    coco.mkdir(parents=True)
    for name in ("COCO_train_0.jpg", "COCO_0.jpg", "3.png"):  # the copy's COCO images of each file, a val image
        shutil.move(root / "data" / "image-to-text" / name, coco / name)
    (root / "data" / "image-to-text" / "train_5.png").unlink()  # found nowhere
    assert main([str(root), str(tmp_path / "unzipped")]) == 1
    out, err = capsys.readouterr()
    assert "placed 3 images" in out and "1 still missing, e.g. train_5.png" in err
    assert (root / "data" / "image-to-text" / "COCO_0.jpg").resolve() == (coco / "COCO_0.jpg").resolve()
    with pytest.raises(FileNotFoundError, match="train_5.png.*python -m savs.data.mhalu_images"):
        load_mhalubench(source=root)  # val's pool is the train file: its missing image stops the load, saying how
    shutil.copyfile(coco / "3.png", coco / "train_5.png")
    assert main([str(root), str(coco), "--copy"]) == 0
    assert len(load_mhalubench(source=root).test) == 20


def test_archives_unzip_into_their_own_folders(tmp_path: Path) -> None:
    """VLGuard's train.zip and test.zip hold the same category folders: each goes to its own folder, never mixed;
    an archive already nested under its name (NaturalBench-Retrieval's) is not nested twice."""
    import zipfile

    from savs.data.benchmarks._common import extract_archive

    for split in ("train", "test"):
        with zipfile.ZipFile(tmp_path / f"{split}.zip", "w") as z:
            z.writestr("bad_ads/1.png", split)
    with zipfile.ZipFile(tmp_path / "NaturalBench-Retrieval.zip", "w") as z:
        z.writestr("NaturalBench-Retrieval/metadata.json", "[]")
    for name in ("train", "test", "NaturalBench-Retrieval"):
        extract_archive(tmp_path / f"{name}.zip", tmp_path)
    assert [(tmp_path / s / "bad_ads" / "1.png").read_text() for s in ("train", "test")] == ["train", "test"]
    assert (tmp_path / "NaturalBench-Retrieval" / "metadata.json").is_file() and not (tmp_path / "bad_ads").exists()


def test_flowers_splits_naming_classes_differently_are_refused(tmp_path: Path) -> None:
    """Flowers102's train and test come from two hub repos: the class names must agree, or labels would shift."""
    import datasets

    from savs.data.benchmarks.classification import load_flowers102

    rows = [{"image": image(k), "label": k % 3} for k in range(6)]
    names = {"train": ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"],
             "test": ["pink primrose", "canterbury bells", "hard-leaved pocket orchid"]}  # fmt: skip
    data = {s: datasets.Dataset.from_list(rows, features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=n)})) for s, n in names.items()}  # fmt: skip
    datasets.DatasetDict(data).save_to_disk(str(tmp_path / "flowers"))
    with pytest.raises(ValueError, match="name their classes differently"):
        load_flowers102(source=tmp_path / "flowers")
