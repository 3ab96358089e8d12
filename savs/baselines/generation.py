"""Generation baselines: zero-shot answers and the paper's 4-shot in-context learning (ICL).

Both decode greedily and map the answer onto the label set with ``match_answer``; an answer naming no
label becomes "" and counts as wrong.

ICL prompt layout: the chat template applied to ``n_demos`` demonstrations, each the adapter's own user
turn (its images, then its text) followed by an assistant turn holding its label, and then the query's
user turn plus the generation prompt. The same demonstrations, in the same order, precede every query.

Given a ``cache_dir``, the generated text (before ``match_answer``, so a change to the mapping needs no new
generation) is kept in the activation cache under the model's namespace, one key per example, prompt and
decoding options (``answer_key``): a rerun generates only what the cache lacks.
"""

from __future__ import annotations

import copy
import json
import random
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from savs.baselines.answers import match_answer
from savs.cache import ActivationCache, TextBatches, cache_only_mode, cached_texts, example_key
from savs.examples import Example
from savs.identity import digest
from savs.kvcache import after_prefix, expanded
from savs.models.base import Adapter


def batches(examples: Sequence[Example], batch_size: int) -> list[list[int]]:
    """Indices in batches of one image count each (processors batch one count), similar lengths together."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].images), len(examples[i].text)))
    groups: list[list[int]] = []
    for i in order:
        last = groups[-1] if groups else None
        if last and len(last) < batch_size and len(examples[last[0]].images) == len(examples[i].images):
            last.append(i)
        else:
            groups.append([i])
    return groups


def answer_key(example: Example, prompt: str, **decoding) -> str:
    """Cache key of a generated answer: the example's content, the full prompt it was given (chat template,
    demonstrations' text and labels) and the options that decide the decoding."""
    return example_key(example.fingerprint(), f"answer|{digest(prompt)}|{json.dumps(decoding, sort_keys=True)}")


def zero_shot_keys(adapter: Adapter, examples: Sequence[Example], max_new_tokens: int) -> list[str]:
    """The ``answer_key`` of each example's greedy answer to its bare prompt."""
    return [answer_key(e, adapter.render(e), max_new_tokens=max_new_tokens) for e in examples]


def answer_store(adapter: Adapter, cache_dir: str | Path | None) -> ActivationCache | None:
    """The cache of ``adapter``'s answers (its identity's namespace), or None without a ``cache_dir``."""
    return ActivationCache(cache_dir, adapter.identity.namespace) if cache_dir is not None else None


def generated(
    adapter: Adapter, examples: Sequence[Example], *, max_new_tokens: int, batch_size: int, progress: bool, desc: str
) -> TextBatches:
    """The adapter's greedy answers to ``examples``, a batch at a time: (positions in ``examples``, texts)."""
    for group in tqdm(batches(examples, batch_size), desc=desc, unit="batch", disable=not progress):
        yield group, adapter.generate([examples[i] for i in group], max_new_tokens=max_new_tokens)


def generate_all(
    adapter: Adapter,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "generate",
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
) -> list[str]:
    """The adapter's greedy answer to every example, in input order; ``cache_dir``: kept there and reused
    (``cache_only``: only read, see ``savs.cache.cache_only_mode``)."""
    return cached_texts(
        answer_store(adapter, cache_dir),
        zero_shot_keys(adapter, examples, max_new_tokens),
        lambda todo: generated(
            adapter,
            [examples[i] for i in todo],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            desc=desc,
        ),
        cache_only=cache_only_mode(cache_only, cache_dir),
        what=f"{desc} answers",
    )


