"""``python -m savs.data.mhalu_images``: the one step that puts MHaluBench's COCO / TextVQA images in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from benchmark_copies import mhalubench_copy

from savs.data.benchmarks.safety import load_mhalubench
from savs.data.mhalu_images import main


def test_images_found_by_name_are_linked_and_the_rest_listed(tmp_path: Path, capsys) -> None:
    root = mhalubench_copy(tmp_path / "repo")
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
