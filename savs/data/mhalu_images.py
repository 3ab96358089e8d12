"""Put the COCO and TextVQA images MHaluBench's claims point to where its loader finds them.

MHaluBench's JSON files name images by their authors' local paths (``.../train2014/COCO_train2014_*.jpg``,
``.../textvqa/train_images/*.jpg``); the hub repo carries only some of them. After downloading the repo and
unzipping COCO train2014 / test2017 and TextVQA's train_val_images anywhere::

    python -m savs.data.mhalu_images DIR UNZIPPED_DIR [UNZIPPED_DIR ...]

links every named image the repo lacks into ``DIR/data/image-to-text/`` (found by file name under the unzipped
directories) and lists the ones still missing; the exit status is 1 while any is. ``--copy`` copies instead of
linking.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from savs.data.benchmarks.safety import MHALU_FILES, mhalu_image_candidates, mhalu_records

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def place_images(root: Path, sources: Sequence[Path], copy: bool = False) -> tuple[int, list[str]]:
    """Link (or copy) into ``root/data/image-to-text/`` every image the split files name that ``root`` lacks, from
    the first of ``sources`` holding a file of that name: (how many were placed, names still missing)."""
    wanted = {
        Path(r["image_path"]).name
        for split in MHALU_FILES
        if (root / MHALU_FILES[split]).is_file()
        for r in mhalu_records(root, split)
        if not any(p.is_file() for p in mhalu_image_candidates(root, r["image_path"]))
    }
    found: dict[str, Path] = {}
    for source in sources:
        for path in Path(source).rglob("*"):
            if path.name in wanted and path.suffix.lower() in IMAGE_SUFFIXES:
                found.setdefault(path.name, path)
    out = root / "data" / "image-to-text"
    out.mkdir(parents=True, exist_ok=True)
    for name, path in found.items():
        target = out / name
        if copy:
            shutil.copyfile(path, target)
        else:
            os.symlink(path.resolve(), target)
    return len(found), sorted(wanted - set(found))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the downloaded openkg/MHaluBench repo")
    parser.add_argument("sources", type=Path, nargs="+", help="unzipped COCO / TextVQA image directories")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of linking them")
    args = parser.parse_args(argv)
    if not any((args.root / f).is_file() for f in MHALU_FILES.values()):
        parser.error(f"{args.root} holds none of {', '.join(MHALU_FILES.values())}")
    placed, missing = place_images(args.root, args.sources, args.copy)
    print(f"placed {placed} images in {args.root / 'data' / 'image-to-text'}")
    if missing:
        print(f"{len(missing)} still missing, e.g. {', '.join(missing[:5])}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
