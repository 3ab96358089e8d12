"""The one-call API: ``fit_sav(model, examples)`` -> a classifier of new (image, text) examples, end to end.

A fitted ``SAVPipeline`` keeps only what prediction needs (the selected heads and their class means) and runs the
model only up to the deepest selected layer. It saves to one directory of safetensors + JSON (no pickle) that also
records the model it was fitted on (``savs.identity``), that model's head geometry and, optionally, what the caller
needs to remember about the task (``task``: the command line's data options, prompt, label set, few-shot draw and head
scores); loading validates every field it reads and refuses another model, since class means only describe the heads
of the model they came from.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from savs.classifier import METRICS, VOTINGS, SAVClassifier
from savs.examples import Example
from savs.extract import extract_heads
from savs.identity import ModelIdentity, digest, json_digest
from savs.models import Adapter, load_model
from savs.outputs import atomic_dir, set_aside
from savs.readout import LINEAR_READOUTS, READOUTS, check_readout_arrays, readout_from_arrays

# sav.json's "format": bump when the saved layout changes. Version 1 (no "format" field) recorded no model identity;
# version 2 no voting rule; version 3 no read-out, and no checksum of sav.json itself nor of the extra files (an edited
# class order or prompt loaded silently); version 4 kept the command line's task record in a task.json of its own.
FORMAT_VERSION = 5
JSON_FILE, ARRAYS_FILE = "sav.json", "sav.safetensors"
LEGACY_TASK_FILE = "task.json"  # format 4's command line wrote it beside sav.json: save replaces it, load refuses it
GEOMETRY = ("n_layers", "n_heads", "head_dim")


class SavedSAVError(ValueError):
    """A saved SAV that is missing, incomplete, corrupt or inconsistent; the message names the file and the field."""

    def __init__(self, file: Path, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}")


class ModelMismatchError(ValueError):
    """A saved SAV given a model other than the one it was fitted on (its class means would be meaningless).

    ``reason`` is the message without the advice on what to pass the API (a command line words its own)."""

    def __init__(self, reason: str, advice: str = "") -> None:
        super().__init__(f"{reason}. {advice}" if advice else reason)
        self.reason = reason


class SAVPipeline:
    """A model adapter plus a classifier over its selected heads only.

    ``classifier`` is fitted on the selected heads laid out as a ``(k, 1)`` grid, in rank order, so its
    votes (and vote-tie breaking) are those of the full classifier it came from. ``save`` and ``load`` keep
    a pipeline on disk with the identity of its model, and ``task`` (what its fitter recorded about the task, any
    JSON object, or None) with it; ``load`` refuses any other model.
    """

    def __init__(
        self,
        adapter: Adapter,
        heads: np.ndarray,
        classifier: SAVClassifier,
        batch_size: int = 8,
        task: dict[str, Any] | None = None,
    ):
        self.adapter, self.heads, self.classifier, self.batch_size = adapter, np.asarray(heads), classifier, batch_size
        self.task = task  # what its fitter recorded about the task (``save``'s ``task``), or None

    @classmethod
    def from_classifier(cls, adapter: Adapter, classifier: SAVClassifier, batch_size: int = 8) -> SAVPipeline:
        """The pipeline of a classifier fitted on every head of ``adapter`` (``extract_heads``' default layers,
        ``adapter.head_layers``): its voting heads (``compact``), their grid rows turned into real layer numbers (a
        hybrid decoder's grid skips its layers without heads)."""
        layers = np.asarray(adapter.head_layers)
        if classifier.head_grid_[0] != len(layers):
            raise ValueError(
                f"the classifier was fitted on a grid of {classifier.head_grid_[0]} layers; {adapter.name} has "
                f"{len(layers)} layers with heads (extract_heads' default layers are the ones to fit on)"
            )
        heads = np.stack([layers[classifier.heads_[:, 0]], classifier.heads_[:, 1]], axis=1)  # (k, 2) real layers
        return cls(adapter, heads, classifier.compact(), batch_size=batch_size)

    @property
    def classes_(self) -> np.ndarray:
        return self.classifier.classes_

    def features(self, examples: Sequence[Example], **extract_kwargs) -> np.ndarray:
        """The selected heads' vectors ``(n, k, 1, d)``, running the model only as deep as they sit."""
        layers = sorted(set(self.heads[:, 0].tolist()))
        kwargs = {"batch_size": self.batch_size, **extract_kwargs}
        X = extract_heads(self.adapter, examples, layers=layers, **kwargs)  # (n, len(layers), H, d)
        rows = np.searchsorted(layers, self.heads[:, 0])
        return X[:, rows, self.heads[:, 1]][:, :, None]  # (n, k, 1, d)

    def predict(self, examples: Sequence[Example], **extract_kwargs) -> np.ndarray:
        """Predicted labels: the selected heads' vote (``voting``), or the classifier's linear ``readout``."""
        return self.classifier.predict(self.features(examples, **extract_kwargs))

    def predict_proba(self, examples: Sequence[Example], **extract_kwargs) -> np.ndarray:
        """Class probabilities ``(n, C)`` in ``classes_`` order (vote shares, or calibrated where it was fitted so)."""
        return self.classifier.predict_proba(self.features(examples, **extract_kwargs))

    def score(self, examples: Sequence[Example], **extract_kwargs) -> float:
        """Accuracy on labelled examples."""
        y = [e.label for e in examples]
        return self.classifier.score(self.features(examples, **extract_kwargs), y)

    def save(self, path: str | Path, task: dict[str, Any] | None = None) -> None:
        """Write the directory ``path``, the whole of it: ``sav.safetensors`` (heads, class means, per-head class
        weights, a linear read-out's arrays) and ``sav.json`` (format, model name, identity and geometry, classes,
        metric, voting rule, temperature and calibration scale, ``task``, the arrays' sha256 and its own).

        ``task`` (default: the pipeline's own ``task``) is any JSON object the caller needs back with the classifier,
        e.g. the command line's label set, prompt and data split; it is covered by sav.json's checksum, so an edited
        prompt is refused on load. The directory is written in full beside ``path`` and then renamed into place, so
        ``path`` holds the old save or the new one, never a mix, and a save that fails or is killed leaves the old one
        as it was. An existing ``path`` is replaced only when it holds a saved SAV (or nothing).
        """
        arrays = self._arrays()
        task = _json_object(self.task if task is None else task)
        meta = {**self._fields(), "task": task, "arrays_sha256": digest(arrays)}
        meta["json_sha256"] = _json_checksum(meta)  # every other field: an edited class order or prompt is caught
        path = Path(os.path.abspath(path))
        _check_replaceable(path)
        with atomic_dir(path, replace=True, sync=True) as new:
            (new / ARRAYS_FILE).write_bytes(arrays)
            (new / JSON_FILE).write_bytes(json.dumps(meta, indent=2).encode())

    def _arrays(self) -> bytes:
        """sav.safetensors' content: the selected heads, their class means and class weights, a read-out's arrays."""
        clf = self.classifier
        readout = getattr(clf, "readout_", None)
        return safetensors.numpy.save(
            {
                "heads": self.heads.astype(np.int64),  # (k, 2)
                "class_means": np.ascontiguousarray(clf.class_means_[:, :, 0]),  # (C, k, d)
                "head_weights": np.ascontiguousarray(clf.head_weights_, dtype=np.float64),  # (k, C)
                **({} if readout is None else readout.arrays()),  # readout_*: float64, (F,), (F,), (C|1, F), (C|1,)
            }
        )

    def _fields(self) -> dict[str, Any]:
        """sav.json's fields of the model and the classifier (``save`` adds the task and the checksums)."""
        clf = self.classifier
        readout = getattr(clf, "readout_", None)
        return {
            "format": FORMAT_VERSION,
            "model": self.adapter.name,
            "identity": self.adapter.identity.to_dict(),
            "geometry": geometry(self.adapter),
            "classes": clf.classes_.tolist(),
            "metric": clf.metric,
            "voting": clf.voting,
            "readout": clf.readout,  # "vote", or a linear read-out whose arrays are readout_* (savs.readout)
            "readout_regularization": None if readout is None else float(readout.regularization),
            "temperature": float(clf.temperature),
            "calibration_scale": None if clf.calibration_scale_ is None else float(clf.calibration_scale_),
            "fit": {"scoring": clf.scoring, "selection": clf.selection},  # for the record: how the heads were chosen
        }

    @classmethod
    def load(
        cls, path: str | Path, adapter: Adapter | None = None, *, allow_model_mismatch: bool = False, **load_kwargs
    ) -> SAVPipeline:
        """Read and validate a saved pipeline, then load its model by name (``load_kwargs`` go to ``load_model``)
        unless ``adapter`` is given.

        Raises ``SavedSAVError`` for a missing, corrupt or inconsistent save (before any model is loaded) and
        ``ModelMismatchError`` when the model's identity differs from the saved one (another checkpoint, dtype,
        attention, chat template, processor or library version: the class means would not describe its heads).
        ``allow_model_mismatch=True`` turns an identity mismatch into a warning; a model whose geometry (layers,
        heads, head size) differs is always refused.
        """
        saved = read_saved(Path(os.path.abspath(path)))
        return cls.from_saved(saved, adapter, allow_model_mismatch=allow_model_mismatch, **load_kwargs)

    @classmethod
    def from_saved(
        cls, saved: SavedSAV, adapter: Adapter | None = None, *, allow_model_mismatch: bool = False, **load_kwargs
    ) -> SAVPipeline:
        """``load`` of a save already read (``read_saved``): a caller that checks its task before any model loads
        reads the folder once."""
        if adapter is None:
            adapter = load_model(saved.model, **load_kwargs)
        _check_model(saved, adapter, saved.path, allow_model_mismatch)
        return cls(adapter, saved.heads, _compact_classifier(saved), task=saved.task)


def _json_object(task: dict[str, Any] | None) -> dict[str, Any] | None:
    """``task`` as it will load (a JSON round trip), refusing what JSON cannot hold (NumPy numbers, tuples' order
    kept as lists): what ``load`` gives back is what was saved."""
    if task is None:
        return None
    if not isinstance(task, dict):
        raise TypeError(f"task must be a JSON object (a dict) or None, got {type(task).__name__}")
    try:
        return json.loads(json.dumps(task, allow_nan=False))
    except (TypeError, ValueError) as err:
        kinds = "str, int, finite float, bool, None, list, dict"
        raise TypeError(f"task must hold JSON values only ({kinds}): {err}") from err


def geometry(adapter: Adapter) -> dict[str, int]:
    """The head layout a SAV's head indices and vector sizes refer to."""
    return {"n_layers": adapter.n_layers, "n_heads": adapter.n_heads, "head_dim": adapter.head_dim}


def _compact_classifier(saved: SavedSAV) -> SAVClassifier:
    """Rebuild the fitted ``(k, 1)``-grid classifier from its saved state (no refit: the shots are gone), as
    ``SAVClassifier.compact`` describes."""
    C, k, d = saved.class_means.shape
    clf = SAVClassifier(
        heads=[(i, 0) for i in range(k)],
        metric=saved.metric,
        voting=saved.voting,
        temperature=saved.temperature,
        readout=saved.readout,
    )
    clf.classes_ = np.array(saved.classes)
    clf.class_means_ = saved.class_means[:, :, None]  # (C, k, 1, d)
    clf.heads_ = np.stack([np.arange(k), np.zeros(k, dtype=np.int64)], axis=1)
    clf.head_grid_ = (k, 1)
    clf.head_weights_ = saved.head_weights  # (k, C)
    clf.calibration_scale_ = saved.calibration_scale
    clf.readout_ = saved.linear_readout
    clf.n_features_in_ = k * d
    return clf


# ----- checking the model -------------------------------------------------------------------------------------
def _check_model(saved: SavedSAV, adapter: Adapter, path: Path, allow_mismatch: bool) -> None:
    """Refuse a model whose geometry differs; refuse (or, when allowed, warn about) one whose identity differs."""
    given = geometry(adapter)
    if given != saved.geometry:
        diffs = "; ".join(f"{k}: {saved.geometry[k]} != {given[k]}" for k in GEOMETRY if given[k] != saved.geometry[k])
        raise ModelMismatchError(
            f"the SAV saved at {path} was fitted on model {saved.model!r}, whose heads are laid out differently "
            f"from those of the given model {adapter.name!r} ({diffs}; saved != given): its head indices and class "
            f"means cannot apply to this model, whatever allow_model_mismatch says."
        )
    headless = sorted(set(saved.heads[:, 0].tolist()) - set(adapter.head_layers))
    if headless:
        raise ModelMismatchError(
            f"the SAV saved at {path} votes with heads of decoder layers {headless}, which have no softmax-attention "
            f"heads in the given model {adapter.name!r}"
        )
    diffs = saved.identity.differences(adapter.identity)
    if not diffs:
        return
    message = (
        f"the SAV saved at {path} was fitted on model {saved.model!r}; the given model {adapter.name!r} differs in "
        f"{'; '.join(diffs)} (saved != given), so its heads' vectors are not those the class means were taken from"
    )
    if not allow_mismatch:
        raise ModelMismatchError(message, "Pass allow_model_mismatch=True to use it anyway.")
    warnings.warn(f"{message}; used anyway (allow_model_mismatch=True).", stacklevel=3)


# ----- reading and validating ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedSAV:
    """A saved SAV's content, every field checked (``read_saved``)."""

    model: str
    identity: ModelIdentity
    geometry: dict[str, int]
    classes: list
    metric: str
    voting: str
    temperature: float
    calibration_scale: float | None
    heads: np.ndarray  # (k, 2) int64 (layer, head), best first
    class_means: np.ndarray  # (C, k, d) float64
    head_weights: np.ndarray  # (k, C) float64: each head's weight per class (uniform for majority voting)
    readout: str = "vote"
    linear_readout: Any = None  # savs.readout.LinearReadout where readout is linear
    task: dict[str, Any] | None = None  # what the fitter recorded about the task (``SAVPipeline.save``)
    path: Path = Path()  # the directory it was read from


def read_saved(path: Path) -> SavedSAV:
    """Read a saved SAV directory, checking files, format, every field, the arrays' checksum and their consistency."""
    _check_directory(path)
    meta_file, arrays_file = path / JSON_FILE, path / ARRAYS_FILE
    meta = _read_json(meta_file)
    if meta.get("format") != FORMAT_VERSION:
        raise SavedSAVError(meta_file, "format", _format_problem(meta.get("format")))
    if _field(meta, "json_sha256", str, meta_file) != _json_checksum(meta):
        raise SavedSAVError(meta_file, "json_sha256", "the fields do not match the checksum saved with them (sav.json "
                            "was edited or damaged); fit and save it again")  # fmt: skip
    _check_no_legacy_task(path)
    task = meta.get("task", "missing")
    if task is not None:
        task = _field(meta, "task", dict, meta_file)
    model = _field(meta, "model", str, meta_file)
    metric = _field(meta, "metric", str, meta_file)
    if metric not in METRICS:
        raise SavedSAVError(meta_file, "metric", f"{metric!r} is not one of {METRICS}")
    voting = _field(meta, "voting", str, meta_file)
    if voting not in VOTINGS:
        raise SavedSAVError(meta_file, "voting", f"{voting!r} is not one of {VOTINGS}")
    temperature = _positive(_field(meta, "temperature", float, meta_file), "temperature", meta_file)
    scale = meta.get("calibration_scale", "missing")
    if scale is not None:
        scale = _positive(_field(meta, "calibration_scale", float, meta_file), "calibration_scale", meta_file)
    try:
        identity = ModelIdentity.from_dict(_field(meta, "identity", dict, meta_file))
    except ValueError as err:
        raise SavedSAVError(meta_file, "identity", str(err)) from err
    shape = _read_geometry(_field(meta, "geometry", dict, meta_file), meta_file)
    classes = _read_classes(_field(meta, "classes", list, meta_file), meta_file)
    arrays = _read_arrays(arrays_file, _field(meta, "arrays_sha256", str, meta_file))
    heads = _read_heads(arrays, shape, arrays_file)
    means = _read_means(arrays, len(classes), len(heads), shape["head_dim"], arrays_file, meta_file)
    weights = _read_weights(arrays, len(heads), len(classes), arrays_file)
    readout, linear = _read_readout(meta, arrays, len(heads) * shape["head_dim"], len(classes), meta_file, arrays_file)
    return SavedSAV(model, identity, shape, classes, metric, voting, temperature, scale, heads, means, weights,
                    readout, linear, task=task, path=path)  # fmt: skip


def _json_checksum(meta: dict) -> str:
    """sha256 of sav.json's fields but the checksum itself, keys sorted (so it does not depend on the layout)."""
    return json_digest({k: v for k, v in meta.items() if k != "json_sha256"})


def _check_no_legacy_task(path: Path) -> None:
    """A ``task.json`` beside sav.json is an older savs's task record, which this one neither reads nor checks."""
    if (path / LEGACY_TASK_FILE).exists():
        raise SavedSAVError(path / LEGACY_TASK_FILE, "file", "an older savs's task record (format 4); this savs keeps "
                            f"the task in {JSON_FILE}, checked with it: fit the classifier again")  # fmt: skip


def _read_readout(
    meta: dict, arrays: dict[str, np.ndarray], n_features: int, n_classes: int, meta_file: Path, arrays_file: Path
) -> tuple[str, Any]:
    """The read-out's name and, for a linear one, its checked arrays."""
    readout = _field(meta, "readout", str, meta_file)
    if readout not in READOUTS:
        raise SavedSAVError(meta_file, "readout", f"{readout!r} is not one of {READOUTS}")
    if readout not in LINEAR_READOUTS:
        return readout, None
    problem = check_readout_arrays(readout, arrays, n_features, n_classes)
    if problem:
        raise SavedSAVError(arrays_file, "readout", problem)
    regularization = meta.get("readout_regularization")
    if not _real_or_none(regularization):
        raise SavedSAVError(meta_file, "readout_regularization", f"expected a number or null, got {regularization!r}")
    return readout, readout_from_arrays(readout, arrays, np.nan if regularization is None else regularization)


def _real_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _positive(value: float, name: str, file: Path) -> float:
    if not (np.isfinite(value) and value > 0):
        raise SavedSAVError(file, name, f"expected a finite number > 0, got {value!r}")
    return value


def _read_weights(arrays: dict[str, np.ndarray], k: int, n_classes: int, file: Path) -> np.ndarray:
    """(k, C) finite, non-negative per-head class weights."""
    weights = _array(arrays, "head_weights", 2, "f", file)
    if weights.shape != (k, n_classes):
        raise SavedSAVError(file, "head_weights", f"shape {weights.shape}, expected {(k, n_classes)} (heads, classes)")
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise SavedSAVError(file, "head_weights", "expected finite, non-negative weights")
    return weights.astype(np.float64)


def _check_directory(path: Path) -> None:
    """A directory holding both files; a missing one may have been moved aside by a save killed mid-swap."""
    if not path.is_dir():
        aside = set_aside(path)
        hint = f" (a save interrupted while swapping left the previous one at {aside[-1]})" if aside else ""
        raise SavedSAVError(path, "directory", f"no saved SAV here{hint}")
    for name in (JSON_FILE, ARRAYS_FILE):
        if not (path / name).is_file():
            raise SavedSAVError(path / name, "file", "missing")


def _format_problem(found: Any) -> str:
    if found is None:
        return "missing: written by an older savs that recorded no model identity; fit and save it again"
    if found == 4:
        return (
            f"format 4, written by an older savs that kept the command line's task record in a {LEGACY_TASK_FILE} of "
            f"its own beside {JSON_FILE}; this savs reads format {FORMAT_VERSION} (one {JSON_FILE} holds it): fit again"
        )
    if isinstance(found, int) and 2 <= found < 4:
        return (
            f"format {found}, written by an older savs whose checksums left sav.json and its extra files unchecked (an "
            f"edited class order or prompt would load silently); this savs reads format {FORMAT_VERSION}: fit again"
        )
    return f"unknown format {found!r}; this savs reads format {FORMAT_VERSION}"


def _read_json(file: Path) -> dict:
    try:
        meta = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SavedSAVError(file, "content", f"not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise SavedSAVError(file, "content", f"expected a JSON object, got {type(meta).__name__}")
    return meta


def _field(meta: dict, name: str, kind: type, file: Path) -> Any:
    """``meta[name]``, which must be present and of type ``kind``."""
    if name not in meta:
        raise SavedSAVError(file, name, "missing")
    if not isinstance(meta[name], kind):
        raise SavedSAVError(file, name, f"expected {kind.__name__}, got {type(meta[name]).__name__}")
    return meta[name]


def _read_geometry(raw: dict, file: Path) -> dict[str, int]:
    """Exactly n_layers, n_heads and head_dim, each a positive int."""
    if set(raw) != set(GEOMETRY):
        raise SavedSAVError(file, "geometry", f"expected the fields {list(GEOMETRY)}, got {sorted(raw)}")
    bad = {k: v for k, v in raw.items() if type(v) is not int or v < 1}
    if bad:
        raise SavedSAVError(file, "geometry", f"expected positive ints, got {bad}")
    return {k: raw[k] for k in GEOMETRY}


def _read_classes(classes: list, file: Path) -> list:
    """At least two distinct labels, all strings or all numbers (labels come sorted from ``np.unique``)."""
    kinds = {type(c) for c in classes}
    if len(classes) < 2 or not (kinds <= {str} or kinds <= {int, float} or kinds == {bool}):
        raise SavedSAVError(file, "classes", f"expected at least 2 labels, all strings or all numbers; got {classes}")
    if len(set(classes)) != len(classes):
        raise SavedSAVError(file, "classes", f"duplicate labels in {classes}")
    return classes


def _read_arrays(file: Path, sha256: str) -> dict[str, np.ndarray]:
    """The safetensors file's arrays, after checking its content against the checksum sav.json recorded."""
    data = file.read_bytes()
    if digest(data) != sha256:
        raise SavedSAVError(
            file, "arrays_sha256", "content does not match the checksum in sav.json (corrupt, or from another save)"
        )
    try:
        return safetensors.numpy.load(data)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type for a malformed file
        raise SavedSAVError(file, "content", f"not a safetensors file ({err})") from err


def _array(arrays: dict[str, np.ndarray], name: str, ndim: int, kinds: str, file: Path) -> np.ndarray:
    """``arrays[name]``, which must be present, ``ndim``-dimensional, non-empty and of a dtype kind in ``kinds``."""
    if name not in arrays:
        raise SavedSAVError(file, name, "missing")
    a = arrays[name]
    if a.ndim != ndim or a.size == 0 or a.dtype.kind not in kinds:
        raise SavedSAVError(file, name, f"expected a non-empty {ndim}-D array, got shape {a.shape} of {a.dtype}")
    return a


def _read_heads(arrays: dict[str, np.ndarray], shape: dict[str, int], file: Path) -> np.ndarray:
    """(k, 2) distinct int (layer, head) pairs inside the saved geometry."""
    heads = _array(arrays, "heads", 2, "iu", file)
    if heads.shape[1] != 2:
        raise SavedSAVError(file, "heads", f"expected (k, 2) (layer, head) pairs, got shape {heads.shape}")
    L, H = shape["n_layers"], shape["n_heads"]
    outside = heads[(heads[:, 0] < 0) | (heads[:, 0] >= L) | (heads[:, 1] < 0) | (heads[:, 1] >= H)]
    if len(outside):
        raise SavedSAVError(file, "heads", f"{outside.tolist()} outside the geometry (n_layers, n_heads) = {(L, H)}")
    if len(np.unique(heads, axis=0)) != len(heads):
        raise SavedSAVError(file, "heads", f"duplicate (layer, head) pairs in {heads.tolist()}")
    return heads.astype(np.int64)


def _read_means(
    arrays: dict[str, np.ndarray], n_classes: int, k: int, head_dim: int, file: Path, meta_file: Path
) -> np.ndarray:
    """(C, k, d) finite float class means, C and k and d agreeing with classes, heads and geometry."""
    means = _array(arrays, "class_means", 3, "f", file)
    if means.shape != (n_classes, k, head_dim):
        raise SavedSAVError(
            file,
            "class_means",
            f"shape {means.shape}, but {meta_file.name} lists {n_classes} classes, {k} heads are saved and "
            f"head_dim is {head_dim}: expected {(n_classes, k, head_dim)}",
        )
    if not np.isfinite(means).all():
        raise SavedSAVError(file, "class_means", f"{int((~np.isfinite(means)).sum())} values are NaN or infinite")
    return means.astype(np.float64)


# ----- writing a directory at once ----------------------------------------------------------------------------
def _check_replaceable(path: Path) -> None:
    """Refuse to replace anything but a saved SAV (this format's or format 4's) or an empty directory: the whole
    directory is swapped."""
    if not path.exists():
        return
    held = {p.name for p in path.iterdir()} if path.is_dir() else None
    names = {JSON_FILE, ARRAYS_FILE, LEGACY_TASK_FILE}
    if held is None or not held <= names:
        what = "a file" if held is None else f"a directory holding {sorted(held - names)}"
        raise FileExistsError(f"{path} is {what}, not a saved SAV: refusing to replace it; save elsewhere")


def fit_sav(
    model: Adapter | str,
    examples: Sequence[Example],
    n_heads: int | str = 20,
    *,
    metric: str = "cosine",
    scoring: str = "in_sample",
    selection: str = "top_k",
    voting: str = "majority",
    calibration: str | None = None,
    readout: str = "vote",
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> SAVPipeline:
    """Extract every head on the few-shot ``examples``, select ``n_heads`` of them, return a pipeline.

    ``model`` is an adapter or anything ``load_model`` takes (registry name, hub id, local dir). ``scoring``,
    ``selection``, ``voting``, ``calibration``, ``readout`` ("vote", or a linear read-out of the heads: "logistic",
    "lda") and ``options`` (e.g. ``n_folds``, ``temperature``, ``alpha``) are
    ``SAVClassifier``'s; the defaults are the paper's.
    """
    adapter = model if isinstance(model, Adapter) else load_model(model)
    X = extract_heads(adapter, examples, batch_size=batch_size, cache_dir=cache_dir)  # (n, L, H, d)
    y = np.array([e.label for e in examples])
    full = SAVClassifier(
        n_heads=n_heads, metric=metric, scoring=scoring, selection=selection, voting=voting, calibration=calibration,
        readout=readout, **options,
    ).fit(X, y)  # fmt: skip
    return SAVPipeline.from_classifier(adapter, full, batch_size=batch_size)
