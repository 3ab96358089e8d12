"""Head-activation extraction: one prefill pass per example, the last prompt token's per-head vectors kept.

``extract_heads`` batches examples, stops each pass after the deepest layer asked for, runs a token
prefix shared by a whole batch (system prompt, chat header, a fixed question) once and reuses its KV
cache, and stores results in an on-disk cache so no example passes through a model twice.
``extract_features`` does the same for the head vectors and a hidden state together (the probes' features),
from the same single pass. With ``SAVS_CACHE_ONLY=1`` (or ``cache_only=True``) extraction only reads the cache and
raises ``savs.cache.CacheMissError`` for what it lacks: a pipeline that must reproduce cached vectors never
recomputes them silently.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from savs.cache import ActivationCache, CacheMissError, cache_only_mode, example_key
from savs.capture import FeatureCapture, capture_features
from savs.examples import Example
from savs.kvcache import KV, Memo, cached_prefix_length, expanded, suffix
from savs.models.base import Adapter


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each row's last real token, whichever side the padding is on."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (attention_mask * positions).argmax(dim=1)


def last_token_from_end(attention_mask: torch.Tensor) -> torch.Tensor:
    """``last_token_index`` counted from the end of the row (negative): the same token in a decoder that puts tokens
    of its own before the prompt's (GIT prepends its image embeddings)."""
    return last_token_index(attention_mask) - attention_mask.shape[1]


def _encode(adapter: Adapter, examples: Sequence[Example], padding_side: str) -> dict[str, torch.Tensor]:
    """``adapter.encode``, refusing a prompt longer than the model's context: past its trained positions a model
    still runs (RoPE extrapolates) but its vectors are not the ones it learned to make."""
    batch = adapter.encode(examples, padding_side=padding_side)
    limit = getattr(adapter.text_config, "max_position_embeddings", None)
    if limit is not None:
        lengths = batch["attention_mask"].sum(dim=1).tolist()  # (B,) tokens per prompt, images included
        over = [(n, e) for n, e in zip(lengths, examples, strict=True) if n > limit]
        if over:
            n, e = over[0]
            raise ValueError(
                f"example {_describe(e)} is {n} tokens long, more than the {limit} positions of {adapter.name} "
                f"(max_position_embeddings); {len(over)} examples of its batch are too long"
            )
    return batch


def _run_batch(
    adapter: Adapter, capture: FeatureCapture, prefixes: Memo[KV] | None, examples: Sequence[Example]
) -> dict[str, torch.Tensor]:
    """The features of one batch (see ``FeatureCapture.run``), through the shared-prefix path where it pays: a lone
    example has no one to share a prefix with, and a short prefix is run with the rest (``cached_prefix_length``)."""
    if prefixes is None or len(examples) == 1:
        batch = _encode(adapter, examples, padding_side="left")
    else:
        batch = _encode(adapter, examples, padding_side="right")
        n_prefix = cached_prefix_length(batch["input_ids"], batch["attention_mask"], adapter.prefix_barrier_ids())
        if n_prefix:
            return prefix_pass(adapter, capture, batch, n_prefix, prefixes)
    index = last_token_from_end(batch["attention_mask"])
    return adapter.prefill(batch, use_cache=False, capture=capture, index=index).features


