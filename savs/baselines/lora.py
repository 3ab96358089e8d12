"""LoRA baseline: fine-tune the language model on the few-shot set to answer with the label, then generate.

Recipe: LoRA (``peft``) on the decoder layers' ``target_modules`` only (the vision tower is never adapted),
rank ``r``, alpha ``2 r``, no dropout; the model stays in eval mode, so the run is deterministic given
``seed`` (LoRA init and batch order). Each example is its zero-shot prompt (chat template plus generation
prompt, exactly what generation sees) followed by the label as the chat template writes an assistant turn
(``answer_ids``: `` cat`` after ``Assistant:``) and the tokenizer's EOS; cross-entropy on those answer tokens only.
AdamW at a constant ``lr``, ``epochs`` passes over the set.

Given a ``cache_dir``, the trained LoRA weights and the tuned model's answers are kept in the activation cache under
the tuned model's own namespace (the base model's identity plus a hash of the train set and the recipe): a rerun
whose answers are all cached trains nothing, and one that needs new answers loads the weights instead of training.
"""

from __future__ import annotations

import copy
import hashlib
import random
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from savs.baselines.generation import ANSWER_IDS_VERSION, answer_ids, generated, labelled, zero_shot_keys
from savs.cache import ActivationCache, CacheMissError, TextBatches, cache_only_mode, cached_texts
from savs.examples import Example
from savs.identity import ModelIdentity
from savs.kvcache import PER_TOKEN_INPUTS, cached_prefix_length, suffix
from savs.models.base import Adapter

WEIGHTS = "lora-weights:"  # cache key prefix of a trained LoRA parameter (then its name in the model)


@dataclass(frozen=True)
class LoraRecipe:
    """A fine-tune's options (the module docstring's recipe): with the train set they decide the LoRA weights."""

    epochs: int = 2
    lr: float = 1e-3
    r: int = 8
    seed: int = 0
    target_modules: Sequence[str] = ("q_proj", "v_proj")
    batch_size: int = 8
    prefix_cache: bool = True  # how the loss is computed, not what it is (``answer_loss``): not in the name

    def name(self, train: Sequence[Example]) -> str:
        """``lora-<hash>`` of the train set (content, labels, order), the options that decide the weights and the way
        the answer tokens are made (``ANSWER_IDS_VERSION``)."""
        options = (self.epochs, self.lr, self.r, self.seed, tuple(self.target_modules), self.batch_size)
        run = "|".join([e.fingerprint() + e.label for e in train] + [str(options), f"answers {ANSWER_IDS_VERSION}"])
        return f"lora-{hashlib.sha256(run.encode()).hexdigest()[:12]}"

    def identity(self, adapter: Adapter, train: Sequence[Example]) -> ModelIdentity:
        """The tuned model's identity: ``adapter``'s plus this run's name, so its cache namespace is its own."""
        return replace(adapter.identity, extra=f"{adapter.identity.extra}+{self.name(train)}")


def lora_targets(adapter: Adapter, target_modules: Sequence[str]) -> list[str]:
    """Full names of the decoder layers' modules called one of ``target_modules`` (vision towers excluded)."""
    in_decoder = {id(m) for m in adapter.layers().modules()}
    names = [
        name
        for name, module in adapter.model.named_modules()
        if id(module) in in_decoder and name.rsplit(".", 1)[-1] in target_modules
    ]
    if not names:
        raise ValueError(f"no module named {tuple(target_modules)} in the decoder layers of {adapter.name}")
    return names


