"""Shared-prefix KV caching: a token prefix that many rows share runs once, and every row continues from its cache.

Extraction, the generation baselines, LoRA training and savs-mini's alignment all batch prompts that begin alike
(system prompt, chat header, a task's question, in-context demonstrations). Such a batch is run in two parts:
the prefix, once, into keys and values (``prefix_kv``); then each row's own tokens (``suffix``) against that
cache, given to every row as views (``expanded``) or, where rows' prefixes differ, left-padded to a common
length (``stacked``). ``greedy`` decodes answers from such a cache. This module is the one place that builds
and reads transformers' ``DynamicCache``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import torch
from torch.nn import functional as F
from transformers import DynamicCache

from savs.models.base import Adapter

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


def prefix_kv(run: Callable[[DynamicCache], object]) -> KV:
    """The keys and values that ``run`` leaves in a fresh cache (it runs a prefix with ``cache=`` that cache).

    Gradients flow through them unless the caller turns them off: LoRA back-propagates through its prefix.
    """
    cache = DynamicCache()
    run(cache)
    return [(k, v) for k, v, *_ in cache]


def expanded(kv: KV, rows: int) -> DynamicCache:
    """A fresh cache holding a one-row ``kv`` for each of ``rows`` rows (views, no copies): a pass that extends it
    leaves ``kv`` as it was."""
    return DynamicCache(
        ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in kv]  # (rows, h, P, d)
    )


def shared_prefix_cache(
    adapter: Adapter, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int
) -> DynamicCache:
    """The batch's shared first ``n`` tokens run once (row 0's), their keys and values expanded to every row: the
    cache a pass over ``suffix(batch, n)`` continues."""
    prefix = {"input_ids": input_ids[:1, :n], "attention_mask": attention_mask[:1, :n], "logits_to_keep": 1}
    return expanded(prefix_kv(lambda cache: adapter.forward(prefix, cache=cache, use_cache=True)), len(input_ids))


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


def positions(adapter: Adapter, mask: torch.Tensor, new: int) -> dict[str, torch.Tensor]:
    """``position_ids`` of the last ``new`` tokens under ``mask`` ``(B, cached + new)``, counted from the mask (padding
    may sit between a cached prefix and a row's own tokens), for families whose ``forward`` takes them; else ``{}``
    (savs-mini derives them the same way itself)."""
    if "position_ids" not in inspect.signature(adapter.model.forward).parameters:
        return {}
    return {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)[:, -new:]}  # (B, new)


def _eos_ids(adapter: Adapter) -> list[int]:
    """The token ids that end an answer: the generation config's, else the tokenizer's EOS."""
    eos = getattr(getattr(adapter.model, "generation_config", None), "eos_token_id", None)
    eos = adapter.tokenizer.eos_token_id if eos is None else eos
    return [eos] if isinstance(eos, int) else list(eos)


@torch.inference_mode()
def greedy(
    adapter: Adapter, batch: Mapping[str, torch.Tensor], cache: DynamicCache | None = None, max_new_tokens: int = 16
) -> list[str]:
    """Argmax answers to a left-padded ``batch`` continuing the tokens in ``cache`` (None: no earlier tokens),
    special tokens stripped; ``batch["attention_mask"]`` covers the cached tokens and the batch's.

    Positions come from the attention mask (``positions``). A row that has ended continues with padding; decoding
    stops once every row has ended.
    """
    cache = DynamicCache() if cache is None else cache
    mask = batch["attention_mask"]  # (B, cached + T)
    rows = mask.shape[0]
    inputs = {**batch, "logits_to_keep": 1}
    eos = torch.tensor(_eos_ids(adapter), device=mask.device)
    pad = adapter.tokenizer.pad_token_id
    pad = int(eos[0]) if pad is None else pad
    done = torch.zeros(rows, dtype=torch.bool, device=mask.device)
    new: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        inputs.update(positions(adapter, mask, inputs["input_ids"].shape[1]))
        logits = adapter.forward(inputs, cache=cache, use_cache=True).logits[:, -1]  # (B, V)
        token = logits.argmax(-1).masked_fill(done, pad)  # (B,)
        new.append(token)
        done |= torch.isin(token, eos)
        if done.all():
            break
        mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)  # (B, cached + T + 1)
        inputs = {"input_ids": token[:, None], "attention_mask": mask, "logits_to_keep": 1}
    texts = adapter.tokenizer.batch_decode(torch.stack(new, dim=1), skip_special_tokens=True)
    return [t.strip() for t in texts]
