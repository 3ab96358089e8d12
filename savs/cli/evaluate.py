"""``savs evaluate``: accuracy and confusion matrix of a saved classifier on DATA's test part, read and split as at
fit time (the classifier's task record), with an optional JSON report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from savs.cli import common
from savs.cli.common import CommandError, bad_input
from savs.data.custom import render_prompt
from savs.examples import Example, Task
from savs.outputs import atomic_write, check_output

# The task fields evaluate reads (common.TASK_TYPES).
NEEDS = ("model", "data", "labels", "prompt", "questions", "text", "data_options", "few_shot_fingerprints")


def confusion(labels: Sequence[str], y: Sequence[str], pred: Sequence[str]) -> np.ndarray:
    """Counts ``[true, predicted]`` in ``labels`` order."""
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y, pred, strict=True):
        out[index[t], index[p]] += 1
    return out


def format_confusion(labels: Sequence[str], matrix: np.ndarray) -> str:
    """The matrix as aligned text, rows true classes, columns predicted."""
    width = max(len(str(matrix.max())), *(len(lab) for lab in labels))
    head = " " * width + "  " + "  ".join(f"{lab:>{width}}" for lab in labels)
    rows = [
        f"{lab:>{width}}  " + "  ".join(f"{n:>{width}}" for n in row) for lab, row in zip(labels, matrix, strict=True)
    ]
    return "\n".join([head, *rows])


def cmd_evaluate(args: argparse.Namespace) -> int:
    saved = common.read_classifier(args.dir, NEEDS)
    meta = saved.task
    if args.json:
        with bad_input():
            check_output(args.json, "--json")
    data = args.data or meta["data"]
    options = common.data_options(args, meta["data_options"])
    task = common.read_data(data, args, options, prompt=meta["prompt"], labels=meta["labels"])
    with bad_input():
        test = task.test if args.limit is None else task.test_subset(args.limit, seed=0)
    if not test:
        raise CommandError(f"the test part of {data} is empty")
    _check_prompts(meta, test, data)
    pipeline = common.load_pipeline(args.dir, saved, args)
    X = common.features(pipeline, test, args)
    pred = pipeline.classifier.predict(X).tolist()
    share = pipeline.classifier.predict_proba(X)
    y = [e.label for e in test]
    hits = sum(t == p for t, p in zip(y, pred, strict=True))
    labels = list(meta["labels"])
    matrix = confusion(labels, y, pred)
    seen = set(meta["few_shot_fingerprints"])
    overlap = sum(e.fingerprint() in seen for e in test)
    print(f"accuracy: {hits / len(test):.4f}")
    print(f"{hits} of {len(test)} test examples right ({task.description})")
    if overlap:
        print(f"warning: {overlap} test examples are also in the few-shot set", file=sys.stderr)
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(labels, matrix))
    if args.json:
        report = _report(args, meta, data, task, test, pred, share, pipeline.classes_.tolist(), matrix, overlap)
        with bad_input():
            atomic_write(Path(args.json), json.dumps(report, indent=1))
        common.info(args, f"report written to {args.json}")
    return 0


def _report(
    args: argparse.Namespace,
    meta: dict[str, Any],
    data: str,
    task: Task,
    test: Sequence[Example],
    pred: list,
    share: np.ndarray,
    classes: list,
    matrix: np.ndarray,
    overlap: int,
) -> dict[str, Any]:
    """--json's report: the counts, the confusion matrix, per-class accuracy and each prediction with its share."""
    labels = list(meta["labels"])
    hits = int(np.trace(matrix))
    return {
        "accuracy": hits / len(test),
        "n": len(test),
        "correct": hits,
        "classifier": str(Path(args.dir).resolve()),
        "model": meta["model"],
        "data": data,
        "description": task.description,
        "labels": labels,
        "confusion": matrix.tolist(),
        "per_class_accuracy": {
            lab: (float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None) for i, lab in enumerate(labels)
        },
        "few_shot_overlap": overlap,
        "predictions": [
            {"uid": e.uid, "label": e.label, "predicted": p, "vote_share": float(share[i, classes.index(p)])}
            for i, (e, p) in enumerate(zip(test, pred, strict=True))
        ],
    }


def _check_prompts(meta: dict[str, Any], test: Sequence[Example], data: str) -> None:
    """The test examples are asked as the classifier was fit: a fixed-prompt classifier's text on every one (a
    question column in DATA would replace it row by row, as ``predict --question`` would, which is refused), and
    per-row questions where it was fit on them."""
    if not meta["questions"]:
        if other := next((e for e in test if e.text != meta["text"]), None):
            raise CommandError(
                f"this classifier was fit on one fixed prompt, but {data} gives {other.uid} another text (a question "
                f"column?): {other.text!r}; evaluate it on data without per-row questions (or fit one on them)"
            )
        return
    try:
        fixed = render_prompt(meta["labels"], meta["prompt"])
    except ValueError:  # the prompt needs a {question}: rows without one were refused when DATA was read
        return
    if all(e.text == fixed for e in test):
        raise CommandError(
            f"this classifier was fit on per-row questions, but {data} has none (no question column; "
            "--text-column names it)"
        )
