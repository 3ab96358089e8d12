"""The one-call API: ``fit_sav(model, examples)`` -> a classifier of new (image, text) examples, end to end.

A fitted ``SAVPipeline`` keeps only what prediction needs (the selected heads and their class means),
runs the model only up to the deepest selected layer, and saves to safetensors + JSON (no pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from savs.classifier import SAVClassifier
from savs.examples import Example
from savs.extract import extract_heads
from savs.models import Adapter, load_model


class SAVPipeline:
    """A model adapter plus a classifier over its selected heads only.

    ``classifier`` is fitted on the selected heads laid out as a ``(k, 1)`` grid, in rank order, so its
    votes (and vote-tie breaking) are those of the full classifier it came from.
    """

    def __init__(self, adapter: Adapter, heads: np.ndarray, classifier: SAVClassifier, batch_size: int = 8):
        self.adapter, self.heads, self.classifier, self.batch_size = (
            adapter,
            np.asarray(heads),
            classifier,
            batch_size,
        )

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
        """Predicted labels, by majority vote of the selected heads."""
        return self.classifier.predict(self.features(examples, **extract_kwargs))

    def score(self, examples: Sequence[Example], **extract_kwargs) -> float:
        """Accuracy on labelled examples."""
        y = [e.label for e in examples]
        return self.classifier.score(self.features(examples, **extract_kwargs), y)

    def save(self, path: str | Path) -> None:
        """Write ``path/sav.safetensors`` (heads, class means) and ``path/sav.json`` (model, classes, metric)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        clf = self.classifier
        save_file(
            {"heads": self.heads.astype(np.int64), "class_means": clf.class_means_[:, :, 0]},  # (C, k, d)
            str(path / "sav.safetensors"),
        )
        meta = {"model": self.adapter.name, "classes": clf.classes_.tolist(), "metric": clf.metric}
        (path / "sav.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path, adapter: Adapter | None = None, **load_kwargs) -> SAVPipeline:
        """Read a saved pipeline; loads its model by name unless ``adapter`` is given."""
        path = Path(path)
        meta = json.loads((path / "sav.json").read_text())
        arrays = load_file(str(path / "sav.safetensors"))
        adapter = adapter or load_model(meta["model"], **load_kwargs)
        return cls(adapter, arrays["heads"], _compact_classifier(arrays["class_means"], meta))


def _compact_classifier(class_means: np.ndarray, meta: dict) -> SAVClassifier:
    """Rebuild the fitted ``(k, 1)``-grid classifier from its saved state (no refit: the shots are gone)."""
    C, k, d = class_means.shape
    clf = SAVClassifier(heads=[(i, 0) for i in range(k)], metric=meta["metric"])
    clf.classes_ = np.array(meta["classes"])
    clf.class_means_ = class_means[:, :, None].astype(np.float64)  # (C, k, 1, d)
    clf.heads_ = np.stack([np.arange(k), np.zeros(k, dtype=np.int64)], axis=1)
    clf.head_grid_ = (k, 1)
    clf.n_features_in_ = k * d
    return clf


def fit_sav(
    model: Adapter | str,
    examples: Sequence[Example],
    n_heads: int | str = 20,
    *,
    metric: str = "cosine",
    selection: str = "in_sample",
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
) -> SAVPipeline:
    """Extract every head on the few-shot ``examples``, select the top ``n_heads``, return a pipeline.

    ``model`` is an adapter or anything ``load_model`` takes (registry name, hub id, local dir).
    """
    adapter = model if isinstance(model, Adapter) else load_model(model)
    X = extract_heads(adapter, examples, batch_size=batch_size, cache_dir=cache_dir)  # (n, L, H, d)
    y = np.array([e.label for e in examples])
    full = SAVClassifier(n_heads=n_heads, metric=metric, selection=selection).fit(X, y)
    layer, head = full.heads_.T
    compact = SAVClassifier(heads=[(i, 0) for i in range(len(layer))], metric=metric)
    compact.fit(X[:, layer, head][:, :, None], y)  # (n, k, 1, d): same means, same rank order
    return SAVPipeline(adapter, full.heads_, compact, batch_size=batch_size)
