"""Shared-prefix KV caching: a token prefix that many rows share runs once, and every row continues from its cache.

Extraction, the generation baselines, LoRA training and savs-mini's alignment all batch prompts that begin alike
(system prompt, chat header, a task's question, in-context demonstrations). Such a batch is run in two parts:
the prefix, once, into keys and values (``Adapter.prefill``); then each row's own tokens (``suffix``) against that
cache, given to every row as views (``expanded``) or, where rows' prefixes differ, left-padded to a common
length (``stacked``); ``Adapter.decode`` continues such a cache into answers. A prefix met again is read from a
``Memo`` rather than run again. This module is the one place that builds and reads transformers' ``DynamicCache``;
it knows nothing of adapters (``savs.models.base`` builds on it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

import torch
from torch import nn
from torch.nn import functional as F
from transformers import Cache, DynamicCache

# Per-token inputs that a cached prefix shortens; every other input (pixels, image sizes) passes whole.
PER_TOKEN_INPUTS = ("input_ids", "token_type_ids", "mm_token_type_ids")

# The shortest shared prefix worth a pass of its own. Running it costs an extra model call (every weight read once
# more) plus KV-cache bookkeeping, and saves each row only the prefix's tokens: a bare chat header or "USER:" of a
# couple of tokens saves next to nothing in rows of tens to thousands of tokens (text plus image tokens).
MIN_SHARED_PREFIX = 4

# The keys and values of a prefix: per decoder layer, (keys, values), each (rows, kv_heads, tokens, head_dim).
KV = list[tuple[torch.Tensor, torch.Tensor]]


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, barrier: set[int]) -> int:
    """Tokens every row of a right-padded batch starts with, leaving each row at least one token of its own.

    The prefix also stops before the first ``barrier`` token (image placeholders must stay in the part
    that is run with the images).
    """
    first = input_ids[0]
    same = (input_ids == first).all(dim=0).long()  # (T,)
    n = int(same.cumprod(0).sum())
    n = min(n, int(attention_mask.sum(1).min()) - 1)
    hits = [i for i, t in enumerate(first[:n].tolist()) if t in barrier]
    return min([n, *hits])


def cached_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, barrier: set[int]) -> int:
    """``shared_prefix_length`` where running that prefix once pays, else 0 (run the batch whole): a lone row shares
    with no one, and a prefix shorter than ``MIN_SHARED_PREFIX`` saves less than its own pass costs."""
    n = shared_prefix_length(input_ids, attention_mask, barrier)
    return n if input_ids.shape[0] > 1 and n >= MIN_SHARED_PREFIX else 0


def suffix(batch: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """What of ``batch`` runs after its first ``n`` tokens are cached: the per-token inputs from column ``n`` on;
    the attention mask whole (a model continuing a cache takes a mask over cached and new tokens), pixels whole."""
    return {k: v[:, n:] if k in PER_TOKEN_INPUTS else v for k, v in batch.items()}


def after_prefix(batch: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """A batch encoded on its own, as the continuation of ``n`` cached tokens every row shares: its attention mask
    widened to cover them."""
    mask = batch["attention_mask"]
    return {**batch, "attention_mask": torch.cat([mask.new_ones(mask.shape[0], n), mask], dim=1)}  # (B, n + T)


def left_aligned_suffix(batch: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """``suffix(batch, n)`` of a right-padded batch with its tokens moved to left padding, so that every row ends in
    the last column (where decoding reads the next token's logits); the mask's suffix part moved alike."""
    rest_mask = batch["attention_mask"][:, n:]  # (B, S)
    width = rest_mask.shape[1]
    shift = (torch.arange(width, device=rest_mask.device) - (rest_mask == 0).sum(1, keepdim=True)) % width  # (B, S)
    moved = {k: v[:, n:].gather(1, shift) for k, v in batch.items() if k in PER_TOKEN_INPUTS}  # (B, S) each
    mask = torch.cat([batch["attention_mask"][:, :n], rest_mask.gather(1, shift)], dim=1)  # (B, n + S)
    return {**batch, **moved, "attention_mask": mask}


def empty_cache() -> DynamicCache:
    """A cache holding no tokens yet, for a pass to fill."""
    return DynamicCache()


def kv_of(cache: Cache) -> KV:
    """The keys and values ``cache`` holds, per layer (the tensors themselves, no copies)."""
    return [(k, v) for k, v, *_ in cache]


def expanded(kv: KV, rows: int) -> DynamicCache:
    """A fresh cache holding a one-row ``kv`` for each of ``rows`` rows (views, no copies): a pass that extends it
    leaves ``kv`` as it was."""
    return DynamicCache(
        ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in kv]  # (rows, h, P, d)
    )


def stacked(kvs: Sequence[KV]) -> tuple[DynamicCache, torch.Tensor]:
    """One cache for rows whose prefixes differ: each row's one-row ``kv`` left-padded with zeros to the longest
    prefix, and the prefixes' attention mask ``(rows, P)``, 0 on the padding."""
    lengths = [kv[0][0].shape[2] for kv in kvs]
    width = max(lengths)
    layers = []
    for layer in zip(*kvs, strict=True):  # one layer, every row
        keys = torch.cat([F.pad(k, (0, 0, width - k.shape[2], 0)) for k, _ in layer])  # (rows, kv_heads, P, d)
        values = torch.cat([F.pad(v, (0, 0, width - v.shape[2], 0)) for _, v in layer])  # (rows, kv_heads, P, d)
        layers.append((keys, values))
    mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths], device=layers[0][0].device)  # (rows, P)
    return DynamicCache(ddp_cache_data=layers), mask


def positions(model: nn.Module, mask: torch.Tensor, new: int) -> dict[str, torch.Tensor]:
    """``position_ids`` of the last ``new`` tokens under ``mask`` ``(B, cached + new)``, counted from the mask (padding
    may sit between a cached prefix and a row's own tokens), for a model whose ``forward`` takes them; else ``{}``
    (savs-mini derives them the same way itself)."""
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return {}
    return {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)[:, -new:]}  # (B, new)


V = TypeVar("V")


class Memo(Generic[V]):
    """Prefilled prefixes kept by key and reused: each computed once, the latest ``size`` kept (None: every one).

    Extraction keeps the latest shared prefix (batches of one task share it in a row), MTV's search the latest
    query's prompt, savs-mini's alignment every distinct question's prefix (about a hundred, each met many times).
    """

    def __init__(self, size: int | None = 1) -> None:
        if size is not None and size < 1:
            raise ValueError(f"a memo keeps at least one entry (or None: all); got size={size}")
        self.size = size
        self.entries: dict[Hashable, V] = {}

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value kept for ``key``, else ``compute()``'s, kept (the oldest entry dropped first where full)."""
        if key not in self.entries:
            if self.size is not None and len(self.entries) >= self.size:
                del self.entries[next(iter(self.entries))]
            self.entries[key] = compute()
        return self.entries[key]

    def clear(self) -> None:
        """Drop every entry (their tensors with them)."""
        self.entries.clear()