def answer_batch(adapter: Adapter, examples: Sequence[Example]) -> tuple[dict, torch.Tensor]:
    """Each prompt followed by its label + EOS, right-padded: model inputs and targets ``(B, T)``.

    ``targets`` holds the answer tokens where they sit in ``input_ids`` and -100 everywhere else.
    """
    tok = adapter.tokenizer
    prompts = dict(adapter.encode(examples, padding_side="right"))
    lengths = prompts["attention_mask"].sum(1).tolist()
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    answers = [answer_ids(adapter, e, e.label) + eos for e in examples]
    width = max(n + len(a) for n, a in zip(lengths, answers, strict=True))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = dict(prompts)
    for key in PER_TOKEN_INPUTS:  # ids, token types: the prompt part copied, the rest pad / 0 (text)
        if key in prompts:
            batch[key] = prompts[key].new_full((len(examples), width), pad if key == "input_ids" else 0)
            batch[key][:, : prompts[key].shape[1]] = prompts[key]
    batch["attention_mask"] = prompts["attention_mask"].new_zeros(len(examples), width)
    targets = torch.full((len(examples), width), -100, device=batch["input_ids"].device)
    for row, (n, answer) in enumerate(zip(lengths, answers, strict=True)):
        batch["input_ids"][row, n : n + len(answer)] = torch.tensor(answer)
        batch["attention_mask"][row, : n + len(answer)] = 1
        targets[row, n : n + len(answer)] = torch.tensor(answer)
    return batch, targets