def labelled(texts: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Each text mapped onto ``labels`` by ``match_answer`` ("" where none is named: counted wrong)."""
    return [match_answer(t, labels) or "" for t in texts]


def zero_shot(
    adapter: Adapter,
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
) -> list[str]:
    """Greedy answers to the bare prompts, mapped onto ``labels``; the answers cached as ``generate_all`` does."""
    texts = generate_all(
        adapter,
        examples,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        desc="zero-shot",
        cache_dir=cache_dir,
        cache_only=cache_only,
    )
    return labelled(texts, labels)


# ----- in-context learning ------------------------------------------------------------------------
def pick_demos(pool: Sequence[Example], n: int, seed: int = 0) -> list[Example]:
    """``n`` demonstrations drawn with ``seed``: round-robin over labels (balanced where the pool allows), shuffled."""
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for e in pool:
        by_label.setdefault(e.label, []).append(e)
    queues = [rng.sample(items, len(items)) for _, items in sorted(by_label.items())]
    rng.shuffle(queues)  # which labels get the extra slots when n is not a multiple of the label count
    picked: list[Example] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop())
    if len(picked) < n:
        raise ValueError(f"{n} demonstrations asked for, but the pool holds only {len(pool)} examples")
    rng.shuffle(picked)
    return picked


def assistant_turn(user: dict, text: str) -> dict:
    """An assistant turn answering ``user`` with ``text``: plain-text templates take a string, multimodal ones a list
    of items (the form of ``user``'s content says which)."""
    content = text if isinstance(user["content"], str) else [{"type": "text", "text": text}]
    return {"role": "assistant", "content": content}


def demo_turns(adapter: Adapter, demos: Sequence[Example]) -> list[dict]:
    """The adapter's system turns, then each demonstration as its user turn and an assistant turn holding its label."""
    turns = adapter.system_turns()
    for demo in demos:
        user = adapter.user_turn(demo)
        turns += [user, assistant_turn(user, demo.label)]
    return turns


# How ``answer_ids`` makes an answer's tokens, in the identities of what is trained on them (LoRA weights, MTV fits):
# bumped when it changes, so that nothing fitted to the old tokens is served from a cache.
ANSWER_IDS_VERSION = 2  # 1: the label glued to the generation prompt; 2: as the chat template writes it


def _token_ids(adapter: Adapter, text: str) -> list[int]:
    return adapter.tokenizer(text, add_special_tokens=False)["input_ids"]


def _templated_answer(adapter: Adapter, example: Example, label: str, prompt: str) -> str | None:
    """``prompt`` followed by what the chat template writes in an assistant turn holding ``label``, up to the label's
    end; None where the adapter has no chat template or its conversation with that turn does not extend ``prompt``
    (a family whose prompt is not the template's, as InstructBLIP's)."""
    if not getattr(adapter.processor, "chat_template", None):
        return None
    messages = adapter.messages(example)
    full = adapter.processor.apply_chat_template([*messages, assistant_turn(messages[-1], label)], tokenize=False)
    rest = full[len(prompt) :] if full.startswith(prompt) else ""
    end = rest.find(label)
    return prompt + rest[: end + len(label)] if end >= 0 else None


def answer_ids(adapter: Adapter, example: Example, label: str) -> list[int]:
    """The tokens of ``label`` answering ``example``'s zero-shot prompt, as the chat template writes an assistant
    turn: what ICL demonstrations show and generation emits (a template whose prompt ends in ``Assistant:`` writes
    ``Assistant: cat``, so the answer starts with `` cat``'s tokens, not ``cat``'s; the targets of LoRA and MTV).

    Without such a template, the tokens ``label`` gets right after the prompt; failing that, its own tokens.
    """
    prompt = adapter.render(example)
    before = _token_ids(adapter, prompt)
    for text in (_templated_answer(adapter, example, label, prompt), prompt + label):
        after = _token_ids(adapter, text) if text is not None else []
        if len(after) > len(before) and after[: len(before)] == before:
            return after[len(before) :]
    ids = _token_ids(adapter, label)
    if not ids:
        raise ValueError(f"label {label!r} has no tokens")
    return ids


def icl_prompt(adapter: Adapter, demos: Sequence[Example], query: Example) -> str:
    """The full ICL prompt string: demonstrations, then the query, then the generation prompt."""
    messages = [*demo_turns(adapter, demos), adapter.user_turn(query)]
    return adapter.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _prerendered(adapter: Adapter) -> Adapter:
    """A shallow copy of ``adapter`` rendering ``example.meta["prompt"]``: every family's ``encode`` and
    ``generate`` then handle multi-turn prompts (image placeholders included) unchanged; model shared."""
    view = copy.copy(adapter)
    view.render = lambda example: example.meta["prompt"]
    return view


def _prompted(prompt: str, images: tuple, like: Example) -> Example:
    """An example carrying a ready-made prompt and the images of all its placeholders, in order."""
    return Example(text=like.text, label=like.label, images=images, uid=like.uid, meta={"prompt": prompt})


def in_context(
    adapter: Adapter,
    demos: Sequence[Example],
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    n_demos: int = 4,
    seed: int = 0,
    batch_size: int = 4,
    max_new_tokens: int = 16,
    prefix_cache: bool = True,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
) -> list[str]:
    """``n_demos``-shot ICL: the same demonstrations (``pick_demos(demos, n_demos, seed)``) before every query.

    Where a cached prefix gives the model's own numbers (``adapter.prefix_cache_ok``) the demonstrations, images
    included, are prefilled once and every query is decoded from their KV cache by plain argmax (``Adapter.decode``).
    Elsewhere each full prompt goes through the family's own ``generate`` (greedy, with whatever extras the
    model's generation config sets): Qwen2-VL (multimodal RoPE), and, with a warning, any prompt whose tokens
    do not split cleanly where the demonstrations end: LLaVA-OneVision, whose processor gives an image fewer
    tokens in a multi-image prompt (no anyres crops) than alone.
    ``cache_dir``: the answers kept there, keyed by the full prompt, the demonstrations' content in order and the
    decoding options (``prefix_cache`` among them, as it can change the decoder); ``cache_only`` as ``generate_all``.
    """
    if not examples:
        return []
    shots = pick_demos(demos, n_demos, seed)
    prompts = [icl_prompt(adapter, shots, e) for e in examples]
    decoding = {
        "demos": [d.fingerprint() for d in shots],
        "max_new_tokens": max_new_tokens,
        "prefix_cache": prefix_cache,
    }
    texts = cached_texts(
        answer_store(adapter, cache_dir),
        [answer_key(e, p, **decoding) for e, p in zip(examples, prompts, strict=True)],
        lambda todo: _icl_generated(
            adapter,
            shots,
            [examples[i] for i in todo],
            [prompts[i] for i in todo],
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            prefix_cache=prefix_cache,
            progress=progress,
            desc=f"{n_demos}-shot ICL",
        ),
        cache_only=cache_only_mode(cache_only, cache_dir),
        what="ICL answers",
    )
    return labelled(texts, labels)


def _icl_generated(
    adapter: Adapter,
    shots: Sequence[Example],
    queries: Sequence[Example],
    prompts: Sequence[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    prefix_cache: bool,
    progress: bool,
    desc: str,
) -> TextBatches:
    """Greedy answers to the queries' ICL ``prompts``, a batch at a time: (positions in ``queries``, texts)."""
    shot_images = tuple(im for d in shots for im in d.images)
    view = _prerendered(adapter)
    split = _split_after_demos(adapter, view, shots, prompts, queries) if prefix_cache else None
    bar = tqdm(batches(queries, batch_size), desc=desc, unit="batch", disable=not progress)
    if split is None:
        for group in bar:
            batch = [_prompted(prompts[i], shot_images + queries[i].images, queries[i]) for i in group]
            yield group, view.generate(batch, max_new_tokens=max_new_tokens)
        return
    prefix, suffixes = split
    demos = view.encode([_prompted(prefix, shot_images, shots[0])])
    n_cached = demos["input_ids"].shape[1]
    with torch.inference_mode():
        kv = adapter.prefill({**demos, "logits_to_keep": 1}).kv
    for group in bar:
        batch = view.encode([_prompted(suffixes[i], queries[i].images, queries[i]) for i in group])
        yield group, adapter.decode(after_prefix(batch, n_cached), expanded(kv, len(group)), max_new_tokens)


def _split_after_demos(
    adapter: Adapter, view: Adapter, shots: Sequence[Example], prompts: Sequence[str], examples: Sequence[Example]
) -> tuple[str, list[str]] | None:
    """The demonstrations' text and each query's remainder, or None where the cached path does not apply.

    The split sits where the last demonstration's turn ends (trailing whitespace goes to the query side,
    where tokenizers attach it); it is used only if the first query's prompt tokenizes to exactly the
    prefix's tokens followed by its remainder's. Its warnings name the line that called ``in_context``
    (``stacklevel`` counts this function, ``_icl_generated``, ``cached_texts`` and ``in_context``).
    """
    if not adapter.prefix_cache_ok:
        return None
    prefix = adapter.processor.apply_chat_template(demo_turns(adapter, shots), tokenize=False).rstrip()
    if not all(p.startswith(prefix) for p in prompts):
        warnings.warn("ICL: the chat template does not extend the demonstrations' text; no prefix cache", stacklevel=5)
        return None
    suffixes = [p[len(prefix) :] for p in prompts]
    shot_images = tuple(im for d in shots for im in d.images)
    q = examples[0]
    ids = [
        view.encode([_prompted(text, images, q)])["input_ids"][0]
        for text, images in ((prefix, shot_images), (suffixes[0], q.images), (prompts[0], shot_images + q.images))
    ]
    if not torch.equal(torch.cat(ids[:2]), ids[2]):
        warnings.warn("ICL: the prompt's tokens change where the demonstrations end; no prefix cache", stacklevel=5)
        return None
    return prefix, suffixes
