"""What the ``savs`` commands share: the one-line error, progress notes, the model and its cache, reading DATA, and
reading a classifier folder (one ``sav.json``, its ``task`` record checked) before any model loads.

The commands call these as attributes of this module (``common.load_model(...)``), so a test can replace one here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from savs.classifier import SAVClassifier
from savs.data.custom import TEST_FRACTION, from_path
from savs.examples import Example, Task
from savs.profiles import PARAMETERS

if TYPE_CHECKING:
    from savs.pipeline import SavedSAV, SAVPipeline

# What ``savs fit`` records in a classifier's ``task`` (sav.json) that the other commands read back, with its type.
TASK_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str, "data": str, "description": str, "labels": list, "prompt": (str, type(None)), "questions": bool,
    "text": str, "data_options": dict, "shots": int, "seed": int, "scoring": str, "selection": str,
    "head_scores": list, "head_layers": list, "few_shot_fingerprints": list,
}  # fmt: skip
# The data options a classifier remembers: task key -> fit's option, its default (an option left at it goes unsaid).
DATA_OPTIONS = {
    "image": ("--image-column", None), "label": ("--label-column", None), "text": ("--text-column", None),
    "train_split": ("--train-split", None), "test_split": ("--test-split", None),
    "test_fraction": ("--test-fraction", TEST_FRACTION), "split_seed": ("--split-seed", 0),
}  # fmt: skip
# The rest of what format 4's task.json recorded of a fit: key -> fit's option, its default (``refit_command``).
FIT_OPTIONS = {
    "seed": ("--seed", 0), "prompt": ("--prompt", None),
    **{p.name: (p.option, SAVClassifier().get_params()[p.name]) for p in PARAMETERS if p.rule},
}  # fmt: skip


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
        raise CommandError(one_line(e), 2) from e


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type's name where it has none)."""
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return text or type(e).__name__


def info(args: argparse.Namespace, message: str) -> None:
    """A progress note on stderr (never on stdout, which carries results); silent with --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def progress(args: argparse.Namespace) -> bool:
    """Progress bars (on stderr) unless --quiet."""
    return not args.quiet


def silence_libraries() -> None:
    """--quiet: no loading bars from transformers or datasets either."""
    import datasets
    from transformers.utils import logging

    logging.disable_progress_bar()
    datasets.disable_progress_bars()


def cache_dir(args: argparse.Namespace) -> Path | None:
    """The activation cache: --cache-dir, else the one the notebooks share (``$SAVS_CACHE``, ``~/.cache/savs``)."""
    if args.no_cache:
        return None
    from savs.cache import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def load_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``load_model``'s keywords from --device and --dtype."""
    kwargs: dict[str, Any] = {}
    if args.device:
        kwargs["device"] = args.device
    if args.dtype:
        import torch

        kwargs["dtype"] = getattr(torch, args.dtype)
    return kwargs


def model_name(name: str) -> str:
    """A local model folder as an absolute path (a saved classifier must find it from anywhere); else as given."""
    return str(Path(name).resolve()) if Path(name).is_dir() else name


def load_model(name: str, args: argparse.Namespace):
    """The model adapter of ``name``; a model that will not load is a failed run (exit 1)."""
    from savs.models import load_model as load

    name = model_name(name)
    info(args, f"loading model {name}")
    try:
        return load(name, **load_kwargs(args))
    except Exception as e:
        raise CommandError(f"cannot load model {name}: {one_line(e)}", 1) from e


