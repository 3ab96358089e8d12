"""Feature baselines: probes on a decoder layer's last-token hidden state or on the vision encoder's own
features, and the blind control (the same prompts with every image blanked).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from savs.capture import LastTokenCapture, StopForward
from savs.examples import Example
from savs.extract import run_extraction
from savs.models.base import Adapter


# ----- hidden states ------------------------------------------------------------------------------
class HiddenCapture(LastTokenCapture):
    """Keeps one module's output at token ``index[b]`` of each row, then stops the pass."""

    kept: torch.Tensor | None = None

    def keep(self, hidden: torch.Tensor) -> None:
        """Keep row ``index[b]`` of every example ``b`` of ``hidden`` ``(B, T, D)``; always stop."""
        if self.index is not None:  # None: a pass run only to fill a KV cache
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            self.kept = hidden[rows, self.index.to(hidden.device)].float()  # (B, D)
        raise StopForward

    def reset(self) -> None:
        self.kept = None

    def result(self) -> torch.Tensor:
        """``(B, D)``."""
        if self.kept is None:
            raise RuntimeError("the forward pass never reached the hooked module")
        return self.kept.cpu()


def _final_norm(adapter: Adapter) -> torch.nn.Module:
    """The norm between the last decoder layer and the LM head (a sibling of the layer list)."""
    decoder = operator.attrgetter(adapter.layers_path.rpartition(".")[0])(adapter.model)
    norm = getattr(decoder, "norm", None)
    if not isinstance(norm, torch.nn.Module):
        raise NotImplementedError(f"no final norm at {adapter.layers_path.rpartition('.')[0]}.norm in {adapter.name}")
    return norm


@contextmanager
def _hooked(adapter: Adapter, index: int, capture: HiddenCapture) -> Iterator[None]:
    """Route ``hidden_states[index]`` of every pass to ``capture`` for the duration of the block."""
    layers = adapter.layers()
    if index == 0:  # the embeddings with images spliced in: the first layer's input
        handle = layers[0].register_forward_pre_hook(
            lambda m, args, kwargs: capture.keep(args[0] if args else kwargs["hidden_states"]), with_kwargs=True
        )
    else:
        module = layers[index - 1] if index < len(layers) else _final_norm(adapter)
        handle = module.register_forward_hook(
            lambda m, args, out: capture.keep(out[0] if isinstance(out, tuple) else out)
        )
    try:
        yield
    finally:
        handle.remove()


def extract_hidden(
    adapter: Adapter,
    examples: Sequence[Example],
    *,
    layer: int = -1,
    batch_size: int = 8,
    prefix_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Hidden state at the last prompt token, float32 ``(n_examples, hidden_size)``.

    ``layer`` indexes transformers' ``hidden_states``: 0 is the embeddings, ``i`` the output of decoder layer
    ``i - 1``, and ``-1`` (= ``n_layers``) the last layer's output after the final norm, which is what the
    LM head reads. One forward pass per example, stopped right there (deeper layers and the LM head never
    run), batched and shared-prefix cached like ``extract_heads``; ``cache_dir`` keeps results on disk.
    """
    if not examples:
        raise ValueError("no examples to extract")
    n = adapter.n_layers
    if not -(n + 1) <= layer <= n:
        raise ValueError(f"layer {layer} outside -{n + 1}..{n} (hidden_states of {n} decoder layers)")
    index = layer % (n + 1)
    capture = HiddenCapture()
    with _hooked(adapter, index, capture):
        return run_extraction(
            adapter,
            examples,
            capture,
            tag=f"hidden:{index}",  # never a head-vector key
            batch_size=batch_size,
            # index 0 runs no attention: there is no KV cache to share
            prefix_cache=prefix_cache and index > 0,
            cache_dir=cache_dir,
            progress=progress,
            desc=f"hidden[{index}] of {adapter.name}",
        )


def probe_predict(
    X_train: np.ndarray, y_train: Sequence[str], X_test: np.ndarray, kind: str = "linear", seed: int = 0
) -> np.ndarray:
    """Fit a probe on few-shot features and predict: standardised logistic regression, or cosine k-NN (k <= 5)."""
    if kind == "linear":
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    elif kind == "knn":
        probe = KNeighborsClassifier(n_neighbors=min(5, len(X_train)), metric="cosine")
    else:
        raise ValueError(f"unknown probe kind {kind!r}; expected 'linear' or 'knn'")
    return probe.fit(X_train, np.asarray(y_train)).predict(X_test)


# ----- blind control ------------------------------------------------------------------------------
def blank_images(examples: Sequence[Example], fill: tuple[int, int, int] = (127, 127, 127)) -> list[Example]:
    """The same prompts and labels with every image a uniform ``fill`` image of the same size (uid + "+blank")."""
    return [
        replace(e, images=tuple(Image.new("RGB", im.size, fill) for im in e.images), uid=f"{e.uid}+blank")
        for e in examples
    ]


# ----- vision encoder -----------------------------------------------------------------------------
@torch.inference_mode()
def _pooled_image_features(adapter: Adapter, images: Sequence[Image.Image]) -> torch.Tensor:
    """``(n_images, D)``: each image's encoder features averaged over its tokens (and crops)."""
    model = adapter.model
    if adapter.family == "savs_mini":  # EfficientNet-Lite0's own 1280-d features, before the projector
        from savs.mini.vision import preprocess

        return model.image_features(preprocess(images).to(adapter.device, model.dtype)).float().mean(1)
    image_processor = getattr(adapter.processor, "image_processor", None)
    if image_processor is None or not hasattr(model, "get_image_features"):
        raise NotImplementedError(
            f"vision_features: family {adapter.family!r} ({type(model).__name__}) has no vision encoder to probe"
        )
    inputs = image_processor([[im] for im in images], return_tensors="pt").to(adapter.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    per_image = model.get_image_features(**inputs).pooler_output  # one (tokens, D) block per image
    return torch.stack([feats.float().reshape(-1, feats.shape[-1]).mean(0) for feats in per_image])


def vision_features(
    adapter: Adapter, examples: Sequence[Example], *, batch_size: int = 32, progress: bool = True
) -> np.ndarray:
    """The vision encoder's pooled features of each example's images (mean over its images): ``(n, D)`` float32.

    The analog of the paper's CLIP/SigLIP rows. savs-mini: EfficientNet-Lite0's 1280-d features, mean over
    its 3x3 grid. Transformers families: ``get_image_features`` (the tower's features as projected into
    the LM's embedding space, i.e. what the LM is given), mean over the image's tokens and crops.
    """
    missing = [e.uid or e.text[:40] for e in examples if not e.images]
    if missing:
        raise ValueError(f"vision_features needs images; examples without: {missing[:3]}")
    images = [im for e in examples for im in e.images]
    chunks = range(0, len(images), batch_size)
    pooled = torch.cat(
        [
            _pooled_image_features(adapter, images[i : i + batch_size])
            for i in tqdm(chunks, desc="vision features", unit="batch", disable=not progress)
        ]
    )
    ends = np.cumsum([len(e.images) for e in examples])
    return np.stack([pooled[end - len(e.images) : end].mean(0).numpy() for e, end in zip(examples, ends, strict=True)])
