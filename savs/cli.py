"""The ``savs`` command: a few-shot classifier from a multimodal model's attention heads, on your own data.

    savs fit MODEL DATA --shots K --out DIR    select heads on K examples per class of DATA's training part, save
    savs evaluate DIR DATA                      accuracy and confusion matrix on DATA's test part
    savs predict DIR PATH...                    one line per image: path, label, vote share
    savs heads DIR [--plot FILE]                the selected heads and their few-shot scores
    savs extract MODEL DATA --out FILE          every head's vectors, as safetensors

A classifier folder holds what ``SAVPipeline.save`` writes (``sav.safetensors``, ``sav.json``) and ``task.json``:
the label set, the prompt, how DATA was read and split, the few-shot draw and every head's score, so ``evaluate``
rebuilds the same test part and ``predict`` the same prompt. Exit status: 0 done; 2 the command or its input is
wrong (arguments, data, rules the few-shot set is too small for, a folder that is not a classifier or is corrupt,
a model other than the classifier's); 1 the run failed (the model would not load, extraction
failed). An error is one line on stderr (``--debug``: with its traceback). ``main(argv)`` runs it in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from savs.classifier import METRICS, SCORE_NAMES, SCORINGS, SELECTIONS, VOTINGS
from savs.data.custom import IMAGE_SUFFIXES, TEST_FRACTION, check_image, check_shots, from_path, render_prompt
from savs.examples import Example, Task
from savs.outputs import atomic_path, atomic_write, check_output, lock_output
from savs.readout import READOUTS

TASK_FILE = "task.json"  # beside SAVPipeline's sav.json / sav.safetensors
FORMAT = 1
DATA_HELP = (
    "DATA is an image folder (one subfolder per class; or train/ and test/ folders, each with one subfolder per "
    "class), a CSV / TSV / JSONL / JSON table of image paths (relative to the table) and labels, a datasets "
    "save_to_disk folder, or hf:<dataset>[:<config>] (the Hugging Face Hub). A folder or table without a split of "
    f"its own is split here: {TEST_FRACTION:.0%} of each class held out for test, seeded (--split-seed)."
)


def _paragraphs(*texts: str) -> str:
    """Help text for the raw formatter: each paragraph wrapped to 88 columns, blank lines between."""
    return "\n\n".join(textwrap.fill(t, 88) if "\n" not in t else t for t in texts)


EXIT_HELP = (
    "exit status: 0 done; 2 bad arguments or input (data, a folder that is not a classifier); 1 the run failed "
    "(the model would not load, extraction failed). Errors are one line on stderr; --debug adds the traceback."
)


class CommandError(Exception):
    """An error the command reports as one line, with its exit status (2: bad input, 1: the run failed)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def bad_input() -> Iterator[None]:
    """Errors raised while reading the user's input (data, folders) become exit-status-2 errors."""
    try:
        yield
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise CommandError(_one_line(e), 2) from e


def _one_line(e: BaseException) -> str:
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return text or type(e).__name__


def _info(args: argparse.Namespace, message: str) -> None:
    """A progress note on stderr (never on stdout, which carries results); silent with --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


# --- shared steps ----------------------------------------------------------------------------------------------------


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars (on stderr) unless --quiet."""
    return not args.quiet


def _silence_libraries() -> None:
    """--quiet: no loading bars from transformers or datasets either."""
    import datasets
    from transformers.utils import logging

    logging.disable_progress_bar()
    datasets.disable_progress_bars()


def _cache_dir(args: argparse.Namespace) -> Path | None:
    """The activation cache: --cache-dir, else the one the notebooks share (``$SAVS_CACHE``, ``~/.cache/savs``)."""
    if args.no_cache:
        return None
    from savs.cache import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def _load_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.device:
        kwargs["device"] = args.device
    if args.dtype:
        import torch

        kwargs["dtype"] = getattr(torch, args.dtype)
    return kwargs


def _model_name(name: str) -> str:
    """A local model folder as an absolute path (a saved classifier must find it from anywhere); else as given."""
    return str(Path(name).resolve()) if Path(name).is_dir() else name