def data_options(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> dict[str, Any]:
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
    return {k: v if v is not None else saved.get(k, DATA_OPTIONS[k][1]) for k, v in given.items()}


def read_data(data: str, args: argparse.Namespace, options: dict[str, Any], **kw: Any) -> Task:
    """DATA as a ``Task``; what it cannot read is bad input."""
    info(args, f"reading {data}")
    with bad_input():
        return from_path(data, **options, progress=progress(args), **kw)


def data_name(data: str) -> str:
    """DATA as saved: a local path made absolute, so ``evaluate`` run from elsewhere finds the same data."""
    return data if data.startswith("hf:") or not Path(data).exists() else str(Path(data).resolve())


def read_classifier(folder: str, needs: Sequence[str]) -> SavedSAV:
    """The classifier saved in ``folder``, every file checked against sav.json's checksums, with the ``task`` fields
    ``needs`` (``TASK_TYPES``) present: read before any model loads, so a bad folder exits 2 at once."""
    from savs.pipeline import ARRAYS_FILE, JSON_FILE, LEGACY_TASK_FILE, SavedSAVError, read_saved

    path = Path(folder)
    if not path.is_dir():
        raise CommandError(f"{folder} is not a folder (a classifier folder is what `savs fit --out` writes)")
    if missing := [f for f in (JSON_FILE, ARRAYS_FILE) if not (path / f).is_file()]:
        raise CommandError(f"{folder} is not a savs classifier folder: it lacks {', '.join(missing)} (run savs fit)")
    try:
        saved = read_saved(path.resolve())
    except SavedSAVError as e:
        refit = f". Refit it: {refit_command(path)}" if (path / LEGACY_TASK_FILE).is_file() else ""
        raise CommandError(f"cannot load the classifier in {folder}: {one_line(e)}{refit}") from e
    if saved.task is None:
        raise CommandError(f"{folder} holds a SAV saved without the command line's task record (SAVPipeline.save "
                           "with no task=): load it with SAVPipeline.load, or fit one with savs fit")  # fmt: skip
    for name in needs:
        if not isinstance(saved.task.get(name), TASK_TYPES[name]):
            raise CommandError(f"{path / JSON_FILE}: task: {name!r} is missing or not what savs fit writes; fit the "
                               "classifier again")  # fmt: skip
    return saved


def refit_command(folder: Path) -> str:
    """The ``savs fit`` line that refits a format-4 classifier folder, read from its old ``task.json`` (only to
    suggest the command: nothing else of that file is used)."""
    try:
        old = json.loads((folder / "task.json").read_text())
    except (OSError, ValueError):
        old = {}
    if not isinstance(old, dict):
        old = {}
    words = ["savs", "fit", old.get("model", "MODEL"), old.get("data", "DATA"), "--shots", old.get("shots", "K")]
    saved_options = old.get("data_options") if isinstance(old.get("data_options"), dict) else {}
    for source, table in ((old, FIT_OPTIONS), (saved_options, DATA_OPTIONS)):
        for key, (option, default) in table.items():
            if source.get(key, default) != default:
                words += [option, source[key]]
    return shlex.join(map(str, [*words, "--out", folder, "--force"]))


def load_pipeline(folder: str, saved: SavedSAV, args: argparse.Namespace) -> SAVPipeline:
    """The pipeline of a classifier read by ``read_classifier``, on its own model (or --model's)."""
    from savs.pipeline import ModelMismatchError, SavedSAVError, SAVPipeline

    adapter = load_model(args.model, args) if args.model else None
    if adapter is None:
        info(args, f"loading the classifier in {folder} and its model")
    try:
        return SAVPipeline.from_saved(saved, adapter=adapter, **load_kwargs(args))
    except ModelMismatchError as e:  # the API's advice (allow_model_mismatch=True) is no option of the command
        advice = "leave out --model to use the classifier's own" if args.model else "pass --model with its new place"
        raise CommandError(
            f"cannot load the classifier in {folder}: {one_line(ValueError(e.reason))}. Fit a classifier on this "
            f"model (savs fit), or, if the classifier's model has moved, {advice}",
            2,
        ) from e
    except SavedSAVError as e:  # the folder is wrong, not the run
        raise CommandError(f"cannot load the classifier in {folder}: {one_line(e)}", 2) from e
    except Exception as e:
        raise CommandError(f"cannot load the classifier in {folder}: {one_line(e)}", 1) from e


def features(pipeline: SAVPipeline, examples: Sequence[Example], args: argparse.Namespace) -> np.ndarray:
    """The selected heads' vectors of ``examples`` through the shared cache; an unreadable image is bad input."""
    try:
        return pipeline.features(examples, cache_dir=cache_dir(args), progress=progress(args))
    except ValueError as e:
        if "image" in str(e):  # LazyImage.open: a file that passed the header check but does not decode
            raise CommandError(one_line(e), 2) from e
        raise
