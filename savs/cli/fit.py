"""``savs fit``: select heads on a few-shot set of DATA's training part and save the classifier with its task record
(label set, prompt, how DATA was read and split, the few-shot draw, every head's score) in one ``SAVPipeline.save``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from savs.classifier import SCORE_NAMES
from savs.cli import common
from savs.cli.common import CommandError, bad_input
from savs.data.custom import check_shots
from savs.examples import Example, Task
from savs.outputs import check_output, lock_output


def cmd_fit(args: argparse.Namespace) -> int:
    with bad_input():
        out = check_output(args.out, "--out", folder=True)
        lock = lock_output(out)
    with lock:  # a second fit on this --out exits 2 until this one ends
        _check_out_free(out, args.force)
        return _fit(args, out)


def _check_out_free(out: Path, force: bool) -> None:
    """``out`` is new, empty, or (with --force) a classifier: the folder is replaced as a whole."""
    from savs.pipeline import ARRAYS_FILE, JSON_FILE, LEGACY_TASK_FILE

    held = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if foreign := held - {JSON_FILE, ARRAYS_FILE, LEGACY_TASK_FILE}:
        raise CommandError(f"--out {out} holds other files ({', '.join(sorted(foreign))}); name a new or empty folder")
    if held and not force:
        raise CommandError(f"{out} already holds a classifier; --force replaces it")


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    """The SAV rule's options of the command line, as ``SAVClassifier`` takes them (but ``n_heads``)."""
    return {"metric": args.metric, "scoring": args.scoring, "selection": args.selection, "voting": args.voting,
            "readout": args.readout}  # fmt: skip


def _fit(args: argparse.Namespace, out: Path) -> int:
    """``savs fit`` once ``out`` is checked and locked."""
    from savs.classifier import SAVClassifier
    from savs.extract import extract_heads
    from savs.pipeline import SAVPipeline

    with bad_input():
        needs = SAVClassifier(n_heads=args.n_heads, **_rules(args)).examples_needed()
    if needs and args.shots < max(needs.values()):
        raise CommandError(f"{', '.join(needs)} need at least {max(needs.values())} examples per class; --shots is "
                           f"{args.shots}")  # fmt: skip
    options = common.data_options(args)
    task = common.read_data(args.data, args, options, prompt=args.prompt)
    with bad_input():
        check_shots(task, args.shots)
        few_shot = task.few_shot(args.shots, seed=args.seed)
    common.info(args, f"data: {task.description}")
    adapter = common.load_model(args.model, args)
    y = np.array([e.label for e in few_shot])
    X = extract_heads(
        adapter, few_shot, batch_size=args.batch_size, cache_dir=common.cache_dir(args), progress=common.progress(args)
    )  # (n, L, H, d)
    full = SAVClassifier(n_heads=args.n_heads, **_rules(args)).fit(X, y)
    sav = SAVPipeline.from_classifier(adapter, full, batch_size=args.batch_size)  # as fit_sav
    record = _task_record(args, adapter, task, few_shot, options, full)
    _check_out_free(out, args.force)  # again: something other than a savs fit may have written there meanwhile
    sav.save(out, task=record)  # the classifier and its task record, one folder at once
    _report(args, adapter.name, full, record, len(task.labels), out)
    return 0


def _task_record(
    args: argparse.Namespace, adapter, task: Task, few_shot: list[Example], options: dict[str, Any], full
) -> dict[str, Any]:
    """What ``evaluate``, ``predict`` and ``heads`` need back: the label set, the prompt, how DATA was read and split,
    the few-shot draw, the rule, and every head's score (``common.TASK_TYPES``)."""
    scores = full.head_scores_  # (L, H): L the layers with heads, adapter.head_layers
    layer_numbers = list(adapter.head_layers)
    return {
        "model": adapter.name,
        "data": common.data_name(args.data),
        "description": task.description,
        "labels": list(task.labels),
        "prompt": args.prompt,
        "questions": options["text"] is not None or any(e.text != few_shot[0].text for e in few_shot),
        "text": few_shot[0].text,
        "data_options": options,
        "shots": args.shots,
        "seed": args.seed,
        "n_heads": args.n_heads,
        **_rules(args),
        "head_grid": list(scores.shape),
        "head_layers": layer_numbers,  # the real decoder layer of each row of head_scores (hybrid decoders skip some)
        "heads": [[layer_numbers[row], int(head), float(scores[row, head])] for row, head in full.heads_],
        "head_scores": scores.round(6).tolist(),
        "few_shot": [e.uid for e in few_shot],
        "few_shot_fingerprints": [e.fingerprint() for e in few_shot],
    }


def _report(args: argparse.Namespace, model: str, full, record: dict[str, Any], n_classes: int, out: Path) -> None:
    """What was fitted, on stdout."""
    L, H = record["head_grid"]
    best = ", ".join(f"L{layer}.H{head} ({score:.2f})" for layer, head, score in record["heads"][:5])
    print(f"fitted {len(full.heads_)} of {L * H} heads ({L} layers x {H}) of {model}")
    n = len(record["few_shot"])
    print(f"few-shot set: {args.shots} per class x {n_classes} classes = {n} examples, seed {args.seed}")
    order = "best first" if args.selection == "top_k" else "in selection order"
    print(f"voting heads, {order} ({SCORE_NAMES[args.scoring]}): {best}")
    if full.readout_ is not None:
        print(f"read-out: {args.readout} on their {full.readout_.coef.shape[1]} concatenated features")
    print(f"saved to {out}")