def prefix_pass(
    adapter: Adapter,
    capture: FeatureCapture,
    batch: dict[str, torch.Tensor],
    n_prefix: int,
    prefixes: Memo[KV] | None = None,
) -> dict[str, torch.Tensor]:
    """The features of a right-padded ``batch`` whose rows share their first ``n_prefix`` tokens: those are prefilled
    once (through the capture, so the pass stops where the capture does; or read from ``prefixes``, a memo of the
    latest prefix), and the rest of every row continues from their keys and values."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    prefix = ids[0, :n_prefix]  # (P,)

    def prefilled() -> KV:
        inputs = {"input_ids": prefix[None], "attention_mask": torch.ones_like(prefix)[None]}  # (1, P) each
        return adapter.prefill(inputs, capture=capture).kv

    kv = (Memo() if prefixes is None else prefixes).get(tuple(prefix.tolist()), prefilled)
    rest = suffix(batch, n_prefix)
    index = last_token_from_end(mask)  # the suffix's last tokens are the row's
    return adapter.prefill(rest, expanded(kv, len(ids)), capture=capture, index=index).features


def extract_heads(
    adapter: Adapter,
    examples: Sequence[Example],
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    prefix_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    cache_only: bool | None = None,
) -> np.ndarray:
    """Per-head vectors at the last prompt token: float32 ``(n_examples, n_layers, n_heads, head_dim)``.

    ``layers``: which decoder layers to keep (real layer numbers), in this order; by default every layer with heads,
    ``adapter.head_layers`` (all layers of a plain stack; a hybrid decoder's attention layers only, so ``n_layers``
    above is then ``len(adapter.head_layers)``). The pass stops after the deepest one.
    ``prefix_cache``: run a token prefix shared by a batch once (where the adapter supports it).
    ``cache_dir``: keep results on disk there and reuse them (see ``savs.cache``); None keeps nothing.
    ``cache_only``: read everything from ``cache_dir`` and run no forward pass, raising ``CacheMissError`` for
    what is missing; None (the default) means "when the environment sets ``SAVS_CACHE_ONLY=1`` and a cache_dir
    is given".
    """
    layers = adapter.head_layers if layers is None else layers
    return extract_features(
        adapter,
        examples,
        heads=layers,
        batch_size=batch_size,
        prefix_cache=prefix_cache,
        cache_dir=cache_dir,
        progress=progress,
        cache_only=cache_only,
    )["heads"]


def extract_features(
    adapter: Adapter,
    examples: Sequence[Example],
    *,
    heads: Sequence[int] = (),
    hidden: int | None = None,
    batch_size: int = 8,
    prefix_cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    cache_only: bool | None = None,
) -> dict[str, np.ndarray]:
    """The per-head vectors of layers ``heads`` (in that order) and/or ``hidden_states[hidden]`` at the last prompt
    token, from one forward pass per example: ``{"heads": (n, len(heads), H, d), "hidden": (n, hidden_size)}``,
    float32.

    The loop every extractor shares: skip what the cache holds, batch similar prompts, run each batch once
    (shared-prefix path where it applies), store each batch as it completes. Each feature of an example has
    its own cache key, so a heads-only run and a heads+hidden run reuse each other's work. Cached arrays are
    verified as they are read; one that fails is set aside with a warning and recomputed. Other arguments as in
    ``extract_heads``.
    """
    _check_arguments(examples, batch_size)
    cache_only = cache_only_mode(cache_only, cache_dir)
    heads = list(heads)
    with capture_features(adapter, heads, hidden) as capture:
        keys, all_layer_keys = _cache_keys(adapter, examples, capture)
        store = ActivationCache(cache_dir, adapter.identity.namespace) if cache_dir is not None else None
        found = _read_cached(store, keys, all_layer_keys, capture.head_layers) if store is not None else {}
        todo = _missing(examples, keys, found)
        if cache_only and todo:
            raise _cache_miss(store, list(todo.values()), keys)
        # hidden_states[0] runs no attention: a heads-free pass stopped there has no KV cache to share
        prefix_cache = prefix_cache and (bool(capture.head_layers) or capture.hidden != 0)
        groups = _form_batches(todo, batch_size)
        found.update(_extract(adapter, capture, todo, keys, groups, prefix_cache, store, progress))
    out = {name: np.stack([found[k] for k in ks]) for name, ks in keys.items()}
    if heads != capture.head_layers:  # captured (and cached) in ascending order; a copy only when asked otherwise
        out["heads"] = out["heads"][:, [capture.head_layers.index(layer) for layer in heads]]  # (n, L, H, d)
    return out


def _check_arguments(examples: object, batch_size: object) -> None:
    """Refuse bad arguments here, by name, rather than as an obscure failure deep inside a batch."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(examples, Sequence):
        raise TypeError(f"examples must be a sequence of savs.examples.Example, got a {type(examples).__name__}")
    if not examples:
        raise ValueError("no examples to extract")
    bad = next((i for i, e in enumerate(examples) if not isinstance(e, Example)), None)
    if bad is not None:
        raise TypeError(f"examples[{bad}] is a {type(examples[bad]).__name__}, not a savs.examples.Example")