def _load_model(name: str, args: argparse.Namespace):
    from savs.models import load_model

    name = _model_name(name)
    _info(args, f"loading model {name}")
    try:
        return load_model(name, **_load_kwargs(args))
    except Exception as e:
        raise CommandError(f"cannot load model {name}: {_one_line(e)}", 1) from e


def _data_options(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """How to read DATA: the command line's options, else those saved with the classifier, else the defaults."""
    saved = saved or {}
    given = {
        "image": args.image_column,
        "label": args.label_column,
        "text": args.text_column,
        "train_split": args.train_split,
        "test_split": args.test_split,
        "test_fraction": args.test_fraction,
        "split_seed": args.split_seed,
    }
    defaults = {"test_fraction": TEST_FRACTION, "split_seed": 0}
    return {k: v if v is not None else saved.get(k, defaults.get(k)) for k, v in given.items()}


def _read_data(data: str, args: argparse.Namespace, options: dict[str, Any], **kw: Any) -> Task:
    _info(args, f"reading {data}")
    with bad_input():
        return from_path(data, **options, progress=_progress(args), **kw)


def _data_name(data: str) -> str:
    """DATA as saved: a local path made absolute, so ``evaluate`` run from elsewhere finds the same data."""
    return data if data.startswith("hf:") or not Path(data).exists() else str(Path(data).resolve())


def _read_classifier(folder: str) -> dict[str, Any]:
    """``task.json`` of a classifier folder, after checking the folder holds one."""
    path = Path(folder)
    if not path.is_dir():
        raise CommandError(f"{folder} is not a folder (a classifier folder is what `savs fit --out` writes)")
    missing = [f for f in ("sav.json", "sav.safetensors", TASK_FILE) if not (path / f).is_file()]
    if missing:
        raise CommandError(f"{folder} is not a savs classifier folder: it lacks {', '.join(missing)} (run savs fit)")
    from savs.pipeline import SavedSAVError, read_saved

    try:  # every file checked against sav.json's checksums: an edited prompt or class order is refused here
        if TASK_FILE not in read_saved(path.resolve()).files:
            raise CommandError(f"{path / TASK_FILE} is not covered by the checksums in sav.json; fit it again")
    except SavedSAVError as e:
        raise CommandError(f"cannot load the classifier in {folder}: {_one_line(e)}") from e
    try:
        meta = json.loads((path / TASK_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CommandError(f"{path / TASK_FILE} is not readable JSON: {_one_line(e)}") from e
    if meta.get("format") != FORMAT:
        raise CommandError(f"{path / TASK_FILE} has format {meta.get('format')!r}; this savs reads format {FORMAT}")
    return meta


def _load_pipeline(folder: str, args: argparse.Namespace):
    """The saved pipeline, on its own model (or --model's)."""
    from savs.pipeline import ModelMismatchError, SavedSAVError, SAVPipeline

    adapter = _load_model(args.model, args) if args.model else None
    if adapter is None:
        _info(args, f"loading the classifier in {folder} and its model")
    try:
        return SAVPipeline.load(folder, adapter=adapter, **_load_kwargs(args))
    except ModelMismatchError as e:  # the API's advice (allow_model_mismatch=True) is no option of the command
        advice = "leave out --model to use the classifier's own" if args.model else "pass --model with its new place"
        raise CommandError(
            f"cannot load the classifier in {folder}: {_one_line(ValueError(e.reason))}. Fit a classifier on this "
            f"model (savs fit), or, if the classifier's model has moved, {advice}",
            2,
        ) from e
    except SavedSAVError as e:  # the folder is wrong, not the run
        raise CommandError(f"cannot load the classifier in {folder}: {_one_line(e)}", 2) from e
    except Exception as e:
        raise CommandError(f"cannot load the classifier in {folder}: {_one_line(e)}", 1) from e


def _features(pipeline, examples: Sequence[Example], args: argparse.Namespace) -> np.ndarray:
    """The selected heads' vectors of ``examples`` through the shared cache; an unreadable image is bad input."""
    try:
        return pipeline.features(examples, cache_dir=_cache_dir(args), progress=_progress(args))
    except ValueError as e:
        if "image" in str(e):  # LazyImage.open: a file that passed the header check but does not decode
            raise CommandError(_one_line(e), 2) from e
        raise


# --- savs fit ------------------------------------------------------------------------------------------------------


def cmd_fit(args: argparse.Namespace) -> int:
    with bad_input():
        out = check_output(args.out, "--out", folder=True)
        lock = lock_output(out)
    with lock:  # a second fit on this --out exits 2 until this one ends
        _check_out_free(out, args.force)
        return _fit(args, out)


def _check_out_free(out: Path, force: bool) -> None:
    """``out`` is new, empty, or (with --force) a classifier: the folder is replaced as a whole."""
    from savs.pipeline import ARRAYS_FILE, JSON_FILE

    held = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if foreign := held - {JSON_FILE, ARRAYS_FILE, TASK_FILE}:
        raise CommandError(f"--out {out} holds other files ({', '.join(sorted(foreign))}); name a new or empty folder")
    if held and not force:
        raise CommandError(f"{out} already holds a classifier; --force replaces it")


def _fit(args: argparse.Namespace, out: Path) -> int:
    """``savs fit`` once ``out`` is checked and locked."""
    from savs.classifier import SAVClassifier
    from savs.extract import extract_heads
    from savs.pipeline import SAVPipeline

    rules = {"metric": args.metric, "scoring": args.scoring, "selection": args.selection, "voting": args.voting,
             "readout": args.readout}  # fmt: skip
    with bad_input():
        needs = SAVClassifier(n_heads=args.heads, **rules).examples_needed()
    if needs and args.shots < max(needs.values()):
        raise CommandError(f"{', '.join(needs)} need at least {max(needs.values())} examples per class; --shots is "
                           f"{args.shots}")  # fmt: skip
    options = _data_options(args)
    task = _read_data(args.data, args, options, prompt=args.prompt)
    with bad_input():
        check_shots(task, args.shots)
        few_shot = task.few_shot(args.shots, seed=args.seed)
    _info(args, f"data: {task.description}")
    adapter = _load_model(args.model, args)
    y = np.array([e.label for e in few_shot])
    X = extract_heads(
        adapter, few_shot, batch_size=args.batch_size, cache_dir=_cache_dir(args), progress=_progress(args)
    )  # (n, L, H, d)
    full = SAVClassifier(n_heads=args.heads, **rules).fit(X, y)
    sav = SAVPipeline.from_classifier(adapter, full, batch_size=args.batch_size)  # as fit_sav
    scores = full.head_scores_  # (L, H): L the layers with heads, adapter.head_layers
    layer_numbers = list(adapter.head_layers)
    meta = {
        "format": FORMAT,
        "model": adapter.name,
        "data": _data_name(args.data),
        "description": task.description,
        "labels": list(task.labels),
        "prompt": args.prompt,
        "questions": options["text"] is not None or any(e.text != few_shot[0].text for e in few_shot),
        "text": few_shot[0].text,
        "data_options": options,
        "shots": args.shots,
        "seed": args.seed,
        "n_heads": args.heads,
        **rules,
        "head_grid": list(scores.shape),
        "head_layers": layer_numbers,  # the real decoder layer of each row of head_scores (hybrid decoders skip some)
        "heads": [[layer_numbers[row], int(head), float(scores[row, head])] for row, head in full.heads_],
        "head_scores": scores.round(6).tolist(),
        "few_shot": [e.uid for e in few_shot],
        "few_shot_fingerprints": [e.fingerprint() for e in few_shot],
    }
    _check_out_free(out, args.force)  # again: something other than a savs fit may have written there meanwhile
    sav.save(out, extra={TASK_FILE: json.dumps(meta, indent=1)})  # the classifier and its task.json at once
    L, H = scores.shape
    best = ", ".join(f"L{layer}.H{head} ({score:.2f})" for layer, head, score in meta["heads"][:5])
    print(f"fitted {len(full.heads_)} of {L * H} heads ({L} layers x {H}) of {adapter.name}")
    C = len(task.labels)
    print(f"few-shot set: {args.shots} per class x {C} classes = {len(few_shot)} examples, seed {args.seed}")
    order = "best first" if args.selection == "top_k" else "in selection order"
    print(f"voting heads, {order} ({SCORE_NAMES[args.scoring]}): {best}")
    if full.readout_ is not None:
        print(f"read-out: {args.readout} on their {full.readout_.coef.shape[1]} concatenated features")
    print(f"saved to {out}")
    return 0


# --- savs evaluate ---------------------------------------------------------------------------------------------------


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
    meta = _read_classifier(args.dir)
    if args.json:
        with bad_input():
            check_output(args.json, "--json")
    data = args.data or meta["data"]
    task = _read_data(
        data, args, _data_options(args, meta["data_options"]), prompt=meta["prompt"], labels=meta["labels"]
    )
    with bad_input():
        test = task.test if args.limit is None else task.test_subset(args.limit, seed=0)
    if not test:
        raise CommandError(f"the test part of {data} is empty")
    _check_prompts(meta, test, data)
    pipeline = _load_pipeline(args.dir, args)
    X = _features(pipeline, test, args)
    pred = pipeline.classifier.predict(X).tolist()
    share = pipeline.classifier.predict_proba(X)
    y = [e.label for e in test]
    hits = sum(t == p for t, p in zip(y, pred, strict=True))
    labels = list(meta["labels"])
    matrix = confusion(labels, y, pred)
    seen = set(meta.get("few_shot_fingerprints", []))
    overlap = sum(e.fingerprint() in seen for e in test)
    print(f"accuracy: {hits / len(test):.4f}")
    print(f"{hits} of {len(test)} test examples right ({task.description})")
    if overlap:
        print(f"warning: {overlap} test examples are also in the few-shot set", file=sys.stderr)
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(labels, matrix))
    if args.json:
        classes = pipeline.classes_.tolist()
        report = {
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
                lab: (float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None)
                for i, lab in enumerate(labels)
            },
            "few_shot_overlap": overlap,
            "predictions": [
                {"uid": e.uid, "label": e.label, "predicted": p, "vote_share": float(share[i, classes.index(p)])}
                for i, (e, p) in enumerate(zip(test, pred, strict=True))
            ],
        }
        with bad_input():
            atomic_write(Path(args.json), json.dumps(report, indent=1))
        _info(args, f"report written to {args.json}")
    return 0


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


# --- savs predict ----------------------------------------------------------------------------------------------------


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
    meta = _read_classifier(args.dir)
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
    pipeline = _load_pipeline(args.dir, args)
    X = _features(pipeline, examples, args)
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


# --- savs heads ----------------------------------------------------------------------------------------------------


def cmd_heads(args: argparse.Namespace) -> int:
    from savs.pipeline import SavedSAVError, read_saved

    meta = _read_classifier(args.dir)
    try:
        heads = read_saved(Path(args.dir)).heads  # (k, 2): what the classifier votes with, checksum verified
    except SavedSAVError as e:
        raise CommandError(_one_line(e)) from e
    scores = np.array(meta["head_scores"])  # (L, H)
    L, H = scores.shape
    layer_numbers = meta.get("head_layers", list(range(L)))  # row -> real decoder layer (before: every layer)
    row_of = {layer: row for row, layer in enumerate(layer_numbers)}
    scoring, selection = meta.get("scoring", "in_sample"), meta.get("selection", "top_k")
    order = "best first" if selection == "top_k" else "in selection order"
    print(
        f"{len(heads)} of {L * H} heads of {meta['model']} vote, {order}; score: {SCORE_NAMES[scoring]} "
        f"({meta['shots']} per class x {len(meta['labels'])} classes, seed {meta['seed']})"
    )
    rows = heads.tolist()
    if args.all:
        order = np.argsort(-scores.ravel(), kind="stable")
        rows = [[layer_numbers[r], h] for r, h in np.stack(np.unravel_index(order, scores.shape), axis=1).tolist()]
    selected = {tuple(h) for h in heads.tolist()}
    print("rank\tlayer\thead\tscore" + ("\tvotes" if args.all else ""))
    for rank, (layer, head) in enumerate(rows, 1):
        mark = ("\tyes" if (layer, head) in selected else "\t") if args.all else ""
        print(f"{rank}\t{layer}\t{head}\t{scores[row_of[layer], head]:.4f}{mark}")
    if args.plot:
        with bad_input():
            check_output(args.plot, "--plot")
        try:
            from savs import plots
        except ImportError as e:
            raise CommandError(f"--plot needs matplotlib and seaborn (pip install 'savs[notebooks]'): {e}", 1) from e
        caption = (
            f"Head scores of {meta['model']} on {Path(meta['data']).name} ({len(meta['labels'])} classes): "
            f"{meta['shots']} shots per class, seed {meta['seed']}; circled: the {len(heads)} voting heads"
        )
        rows = np.array([[row_of[layer], head] for layer, head in heads.tolist()])  # (k, 2) grid rows
        fig = plots.head_scores(scores, rows, caption, scoring, layers=layer_numbers)
        try:
            with bad_input():
                fig.savefig(args.plot, dpi=150, bbox_inches="tight")
        finally:
            plots.plt.close(fig)  # a command leaves no figure open (nor one for a notebook to show)
        _info(args, f"plot written to {args.plot}")
    return 0


# --- savs extract --------------------------------------------------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    with bad_input():
        out = check_output(args.out, "--out")
        lock = lock_output(out)
    with lock:  # a second extract to this file exits 2 until this one ends
        return _extract(args, out)


def _extract(args: argparse.Namespace, out: Path) -> int:
    """``savs extract`` once ``out`` is checked and locked."""
    from safetensors.numpy import save_file

    from savs.extract import extract_heads

    if out.exists() and not args.force:
        raise CommandError(f"{out} exists; --force replaces it")
    task = _read_data(args.data, args, _data_options(args), prompt=args.prompt)
    parts = {"train": [(0, task.train)], "test": [(1, task.test)], "all": [(0, task.train), (1, task.test)]}[args.part]
    examples = [e for _, part in parts for e in part]
    split = [code for code, part in parts for _ in part]
    if not examples:
        raise CommandError(f"the {args.part} part of {args.data} is empty")
    adapter = _load_model(args.model, args)
    X = extract_heads(
        adapter, examples, batch_size=args.batch_size, cache_dir=_cache_dir(args), progress=_progress(args)
    )  # (n, L, H, d)
    labels = list(task.labels)
    tensors = {
        "heads": np.ascontiguousarray(X, dtype=np.float32),
        "labels": np.array([labels.index(e.label) for e in examples], dtype=np.int64),
        "split": np.array(split, dtype=np.int64),
    }
    metadata = {
        "model": adapter.name,
        "data": _data_name(args.data),
        "description": task.description,
        "heads": "(n_examples, n_layers, n_heads, head_dim): each head's output at the last prompt token",
        "head_layers": json.dumps(list(adapter.head_layers)),  # the decoder layer of each heads row
        "labels": json.dumps(labels),
        "split": "0: train, 1: test",
        "uids": json.dumps([e.uid for e in examples]),
        "prompt": json.dumps(args.prompt),
    }
    if out.exists() and not args.force:  # again: something other than savs may have written it meanwhile
        raise CommandError(f"{out} appeared while the model ran; --force replaces it")
    with bad_input():
        with atomic_path(out) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    n, L, H, d = X.shape
    print(f"wrote {out}: heads {n} x {L} x {H} x {d} float32 (examples, layers, heads, head_dim), labels, split")
    return 0


# --- the parser ----------------------------------------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
    return n


def _device(value: str) -> str:
    """A device torch knows (``cpu``, ``cuda``, ``cuda:1``, ``mps``): ``gpu`` failed only once the model loaded."""
    from savs.profiles import DEVICE

    if not DEVICE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:<index> or mps, got {value!r}")
    return value


def _n_heads(value: str) -> int | str:
    return "all" if value == "all" else _positive(value)


def _fraction(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value!r}") from None
    if not 0 < x < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {x}")
    return x


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes on stderr")

    run = argparse.ArgumentParser(add_help=False)
    g = run.add_argument_group("running the model")
    g.add_argument(
        "--cache-dir", help="activation cache (default: $SAVS_CACHE, else ~/.cache/savs; shared with the notebooks)"
    )
    g.add_argument("--no-cache", action="store_true", help="keep no activations on disk")
    g.add_argument("--batch-size", type=_positive, default=8, help="examples per forward pass (default 8)")
    g.add_argument("--device", type=_device, help="cpu, cuda, cuda:1, mps... (default: a GPU if there is one)")
    g.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"), help="default: bfloat16 on a GPU, else float32"
    )

    data = argparse.ArgumentParser(add_help=False)
    g = data.add_argument_group("reading DATA (tables only, except the split options)")
    g.add_argument("--image-column", help="column of images or image paths (default: image)")
    g.add_argument("--label-column", help="column of labels (default: label)")
    g.add_argument("--text-column", help="column of per-row questions (default: question, where present)")
    g.add_argument("--train-split", help="datasets split to draw the few-shot set from (default: train)")
    g.add_argument("--test-split", help="datasets split to test on (default: test)")
    g.add_argument("--test-fraction", type=_fraction, help=f"share of each class held out (default {TEST_FRACTION})")
    g.add_argument("--split-seed", type=int, help="seed of that split (default 0; evaluate reuses fit's)")

    loaded = argparse.ArgumentParser(add_help=False)
    loaded.add_argument("--model", help="load this model instead of the one the classifier names (e.g. moved folder)")

    parser = argparse.ArgumentParser(
        prog="savs",
        description=_paragraphs(
            "Few-shot classifiers from the attention heads of a generative multimodal model (Sparse Attention "
            "Vectors, Mitra et al., arXiv 2412.00142): no training, one forward pass per example."
        ),
        epilog=_paragraphs(
            "examples:\n"
            "  savs fit savs-mini photos/ --shots 20 --out my-sav\n"
            "  savs evaluate my-sav photos/ --json report.json\n"
            "  savs predict my-sav new-photos/ img.jpg\n"
            "  savs heads my-sav --plot heads.png\n"
            "  savs extract savs-mini photos/ --out heads.safetensors",
            DATA_HELP,
            EXIT_HELP,
            "`savs COMMAND --help` tells more about each command.",
        ),
        formatter_class=fmt,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    from savs import __version__

    parser.add_argument("--version", action="version", version=f"savs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "fit",
        parents=[common, run, data],
        formatter_class=fmt,
        help="select heads on a few-shot set of DATA's training part; save the classifier",
        description=_paragraphs(
            "Draw --shots examples per class from DATA's training part (seeded), run each through MODEL once, "
            "score every attention head by its nearest-class-mean accuracy on them, keep the best --heads, and "
            "save the classifier to --out (with the prompt, the label set and how DATA was split, so evaluate and "
            "predict repeat them).",
            DATA_HELP,
            EXIT_HELP,
        ),
    )
    p.add_argument("model", metavar="MODEL", help="registry name (savs-mini, llava-ov-7b, ...), hub id or model folder")
    p.add_argument("data", metavar="DATA", help="your labelled data (see below)")
    p.add_argument("--shots", type=_positive, required=True, help="few-shot examples per class")
    p.add_argument("--seed", type=int, default=0, help="seed of the few-shot draw (default 0)")
    p.add_argument("--heads", type=_n_heads, default=20, help="heads that vote: a number or 'all' (default 20)")
    p.add_argument("--metric", choices=METRICS, default="cosine", help="nearest class mean by (default cosine, "
                   "the paper's)")  # fmt: skip
    p.add_argument("--scoring", choices=SCORINGS, default="in_sample", help="how heads are scored (default in_sample, "
                   "the paper's; see SAVClassifier)")  # fmt: skip
    p.add_argument("--selection", choices=SELECTIONS, default="top_k", help="how the voting heads are picked "
                   "(default top_k, the paper's)")  # fmt: skip
    p.add_argument("--voting", choices=VOTINGS, default="majority", help="how they vote (default majority, the "
                   "paper's; reliability: CALM's weighted soft vote)")  # fmt: skip
    p.add_argument("--readout", choices=READOUTS, default="vote", help="how the selected heads classify: their vote "
                   "(default, the paper's) or a linear model on their concatenated vectors, logistic or lda (ours; "
                   "regularised by cross-validation on the shots; needs 2 per class)")  # fmt: skip
    p.add_argument(
        "--prompt",
        help="the question asked about each image (default: 'What is shown in this image?'); the classes and "
        "the answer format are appended, unless the text holds {labels} (and/or {question}): then it is the whole "
        "prompt",
    )
    p.add_argument("--out", required=True, help="folder to save the classifier to")
    p.add_argument("--force", action="store_true", help="replace a classifier already in --out")
    p.set_defaults(run=cmd_fit)

    p = sub.add_parser(
        "evaluate",
        parents=[common, run, data, loaded],
        formatter_class=fmt,
        help="accuracy and confusion matrix on DATA's test part",
        description=_paragraphs(
            "Classify DATA's test part (read and split as at fit time, unless the options say otherwise) and print "
            "'accuracy: X' on a line of its own, the count, and a confusion matrix (rows: true class).",
            DATA_HELP,
            EXIT_HELP,
        ),
    )
    p.add_argument("dir", metavar="DIR", help="a classifier folder (savs fit --out)")
    p.add_argument("data", metavar="DATA", nargs="?", help="labelled data (default: the data it was fit on)")
    p.add_argument("--limit", type=_positive, help="test on this many examples (a seeded draw) instead of all")
    p.add_argument("--json", metavar="FILE", help="also write a JSON report (confusion, per-class, each prediction)")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        parents=[common, run, loaded],
        formatter_class=fmt,
        help="classify images: path<TAB>label<TAB>vote share",
        description=_paragraphs(
            "Classify images with the prompt the classifier was fit with. One line per image: path, label and its "
            "vote share (the share of the voting heads that chose it; under --voting reliability, the label's "
            "reliability-weighted score; under --readout logistic or lda, its probability), tab-separated; --json "
            "gives every class's.",
            EXIT_HELP,
        ),
    )
    p.add_argument("dir", metavar="DIR", help="a classifier folder (savs fit --out)")
    p.add_argument("paths", metavar="PATH", nargs="+", help="images, or folders searched for images")
    p.add_argument("--question", help="the question, for a classifier fit on per-row questions")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser(
        "heads",
        parents=[common],
        formatter_class=fmt,
        help="the selected heads and their scores",
        description=_paragraphs(
            "List the voting heads (layer, head, few-shot nearest-class-mean accuracy), best first; --all lists "
            "every head. --plot draws the layer x head score map with the voting heads circled."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="a classifier folder (savs fit --out)")
    p.add_argument("--all", action="store_true", help="every head, best first, marking the voting ones")
    p.add_argument("--plot", metavar="FILE", help="save the head-score map (.png, .pdf, .svg)")
    p.set_defaults(run=cmd_heads)

    p = sub.add_parser(
        "extract",
        parents=[common, run, data],
        formatter_class=fmt,
        help="every head's vectors of DATA, as safetensors",
        description=_paragraphs(
            "Run every example of DATA through MODEL once and save every attention head's output at the last "
            "prompt token: 'heads' (examples, layers, heads, head_dim) float32, 'labels' (index into the "
            "metadata's label list), 'split' (0 train, 1 test); uids, labels and model in the file's metadata. "
            "Read it with safetensors.numpy.load_file (arrays) and safe_open(...).metadata() (the rest).",
            DATA_HELP,
            EXIT_HELP,
        ),
    )
    p.add_argument("model", metavar="MODEL", help="registry name, hub id or model folder")
    p.add_argument("data", metavar="DATA", help="your data (see below)")
    p.add_argument("--out", required=True, metavar="FILE", help="the .safetensors file to write")
    p.add_argument("--part", choices=("train", "test", "all"), default="all", help="which part (default all)")
    p.add_argument("--prompt", help="as for fit")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(run=cmd_extract)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (2): argparse has printed it
        return int(e.code or 0)
    try:
        if getattr(args, "quiet", False):
            _silence_libraries()
        return args.run(args)
    except CommandError as e:
        if args.debug:
            traceback.print_exc()
        print(f"savs {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"savs {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the run failed: one line, unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"savs {args.command}: error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