def answer_loss(adapter: Adapter, batch: dict, targets: torch.Tensor, prefix_cache: bool = True) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens; logits are computed only where they predict one.

    With ``prefix_cache`` (where the family supports it) the token prefix every row shares (system prompt,
    chat header, a task's fixed question) runs once for the batch, its KV cache expanded to every row and
    back-propagated through: the same loss at a fraction of the cost when a task's prompts share a question.
    """
    ids, mask = batch["input_ids"], batch["attention_mask"]
    n = 0
    cols = (targets != -100).any(0).nonzero()[:, 0]
    if prefix_cache and adapter.prefix_cache_ok:  # the first answer token's predictor stays in the rest
        n = min(cached_prefix_length(ids, mask, adapter.prefix_barrier_ids()), int(cols[0]) - 1)
    keep = torch.arange(int(cols[0]) - 1, int(cols[-1]), device=ids.device)  # positions predicting an answer token
    past = None
    if n:
        past = adapter.shared_prefix_cache(ids, mask, n)
        batch = suffix(batch, n)
    logits = adapter.forward({**batch, "logits_to_keep": keep - n}, cache=past, use_cache=n > 0).logits
    return F.cross_entropy(logits.float().flatten(0, 1), targets[:, keep + 1].flatten(), ignore_index=-100)


def _shuffled_batches(train: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """A fresh shuffle of ``train`` cut into batches, each split by image count (processors batch one count)."""
    order = rng.sample(list(train), len(train))
    out = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out += [[e for e in chunk if len(e.images) == n] for n in sorted({len(e.images) for e in chunk})]
    return out


def _train(
    adapter: Adapter, params: list[torch.nn.Parameter], train: Sequence[Example], recipe: LoraRecipe, progress: bool
) -> None:
    """AdamW on the answer tokens' cross-entropy; the set is reshuffled each epoch with the recipe's seed."""
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    rng = random.Random(recipe.seed)
    plan = [group for _ in range(recipe.epochs) for group in _shuffled_batches(train, recipe.batch_size, rng)]
    bar = tqdm(plan, desc="LoRA", unit="step", disable=not progress)
    with torch.enable_grad():
        for group in bar:
            loss = answer_loss(adapter, *answer_batch(adapter, group), prefix_cache=recipe.prefix_cache)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{loss.item():.3f}")


def _load_weights(store: ActivationCache | None, params: dict[str, torch.nn.Parameter]) -> bool:
    """Copy the cached weights of ``params`` (by name) into them; False, copying nothing, where any is missing."""
    if store is None:
        return False
    found = store.read([WEIGHTS + name for name in params])
    if len(found) < len(params):
        return False
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.from_numpy(found[WEIGHTS + name]))
    return True


def _save_weights(store: ActivationCache | None, params: dict[str, torch.nn.Parameter]) -> None:
    """Keep the trained ``params`` in the cache as one shard (float32: exact for half-precision weights too); weights
    that training made NaN or inf are not kept (the cache would refuse them), with a warning."""
    if store is None:
        return
    arrays = {WEIGHTS + name: p.detach().float().cpu().numpy() for name, p in params.items()}
    if all(np.isfinite(a).all() for a in arrays.values()):
        store.put(arrays)
    else:
        warnings.warn("LoRA training gave NaN or inf weights; they are not cached", RuntimeWarning, stacklevel=3)


@contextmanager
def lora_finetune(
    adapter: Adapter,
    train: Sequence[Example],
    *,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
    **options,
) -> Iterator[Adapter]:
    """Within the block, an adapter whose model carries LoRA weights trained on ``train``; removed on exit.

    ``options`` are ``LoraRecipe``'s fields (epochs, lr, r, seed, target_modules, batch_size, prefix_cache).
    LoRA layers are injected into ``adapter.model`` in place (the block yields a shallow copy under a new
    name, so its activation-cache namespace differs). On exit ``unload()`` puts the original modules back,
    untouched (no merge), every parameter's ``requires_grad`` is restored, and so is the input embeddings'
    hook list (peft hooks them on models, like savs-mini's, that do not say they are not checkpointing).
    Each step runs its batch's shared prompt prefix once (``prefix_cache``, see ``answer_loss``): a task's
    prompts share most of their tokens, so this is most of what makes training on a CPU affordable.
    ``cache_dir``: the trained weights are kept there (safetensors shards under the tuned model's namespace) and
    loaded instead of training when present; ``cache_only`` (see ``savs.cache.cache_only_mode``): never train,
    raise ``CacheMissError`` where they are missing.
    """
    from peft import LoraConfig, get_peft_model  # optional dependency (the notebooks extra)

    recipe, only = LoraRecipe(**options), cache_only_mode(cache_only, cache_dir)
    identity = recipe.identity(adapter, train)  # before LoRA layers join the parameters a source-less identity hashes
    store = ActivationCache(cache_dir, identity.namespace) if cache_dir is not None else None
    model = adapter.model
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    embed_hooks = dict(model.get_input_embeddings()._forward_hooks)
    targets = lora_targets(adapter, recipe.target_modules)
    config = LoraConfig(r=recipe.r, lora_alpha=2 * recipe.r, lora_dropout=0.0, target_modules=targets)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        torch.manual_seed(recipe.seed)
        peft_model = get_peft_model(model, config)
    try:
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        if not _load_weights(store, params):
            if only:
                raise CacheMissError(
                    f"the LoRA weights of {adapter.name}+{recipe.name(train)} are not in the cache ({store.dir}); "
                    "cache-only mode (SAVS_CACHE_ONLY=1) trains nothing: fill the cache with a run without it"
                )
            _train(adapter, list(params.values()), train, recipe, progress)
            _save_weights(store, params)
        tuned = copy.copy(adapter)
        tuned.name = f"{adapter.name}+{recipe.name(train)}"
        tuned.identity = identity
        yield tuned
    finally:
        peft_model.unload()
        for name, p in model.named_parameters():
            p.requires_grad_(trainable[name])
        hooks = model.get_input_embeddings()._forward_hooks
        for key in set(hooks) - set(embed_hooks):
            del hooks[key]
        model.eval()


def lora_predict(
    adapter: Adapter,
    train: Sequence[Example],
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    max_new_tokens: int = 16,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
    **options,
) -> list[str]:
    """Fine-tune on ``train`` (``lora_finetune`` with ``options``; its ``batch_size`` batches the answers too),
    answer ``examples`` greedily, map onto ``labels``; model restored.

    ``cache_dir``: the answers (raw text, keyed like ``zero_shot``'s) and the weights kept there under the tuned
    model's namespace: when every answer is cached nothing is trained; otherwise cached weights are loaded.
    """
    recipe = LoraRecipe(**options)
    only = cache_only_mode(cache_only, cache_dir)
    store = ActivationCache(cache_dir, recipe.identity(adapter, train).namespace) if cache_dir is not None else None

    def generate(todo: list[int]) -> TextBatches:
        with lora_finetune(adapter, train, progress=progress, cache_dir=cache_dir, cache_only=only, **options) as tuned:
            yield from generated(
                tuned,
                [examples[i] for i in todo],
                max_new_tokens=max_new_tokens,
                batch_size=recipe.batch_size,
                progress=progress,
                desc="LoRA answers",
            )

    keys = zero_shot_keys(adapter, examples, max_new_tokens)
    return labelled(cached_texts(store, keys, generate, cache_only=only, what="LoRA answers"), labels)