def _layer_tag(layers: Sequence[int]) -> str:
    """The part of a head-vector cache key that says which layers an entry holds (ascending)."""
    return ",".join(map(str, layers))


def _cache_keys(
    adapter: Adapter, examples: Sequence[Example], capture: FeatureCapture
) -> tuple[dict[str, list[str]], list[str] | None]:
    """Per output, each example's cache key; and, when the capture keeps a subset of the layers, the keys of the
    examples' all-layers head vectors (which that subset can be sliced from), else None."""
    fingerprints = [e.fingerprint() for e in examples]
    tags = {"heads": _layer_tag(capture.head_layers), "hidden": f"hidden:{capture.hidden}"}
    keys = {name: [example_key(fp, tags[name]) for fp in fingerprints] for name in capture.outputs}
    all_layers = list(adapter.head_layers)
    if not capture.head_layers or capture.head_layers == all_layers:
        return keys, None
    return keys, [example_key(fp, _layer_tag(all_layers)) for fp in fingerprints]


def _read_cached(
    store: ActivationCache, keys: dict[str, list[str]], all_layer_keys: list[str] | None, layers: list[int]
) -> dict[str, np.ndarray]:
    """The verified cached arrays of ``keys``. Head vectors of a layer subset that the cache lacks are sliced from
    the example's all-layers entry where it holds one: a pipeline asking only for its heads' layers runs nothing."""
    found = store.read(list(dict.fromkeys(k for ks in keys.values() for k in ks)))
    if all_layer_keys is not None:
        wanted = {k: full for k, full in zip(keys["heads"], all_layer_keys, strict=True) if k not in found}
        full = store.read(list(dict.fromkeys(wanted.values())))
        found.update({k: full[f][layers] for k, f in wanted.items() if f in full})  # (len(layers), H, d)
    return found


def _cache_miss(store: ActivationCache, missing: list[Example], keys: dict[str, list[str]]) -> CacheMissError:
    """The error of a cache-only extraction that lacks ``missing``: how many, from where, and how to fill it."""
    names = ", ".join(_describe(e) for e in missing[:3]) + (", ..." if len(missing) > 3 else "")
    return CacheMissError(
        f"{len(missing)} examples lack their {'+'.join(keys)} vectors in the activation cache (model namespace "
        f"{store.dir.name}, {store.dir}): {names}. Cache-only mode (SAVS_CACHE_ONLY=1 or cache_only=True) runs "
        "no model; fill the cache with `python -m savs.distributed` or a run without SAVS_CACHE_ONLY."
    )


def _missing(
    examples: Sequence[Example], keys: dict[str, list[str]], found: dict[str, np.ndarray]
) -> dict[int, Example]:
    """The first position of each distinct example with a feature not in ``found`` -> the example."""
    todo: dict[int, Example] = {}
    seen: set[str] = set()
    for i, e in enumerate(examples):
        ks = [keys[name][i] for name in keys]
        if ks[0] not in seen and not all(k in found for k in ks):
            todo[i] = e
        seen.add(ks[0])
    return todo


