"""Whether extraction's shortcuts leave a model's head vectors unchanged, decided by running them once.

Extraction takes three shortcuts: it pads prompts of different lengths into one batch, runs a token prefix shared by
a batch once and continues every row from its KV cache, and stops a pass after the deepest layer asked for. Each is
exact for a plain causal decoder with 1-D positions, and wrong for some others (multimodal RoPE positions computed
from the whole prompt, a forward that needs the pixels in every pass, a layer run twice). Rather than a list of
which families allow what, ``shortcut_evidence`` runs two probe prompts with and without each shortcut and allows
it only where the vectors agree (relative max difference within ``TOLERANCE`` of the model's dtype). The answer is
memoised per model identity under ``<cache>/evidence/``: it is decided once per model, not on every load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from savs.cache import default_cache_dir
from savs.capture import capture_features
from savs.examples import Example
from savs.extract import _encode, last_token_from_end, prefix_pass
from savs.kvcache import shared_prefix_length
from savs.models.base import Adapter
from savs.outputs import atomic_write

# Bump when the probe or the rule changes: memoised answers of another version are decided again.
EVIDENCE_VERSION = 2
# Largest relative difference (max |a - b| / max |b|) two passes may show and still count as the same vectors.
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}
HALF_TOLERANCE = 2e-2  # bf16 / fp16: rounding alone moves the last bits of every head
PROBE_TEXTS = (
    "Is there a red circle in the image? Answer with Yes or No.",
    "Which animal is shown in this photo? Options: cat, dog, bird. Answer with the class name.",
)


def probe_examples(adapter: Adapter) -> list[Example]:
    """Two prompts of different lengths, with one seeded noise image each where the model takes images."""
    takes_images = hasattr(adapter.processor, "image_processor")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in PROBE_TEXTS]
    return [
        Example(text=text, label="", images=(image,) if takes_images else (), uid=f"probe/{i}")
        for i, (text, image) in enumerate(zip(PROBE_TEXTS, images, strict=True))
    ]


def _difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 for two zero tensors)."""
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale else float((a - b).abs().max().item())


def measure(adapter: Adapter) -> dict[str, float | str]:
    """The relative difference each shortcut makes on the probe prompts (a string where the shortcut failed to run)."""
    examples, layers = probe_examples(adapter), list(adapter.head_layers)
    out: dict[str, float | str] = {}
    with torch.inference_mode(), capture_features(adapter, layers, stop_early=False) as full:
        # the reference: each prompt alone, every layer run
        alone = []
        for e in examples:
            batch = _encode(adapter, [e], padding_side="left")
            index = last_token_from_end(batch["attention_mask"])
            heads = adapter.prefill(batch, use_cache=False, capture=full, index=index).features["heads"]  # (1, L, H, d)
            alone.append(heads)
        reference = torch.cat(alone)  # (2, L, H, d)
        try:
            batch = _encode(adapter, examples, padding_side="left")
            index = last_token_from_end(batch["attention_mask"])
            padded = adapter.prefill(batch, use_cache=False, capture=full, index=index).features["heads"]
            out["padding"] = _difference(padded, reference)
        except Exception as err:  # noqa: BLE001 - any failure means: do not take the shortcut
            out["padding"] = f"{type(err).__name__}: {err}".splitlines()[0]
        try:
            batch = _encode(adapter, examples, padding_side="right")
            n = shared_prefix_length(batch["input_ids"], batch["attention_mask"], adapter.prefix_barrier_ids())
            if n == 0:
                out["prefix_cache"] = "the probe prompts share no prefix to cache"
            else:
                cached = prefix_pass(adapter, full, batch, n)["heads"]
                out["prefix_cache"] = _difference(cached, reference)
        except Exception as err:  # noqa: BLE001
            out["prefix_cache"] = f"{type(err).__name__}: {err}".splitlines()[0]
    try:
        with torch.inference_mode(), capture_features(adapter, layers[:1], stop_early=True) as first:
            batch = _encode(adapter, examples[:1], padding_side="left")
            index = last_token_from_end(batch["attention_mask"])
            stopped = adapter.prefill(batch, use_cache=False, capture=first, index=index).features["heads"]
        out["early_stop"] = _difference(stopped, reference[:1, :1])
    except Exception as err:  # noqa: BLE001
        out["early_stop"] = f"{type(err).__name__}: {err}".splitlines()[0]
    return out


def decide(measured: dict[str, float | str], dtype: torch.dtype) -> dict[str, bool]:
    """Each shortcut allowed where it ran and stayed within the dtype's tolerance; a cached prefix only where padded
    batches are allowed too (it runs right-padded batches)."""
    tol = TOLERANCE.get(dtype, HALF_TOLERANCE)
    ok = {k: isinstance(v, float) and v <= tol for k, v in measured.items()}
    ok["prefix_cache"] = ok["prefix_cache"] and ok["padding"]
    return ok


def evidence_file(adapter: Adapter, cache_dir: str | Path | None = None) -> Path:
    """Where the evidence of ``adapter``'s model is memoised."""
    return Path(cache_dir or default_cache_dir()) / "evidence" / f"{adapter.current_identity().namespace}.json"


def shortcut_evidence(adapter: Adapter, cache_dir: str | Path | None = None) -> dict:
    """``{"prefix_cache": bool, "early_stop": bool, "padding": bool, "measured": {...}}`` for ``adapter``'s model,
    read from the memo where this model (identity) was probed before, else measured now and memoised."""
    file = evidence_file(adapter, cache_dir)
    if file.is_file():
        memo = json.loads(file.read_text())
        if memo.get("version") == EVIDENCE_VERSION:
            return memo
    measured = measure(adapter)
    memo = {**decide(measured, adapter.model.dtype), "measured": measured, "version": EVIDENCE_VERSION}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, json.dumps(memo, indent=1))
    except OSError:  # a read-only cache: decide again next time
        pass
    return memo
