"""``savs predict``: classify images with the prompt a classifier was fit with, one line (or JSON row) per image."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from savs.cli import common
from savs.cli.common import CommandError, bad_input
from savs.data.custom import IMAGE_SUFFIXES, check_image, render_prompt
from savs.examples import Example

NEEDS = ("labels", "prompt", "questions", "text")  # the task fields predict reads (common.TASK_TYPES)


def image_paths(paths: Sequence[str]) -> list[Path]:
    """The images named: files as given, folders searched recursively (sorted, hidden entries skipped)."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise CommandError(f"folder {name} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise CommandError(f"{name} does not exist")
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    saved = common.read_classifier(args.dir, NEEDS)
    meta = saved.task
    if meta["questions"] and not args.question:
        raise CommandError("this classifier was fit on per-row questions: pass the question with --question")
    if args.question and not meta["questions"]:
        raise CommandError("this classifier was fit on one fixed prompt; --question applies to per-row questions")
    paths = image_paths(args.paths)
    with bad_input():
        for p in paths:
            check_image(p)
        text = render_prompt(meta["labels"], meta["prompt"], args.question) if args.question else meta["text"]
        examples = [Example(text=text, label="", images=(p,), uid=str(p)) for p in paths]
    pipeline = common.load_pipeline(args.dir, saved, args)
    X = common.features(pipeline, examples, args)
    pred = pipeline.classifier.predict(X).tolist()
    share = pipeline.classifier.predict_proba(X)
    classes = pipeline.classes_.tolist()
    if args.json:
        rows = [
            {
                "path": str(p),
                "label": lab,
                "vote_share": float(share[i, classes.index(lab)]),
                "votes": {c: float(s) for c, s in zip(classes, share[i], strict=True)},
            }
            for i, (p, lab) in enumerate(zip(paths, pred, strict=True))
        ]
        print(json.dumps(rows, indent=1))
    else:
        for i, (p, lab) in enumerate(zip(paths, pred, strict=True)):
            print(f"{p}\t{lab}\t{share[i, classes.index(lab)]:.3f}")
    return 0