def _extract(
    adapter: Adapter,
    capture: FeatureCapture,
    todo: dict[int, Example],
    keys: dict[str, list[str]],
    groups: list[list[int]],
    prefix_cache: bool,
    store: ActivationCache | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Run the ``todo`` examples through the model, one batch per group of ``groups`` (positions in ``todo``), storing
    each batch's keys the store lacks as it completes: key -> row."""
    fresh: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        prefixes = Memo() if prefix_cache and adapter.prefix_cache_ok else None  # the latest shared prefix
        if not adapter.padding_ok:  # this model's vectors change when its prompts are padded: one per pass
            groups = [[i] for group in groups for i in group]
        total = sum(map(len, groups))
        bar = tqdm(total=total, desc=f"{'+'.join(keys)} of {adapter.name}", unit="ex", disable=not progress)
        for group in groups:
            features = _run_batch(adapter, capture, prefixes, [todo[i] for i in group])
            _check_finite(features, [todo[i] for i in group])
            batch = {keys[name][i]: row for name in keys for i, row in zip(group, features[name].numpy(), strict=True)}
            if store is not None:
                store.put({k: v for k, v in batch.items() if k not in store})
            fresh.update(batch)
            bar.update(len(group))
        bar.close()
    return fresh


def _form_batches(todo: dict[int, Example], batch_size: int) -> list[list[int]]:
    """The batches (positions in ``todo``) extraction runs ``todo`` in: similar prompts side by side (less padding,
    longer shared prefixes), ``batch_size`` at a time, split where the image count changes. An example's vectors
    depend (by ~1e-5) on its batch's other rows and padding, so this is the one rule every extraction path follows:
    ``plan_batches`` applies it to a whole plan before any split between processes."""
    order = sorted(todo, key=lambda i: (len(todo[i].images), len(todo[i].text), todo[i].text))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [g for chunk in groups for g in _split_by_image_count(chunk, todo)]


def plan_batches(examples: Sequence[Example], batch_size: int) -> list[list[Example]]:
    """The batches ``extract_features(examples, batch_size=batch_size)`` runs on an empty cache in one process (each
    distinct example once). Formed from the examples alone, so handing whole batches to processes
    (``extract_batches``) gives every example the same batch, and the same vectors to the bit, whatever the process
    count."""
    _check_arguments(examples, batch_size)
    todo: dict[int, Example] = {}
    seen: set[str] = set()
    for i, e in enumerate(examples):  # first occurrence of each distinct example, as ``_missing`` keeps it
        if (fp := e.fingerprint()) not in seen:
            todo[i] = e
            seen.add(fp)
    return [[todo[i] for i in group] for group in _form_batches(todo, batch_size)]


def extract_batches(
    adapter: Adapter,
    batches: Sequence[Sequence[Example]],
    *,
    heads: Sequence[int] = (),
    hidden: int | None = None,
    cache_dir: str | Path,
    prefix_cache: bool = True,
    progress: bool = True,
) -> int:
    """Fill the cache at ``cache_dir`` with the features (as ``extract_features``'s) of the examples of ``batches``
    (from ``plan_batches``), running each batch that lacks any of them whole and as given, so its vectors are those
    of that batch however the batches were shared out. Returns how many batches ran."""
    heads = list(heads)
    flat = [e for batch in batches for e in batch]
    if not flat:
        return 0
    _check_arguments(flat, 1)
    with capture_features(adapter, heads, hidden) as capture:
        keys, _ = _cache_keys(adapter, flat, capture)
        store = ActivationCache(cache_dir, adapter.identity.namespace)
        todo = dict(enumerate(flat))
        groups, start = [], 0
        for batch in batches:
            group = list(range(start, start + len(batch)))
            start += len(batch)
            if any(keys[name][i] not in store for name in keys for i in group):
                groups.append(group)
        prefix_cache = prefix_cache and (bool(capture.head_layers) or capture.hidden != 0)
        _extract(adapter, capture, todo, keys, groups, prefix_cache, store, progress)
    return len(groups)


def _describe(example: Example) -> str:
    """An example as an error message names it: its uid, else the start of its text."""
    return example.uid or repr(example.text[:40])


def _check_finite(features: dict[str, torch.Tensor], examples: Sequence[Example]) -> None:
    """Refuse a batch whose features hold NaN or inf (before anything of it is cached), naming the examples."""
    for name, values in features.items():
        bad = ~torch.isfinite(values.flatten(1)).all(dim=1)  # (B,)
        if bad.any():
            names = [_describe(e) for e, b in zip(examples, bad.tolist(), strict=True) if b]
            raise ValueError(
                f"the forward pass gave NaN or inf {name} vectors for {len(names)} examples "
                f"({', '.join(names[:5])}); nothing of their batch was cached"
            )


def _split_by_image_count(group: list[int], todo: dict[int, Example]) -> list[list[int]]:
    """Split a batch where its examples carry different numbers of images (processors batch one count)."""
    parts: dict[int, list[int]] = {}
    for k in group:
        parts.setdefault(len(todo[k].images), []).append(k)
    return list(parts.values())
