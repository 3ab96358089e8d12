"""Feature baselines: probes on a decoder layer's last-token hidden state or on the vision encoder's own
features, and the blind control (the same prompts with every image blanked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from savs.cache import ActivationCache, CacheMissError, cache_only_mode, example_key
from savs.classifier import answer_set_mask
from savs.examples import BlankImage, Example, Fill, decode
from savs.extract import extract_features
from savs.models.base import Adapter


# ----- hidden states ------------------------------------------------------------------------------
def extract_hidden(
    adapter: Adapter,
    examples: Sequence[Example],
    *,
    layer: int = -1,
    batch_size: int = 8,
    prefix_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    cache_only: bool | None = None,
) -> np.ndarray:
    """Hidden state at the last prompt token, float32 ``(n_examples, hidden_size)``.

    ``layer`` indexes transformers' ``hidden_states``: 0 is the embeddings, ``i`` the output of decoder layer
    ``i - 1``, and ``-1`` (= ``n_layers``) the last layer's output after the final norm, which is what the
    LM head reads. One forward pass per example, stopped right there (deeper layers and the LM head never
    run), batched, shared-prefix cached and kept on disk like ``extract_heads`` (``cache_only`` as there: read
    ``cache_dir`` alone, raising ``CacheMissError`` for what it lacks); to get the head vectors from the same pass,
    call ``savs.extract.extract_features`` with both.
    """
    return extract_features(
        adapter,
        examples,
        hidden=layer,
        batch_size=batch_size,
        prefix_cache=prefix_cache,
        cache_dir=cache_dir,
        progress=progress,
        cache_only=cache_only,
    )["hidden"]


def probe_predict(
    X_train: np.ndarray,
    y_train: Sequence[str],
    X_test: np.ndarray,
    kind: str = "linear",
    seed: int = 0,
    answer_sets: Sequence[Sequence[str] | None] | None = None,
) -> np.ndarray:
    """Fit a probe on few-shot features and predict: standardised logistic regression, or cosine k-NN (k <= 5).

    ``answer_sets``: per test example, the labels it may take (None: any); its most probable allowed label wins."""
    if kind == "linear":
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    elif kind == "knn":
        probe = KNeighborsClassifier(n_neighbors=min(5, len(X_train)), metric="cosine")
    else:
        raise ValueError(f"unknown probe kind {kind!r}; expected 'linear' or 'knn'")
    probe.fit(X_train, np.asarray(y_train))
    mask = None if answer_sets is None else answer_set_mask(probe.classes_, answer_sets)
    if mask is None:
        return probe.predict(X_test)
    return probe.classes_[np.where(mask, probe.predict_proba(X_test), -1.0).argmax(axis=1)]


# ----- blind control ------------------------------------------------------------------------------
def blank_images(examples: Sequence[Example], fill: Fill = (127, 127, 127)) -> list[Example]:
    """The same prompts and labels with every image a uniform ``fill`` image of the same size (uid + "+blank"); the
    blanks are ``BlankImage``s, made only when a model reads them (a plan lists them without holding pixels)."""
    return [replace(e, images=tuple(BlankImage(im, fill) for im in e.images), uid=f"{e.uid}+blank") for e in examples]


# ----- vision encoder -----------------------------------------------------------------------------
VISION_TAG = "vision:pooled"  # the cache key part of these features


def vision_features(
    adapter: Adapter,
    examples: Sequence[Example],
    *,
    batch_size: int = 32,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
) -> np.ndarray:
    """The vision encoder's pooled features of each example's images (mean over its images): ``(n, D)`` float32.

    The analog of the paper's CLIP/SigLIP rows; each family's adapter says which features
    (``Adapter.vision_encoder_features``: transformers families' ``get_image_features``, savs-mini's
    EfficientNet-Lite0 before its projector), pooled over each image's tokens.
    ``cache_dir``: kept in the activation cache beside the head vectors (verified reads, ``SAVS_CACHE_ONLY``).
    """
    missing = [e.uid or e.text[:40] for e in examples if not e.images]
    if missing:
        raise ValueError(f"vision_features needs images; examples without: {missing[:3]}")
    if cache_dir is None:
        return _vision_features(adapter, examples, batch_size, progress)
    store = ActivationCache(cache_dir, adapter.identity.namespace)
    keys = [example_key(e.fingerprint(), VISION_TAG) for e in examples]
    found = store.read(keys)
    todo = {k: e for k, e in zip(keys, examples, strict=True) if k not in found}
    if todo and cache_only_mode(cache_only, cache_dir):
        raise CacheMissError(
            f"{len(todo)} examples lack their vision features in the activation cache ({store.dir}); cache-only "
            "mode (SAVS_CACHE_ONLY=1) runs no model: fill it with `python -m savs.distributed` or a run without it"
        )
    if todo:
        fresh = dict(zip(todo, _vision_features(adapter, list(todo.values()), batch_size, progress), strict=True))
        store.put(fresh)
        found.update(fresh)
    return np.stack([found[k] for k in keys])


def _vision_features(adapter: Adapter, examples: Sequence[Example], batch_size: int, progress: bool) -> np.ndarray:
    """``vision_features`` computed now, a batch of images at a time."""
    images = [im for e in examples for im in e.images]
    chunks = range(0, len(images), batch_size)
    with torch.inference_mode():
        pooled = torch.cat(
            [
                adapter.vision_encoder_features([decode(im) for im in images[i : i + batch_size]])  # (n, D)
                for i in tqdm(chunks, desc="vision features", unit="batch", disable=not progress)
            ]
        )
    ends = np.cumsum([len(e.images) for e in examples])
    return np.stack([pooled[end - len(e.images) : end].mean(0).numpy() for e, end in zip(examples, ends, strict=True)])
