"""Multimodal Task Vectors (MTV; Huang et al., NeurIPS 2024, arXiv 2406.15334), the baseline closest to SAVs.

MTV compresses many-shot in-context learning into a few attention heads:

1. **Mean activations** (``mean_head_activations``): ``n_trials`` forward passes, each over an ICL prompt of
   ``n_shots`` demonstrations drawn at random from the few-shot set plus one more of its examples as the query;
   every head's output at the last prompt token (the input of ``o_proj``, head-major, as ``savs.capture`` reads
   it) is averaged over the passes.
2. **Where to patch** (``reinforce_heads`` then ``pick_heads``): one Bernoulli logit per (layer, head). Each
   REINFORCE step draws one few-shot example as a zero-shot query, samples ``n_samples`` head masks, patches
   each mask's heads with their means (``patch_heads``) and scores the mask by the cross-entropy of the query's
   first answer token (as the chat template writes the answer: ``answer_token``); the standardised losses weight
   the masks' log-probabilities (Adam on the logits).
   Then ``n_candidates`` masks drawn from the trained probabilities are each scored by the mean first-token
   loss over ``n_validation`` few-shot examples, and the best one is kept.
3. **Inference** (``mtv_generate``): the bare zero-shot prompt, with the chosen heads' outputs at its last token
   replaced by the means, then greedy decoding; ``mtv_predict`` maps the answers onto the labels with
   ``match_answer``, like every other generation baseline. ``every_token=True`` patches each generated token's
   position too, as the authors' code does (below); the default follows the method as described (the paper, issue
   #12: the last token's heads are replaced, then the model generates). The authors' way garbles multi-token answers
   (the heads of every new token get the "answer starts here" means, and the model restarts: "TrouSneckTrouS"; the
   README's protocol table has the numbers on savs-mini); the paper's MTV rows track zero-shot on multi-token labels
   (EuroSAT, Pets), which fits the prompt-only reading.

Where the defaults come from (the authors' code, ``Brandon3964/MultiModal-Task-Vector``, ``MTV/``):

- ``n_shots=4``, ``n_trials=100``: ``eval_scripts/eval_okvqa.sh`` and ``eval_flower.sh`` (``--num_shot 4
  --num_example 100``, the arguments of ``get_last_mean_head_activations``; their VizWiz script uses 16 shots).
  Demonstrations and query are drawn uniformly at random (``random.sample``), as their ``format_*`` functions do;
  ours are drawn without replacement from the seed's few-shot set and laid out as our ICL baseline's prompt
  (``savs.baselines.generation.icl_prompt``: chat turns), not as their single-turn text.
- ``steps=600``, ``lr=0.1`` (Adam), ``n_samples=32`` masks per step, logits initialised to ``-1`` (every head
  patched with probability 0.27), probabilities clamped to ``[eps, 1 - eps]`` with ``eps=1e-3``, losses
  standardised as ``(loss - mean) / (std + eps)``: ``mtv_utils.reinforce``.
- the REINFORCE queries: their code draws from 100 random training examples (``mtv_eval.py``); ours from the
  few-shot set (at most ``reinforce_pool`` of it, default 100).
- ``n_candidates=10`` masks, scored on the first 50 training examples (``mtv_eval.py``): ``n_validation=50``
  examples of the few-shot set, drawn with the seed (our few-shot sets are in label order).
- ``every_token=True``: their patch replaces the heads' last-position input of ``o_proj`` on every forward pass,
  so during generation every new token is patched too (``last_replace_activation_w_avg`` under ``TraceDict``
  around a KV-cached ``generate``). Not our default (item 3 above).

On the CPU, use smaller values (``n_trials``, ``steps``, ``n_samples``, ``n_validation``): the tests run a handful
of steps on tiny random models.

Cost: ``n_trials`` ICL passes; ``steps`` x (one pass over the query's prompt, then ``n_samples`` one-token passes
from its KV cache, batched; families without a reusable prefix cache (Qwen2-VL's multimodal RoPE) run
``n_samples`` full passes instead); ``n_candidates`` x ``n_validation`` prompt passes; then one patched generation
per test example.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from savs.baselines.generation import (
    ANSWER_IDS_VERSION,
    _prerendered,
    _prompted,
    answer_ids,
    answer_key,
    batches,
    icl_prompt,
    labelled,
)
from savs.cache import ActivationCache, TextBatches, cache_only_mode, cached_texts
from savs.capture import capture_features
from savs.examples import Example
from savs.extract import last_token_index
from savs.identity import ModelIdentity
from savs.kvcache import KV, PER_TOKEN_INPUTS, Memo, expanded, positions
from savs.models.base import Adapter

# The authors' settings (module docstring says where each comes from).
N_SHOTS = 4
N_TRIALS = 100
STEPS = 600
LR = 0.1
N_SAMPLES = 32
INIT_LOGIT = -1.0
EPS = 1e-3
REINFORCE_POOL = 100
N_CANDIDATES = 10
N_VALIDATION = 50


@dataclass(frozen=True)
class MTV:
    """A fitted task vector: per-head mean activations ``(L, H, d)`` (fp32, CPU), the chosen heads ``(L, H)`` (bool)
    and the trained Bernoulli logits ``(L, H)`` they were drawn from."""

    means: torch.Tensor
    heads: torch.Tensor
    logits: torch.Tensor

    @property
    def locations(self) -> list[tuple[int, int]]:
        """The patched (layer, head) pairs, in order."""
        return [tuple(ij) for ij in self.heads.nonzero().tolist()]


# ----- 1. mean activations ------------------------------------------------------------------------------------------
def icl_trials(pool: Sequence[Example], n_shots: int, n_trials: int, seed: int) -> list[tuple[list[Example], Example]]:
    """``n_trials`` (demonstrations, query) draws: ``n_shots + 1`` distinct examples of ``pool`` each, seeded."""
    if len(pool) < n_shots + 1:
        raise ValueError(
            f"MTV needs at least {n_shots + 1} few-shot examples for {n_shots}-shot prompts; got {len(pool)}"
        )
    rng = random.Random(seed)
    out = []
    for _ in range(n_trials):
        picked = rng.sample(list(pool), n_shots + 1)
        out.append((picked[:-1], picked[-1]))
    return out


@torch.inference_mode()
def mean_head_activations(
    adapter: Adapter,
    pool: Sequence[Example],
    *,
    n_shots: int = N_SHOTS,
    n_trials: int = N_TRIALS,
    seed: int = 0,
    batch_size: int = 4,
    progress: bool = True,
) -> torch.Tensor:
    """Every head's output at the last token of ``n_shots``-shot ICL prompts, averaged over ``n_trials`` prompts:
    ``(L, H, d)``, fp32 on the CPU."""
    view = _prerendered(adapter)
    prompts = [
        _prompted(icl_prompt(adapter, shots, query), tuple(im for e in (*shots, query) for im in e.images), query)
        for shots, query in icl_trials(pool, n_shots, n_trials, seed)
    ]
    total = torch.zeros(adapter.n_layers, adapter.n_heads, adapter.head_dim)
    with capture_features(adapter, heads=range(adapter.n_layers)) as capture:
        for group in tqdm(batches(prompts, batch_size), desc="MTV means", unit="batch", disable=not progress):
            batch = view.encode([prompts[i] for i in group], padding_side="left")
            last = last_token_index(batch["attention_mask"])
            inputs = {**batch, "logits_to_keep": 1}
            heads = adapter.prefill(inputs, use_cache=False, capture=capture, index=last).features["heads"]
            total += heads.sum(0)  # (B, L, H, d) -> (L, H, d)
    return total / len(prompts)


# ----- the patch ----------------------------------------------------------------------------------------------------
@contextmanager
def patch_heads(adapter: Adapter, means: torch.Tensor, mask: torch.Tensor, passes: int | None = None) -> Iterator[None]:
    """Within the block, every forward pass (the first ``passes`` of them, if given) has the ``mask``-ed heads'
    outputs at its last position replaced by ``means``.

    ``means``: ``(L, H, d)``; ``mask``: ``(L, H)`` for every row alike, or ``(B, L, H)`` with one mask per row of
    a batch of ``B``. A forward pre-hook on each touched layer's ``o_proj`` rewrites its input (the heads'
    outputs, concatenated head-major) at the last position only; other heads, positions and layers are untouched.
    Batches must be left-padded (every row's last token in the last column), as ``Adapter.encode`` pads by default.
    """
    mask = torch.as_tensor(mask).bool()
    if mask.shape[-2:] != (adapter.n_layers, adapter.n_heads) or mask.dim() not in (2, 3):
        raise ValueError(f"mask shape {tuple(mask.shape)}; expected ([B,] {adapter.n_layers}, {adapter.n_heads})")
    if tuple(means.shape) != (adapter.n_layers, adapter.n_heads, adapter.head_dim):
        raise ValueError(
            f"means shape {tuple(means.shape)}; expected {(adapter.n_layers, adapter.n_heads, adapter.head_dim)}"
        )
    rows = mask if mask.dim() == 3 else mask[None]  # (B or 1, L, H)
    layers = rows.any(dim=(0, 2)).nonzero().flatten().tolist()
    H, d = adapter.n_heads, adapter.head_dim
    calls = dict.fromkeys(layers, 0)  # forward passes seen, per layer

    def hook(module, args, layer: int):
        calls[layer] += 1
        if passes is not None and calls[layer] > passes:
            return None
        x = args[0]  # (B, T, H * d)
        keep = rows[:, layer].to(x.device)[:, :, None]  # (B or 1, H, 1)
        if keep.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"{keep.shape[0]} per-row masks for a batch of {x.shape[0]}")
        last = x[:, -1].reshape(x.shape[0], H, d)
        patched = torch.where(keep, means[layer].to(device=x.device, dtype=x.dtype), last)
        x = x.clone()
        x[:, -1] = patched.reshape(x.shape[0], H * d)
        return (x, *args[1:])

    handles = [
        adapter.o_proj(layer).register_forward_pre_hook(lambda m, a, layer=layer: hook(m, a, layer)) for layer in layers
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ----- 2. where to patch --------------------------------------------------------------------------------------------
def _check_n_samples(n_samples: int) -> None:
    """Refuse fewer than two masks per step: their losses are standardised by their standard deviation."""
    if n_samples < 2:
        raise ValueError(
            f"MTV's REINFORCE needs n_samples >= 2 masks per step (their losses are standardised by their standard "
            f"deviation); got {n_samples}"
        )


def reinforce_heads(
    loss_fn: Callable[[torch.Tensor, int], torch.Tensor],
    shape: tuple[int, int],
    *,
    steps: int = STEPS,
    lr: float = LR,
    n_samples: int = N_SAMPLES,
    init_logit: float = INIT_LOGIT,
    eps: float = EPS,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """REINFORCE over one Bernoulli logit per (layer, head): the trained logits ``shape``.

    Each step samples ``n_samples`` masks ``(n_samples, *shape)`` (bool) from ``sigmoid(logits)`` clamped to
    ``[eps, 1 - eps]`` and asks ``loss_fn(masks, step)`` for one loss per mask (lower is better); the losses,
    standardised, weight the masks' log-probabilities and Adam (``lr``) takes one step on their sum. Seeded:
    the same ``seed`` and losses give the same logits.
    """
    _check_n_samples(n_samples)
    generator = torch.Generator().manual_seed(seed)
    logits = torch.full(shape, float(init_logit), requires_grad=True)
    optim = torch.optim.Adam([logits], lr=lr)
    for step in tqdm(range(steps), desc="MTV REINFORCE", unit="step", disable=not progress):
        probs = torch.sigmoid(logits).clamp(eps, 1 - eps)
        masks = torch.bernoulli(probs.detach().expand(n_samples, *shape).contiguous(), generator=generator)
        # a plain tensor (losses computed under inference mode cannot enter autograd)
        losses = torch.tensor(torch.as_tensor(loss_fn(masks.bool(), step)).flatten().tolist(), dtype=torch.float32)
        if losses.shape != (n_samples,):
            raise ValueError(f"loss_fn gave {tuple(losses.shape)} losses for {n_samples} masks")
        advantage = (losses - losses.mean()) / (losses.std() + eps)
        log_probs = torch.distributions.Bernoulli(probs).log_prob(masks)  # (n_samples, *shape)
        policy_loss = (log_probs * advantage.view(-1, *([1] * len(shape)))).sum()
        optim.zero_grad()
        policy_loss.backward()
        optim.step()
    return logits.detach()


def pick_heads(
    logits: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], float],
    *,
    n_candidates: int = N_CANDIDATES,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """The best of ``n_candidates`` masks drawn from ``sigmoid(logits)``: the one with the lowest ``loss_fn(mask)``
    (the first of equals); seeded."""
    generator = torch.Generator().manual_seed(seed)
    probs = torch.sigmoid(logits)
    best, best_loss = None, math.inf
    for _ in tqdm(range(n_candidates), desc="MTV candidates", unit="mask", disable=not progress):
        mask = torch.bernoulli(probs, generator=generator).bool()
        loss = float(loss_fn(mask))
        if loss < best_loss:
            best, best_loss = mask, loss
    if best is None:
        raise ValueError(f"no candidate mask scored a finite loss (n_candidates={n_candidates})")
    return best


# ----- the losses on a model ----------------------------------------------------------------------------------------
def answer_token(adapter: Adapter, example: Example) -> int:
    """The first token of ``example.label`` as an answer to its zero-shot prompt (``answer_ids``: what the ICL
    demonstrations show and generation would emit)."""
    return answer_ids(adapter, example, example.label)[0]


class _QueryLosses:
    """First-answer-token cross-entropy of one zero-shot query under many head masks.

    Where the family supports it, the prompt up to its last token is prefilled once and its KV cache reused: a patch
    at the last position cannot change earlier positions, so each mask costs only a one-token pass (``chunk`` masks
    per pass). Elsewhere each chunk of masks is a batch of full passes over the query repeated.
    """

    def __init__(self, adapter: Adapter, query: Example, means: torch.Tensor, chunk: int) -> None:
        self.adapter, self.query, self.means, self.chunk = adapter, query, means, chunk
        self.target = answer_token(adapter, query)
        self.kv: KV | None = None
        batch = adapter.encode([query])
        if adapter.prefix_cache_ok and batch["input_ids"].shape[1] > 1:
            head = {k: (v[:, :-1] if k in PER_TOKEN_INPUTS or k == "attention_mask" else v) for k, v in batch.items()}
            with torch.inference_mode():
                self.kv = adapter.prefill({**head, "logits_to_keep": 1}).kv
            self.last_id, self.mask = batch["input_ids"][:, -1:], batch["attention_mask"]  # (1, 1), (1, T)

    @torch.inference_mode()
    def _logits(self, masks: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(K, V)`` of the query under each of ``masks`` ``(K, L, H)``."""
        out = []
        for start in range(0, masks.shape[0], self.chunk):
            part = masks[start : start + self.chunk]
            b = part.shape[0]
            if self.kv is None:
                inputs, past = {**self.adapter.encode([self.query] * b), "logits_to_keep": 1}, None
            else:
                past, mask = expanded(self.kv, b), self.mask.expand(b, -1)  # mask (b, T)
                inputs = {"input_ids": self.last_id.expand(b, 1), "attention_mask": mask, "logits_to_keep": 1}
                inputs.update(positions(self.adapter.model, mask, 1))
            with patch_heads(self.adapter, self.means, part):
                logits = self.adapter.prefill(inputs, past, use_cache=past is not None).logits  # (b, V)
            out.append(logits.float().cpu())
        return torch.cat(out)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        logits = self._logits(masks)
        return F.cross_entropy(logits, torch.full((logits.shape[0],), self.target), reduction="none")


@torch.inference_mode()
def validation_loss(
    adapter: Adapter, means: torch.Tensor, mask: torch.Tensor, examples: Sequence[Example], batch_size: int = 8
) -> float:
    """Mean first-answer-token cross-entropy of zero-shot ``examples`` with ``mask``'s heads patched."""
    losses = []
    targets = [answer_token(adapter, e) for e in examples]
    for group in batches(examples, batch_size):
        batch = adapter.encode([examples[i] for i in group])
        with patch_heads(adapter, means, mask):
            logits = adapter.prefill({**batch, "logits_to_keep": 1}, use_cache=False).logits.float().cpu()  # (B, V)
        losses.append(F.cross_entropy(logits, torch.tensor([targets[i] for i in group]), reduction="none"))
    return float(torch.cat(losses).mean())


def mtv_fit(
    adapter: Adapter,
    demos: Sequence[Example],
    *,
    seed: int = 0,
    n_shots: int = N_SHOTS,
    n_trials: int = N_TRIALS,
    steps: int = STEPS,
    lr: float = LR,
    n_samples: int = N_SAMPLES,
    init_logit: float = INIT_LOGIT,
    eps: float = EPS,
    reinforce_pool: int = REINFORCE_POOL,
    n_candidates: int = N_CANDIDATES,
    n_validation: int = N_VALIDATION,
    batch_size: int = 4,
    sample_batch: int = 32,
    progress: bool = True,
) -> MTV:
    """MTV's mean activations and heads from the few-shot set ``demos`` (module docstring: steps and defaults).

    Seeded throughout: ICL draws, REINFORCE queries and masks, candidate masks. ``sample_batch``: masks per
    forward pass in the search; ``batch_size``: prompts per pass elsewhere.
    """
    _check_n_samples(n_samples)
    demos = list(demos)
    means = mean_head_activations(
        adapter, demos, n_shots=n_shots, n_trials=n_trials, seed=seed, batch_size=batch_size, progress=progress
    )
    rng = random.Random(seed)
    pool = rng.sample(demos, min(reinforce_pool, len(demos)))
    queries = [rng.choice(pool) for _ in range(steps)]
    memo: Memo[_QueryLosses] = Memo()  # the latest query's prefilled prompt

    def loss_fn(masks: torch.Tensor, step: int) -> torch.Tensor:
        query = queries[step]
        return memo.get(id(query), lambda: _QueryLosses(adapter, query, means, sample_batch))(masks)

    logits = reinforce_heads(
        loss_fn,
        (adapter.n_layers, adapter.n_heads),
        steps=steps,
        lr=lr,
        n_samples=n_samples,
        init_logit=init_logit,
        eps=eps,
        seed=seed,
        progress=progress,
    )
    memo.clear()  # the last query's prefix cache
    held = rng.sample(demos, min(n_validation, len(demos)))  # a seeded draw: few-shot sets come in label order
    heads = pick_heads(
        logits,
        lambda mask: validation_loss(adapter, means, mask, held, batch_size),
        n_candidates=n_candidates,
        seed=seed,
        progress=progress,
    )
    return MTV(means=means, heads=heads, logits=logits)


# ----- 3. inference -------------------------------------------------------------------------------------------------
def mtv_batches(
    adapter: Adapter,
    mtv: MTV,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    every_token: bool = False,
    progress: bool = True,
) -> TextBatches:
    """``mtv_generate``'s answers a batch at a time, as ``(positions in examples, texts)``: a caller that stores each
    batch as it comes keeps the finished ones when a later batch fails.

    Each batch's whole prompt is ``decode``d (``Adapter.decode``: the family's own ``generate``, or the argmax loop),
    so the first pass, the one patched, is over the whole prompt and ends at its last token (``generate`` of
    savs-mini would prefill a shared prompt prefix in a pass of its own).
    """
    for group in tqdm(batches(examples, batch_size), desc="MTV", unit="batch", disable=not progress):
        batch = adapter.encode([examples[i] for i in group], padding_side="left")
        with patch_heads(adapter, mtv.means, mtv.heads, passes=None if every_token else 1):
            texts = adapter.decode(batch, max_new_tokens=max_new_tokens)
        yield group, texts


def mtv_generate(
    adapter: Adapter,
    mtv: MTV,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    every_token: bool = False,
    progress: bool = True,
) -> list[str]:
    """Greedy zero-shot answers with ``mtv``'s heads patched at the prompt's last token and, with ``every_token``
    (the authors' code), at each generated token too (module docstring: why that is not the default); in input
    order (``mtv_batches``: how each batch is decoded)."""
    out = [""] * len(examples)
    answers = mtv_batches(
        adapter,
        mtv,
        examples,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        every_token=every_token,
        progress=progress,
    )
    for group, texts in answers:
        for i, text in zip(group, texts, strict=True):
            out[i] = text
    return out


FIT_OPTIONS = {k: p.default for k, p in inspect.signature(mtv_fit).parameters.items() if p.kind is p.KEYWORD_ONLY}
FITTED = ("means", "heads", "logits")  # the cached arrays of a fitted MTV, keys "mtv:<field>"


def mtv_identity(adapter: Adapter, demos: Sequence[Example], seed: int, settings: dict) -> ModelIdentity:
    """The MTV-patched model's identity: ``adapter``'s plus ``mtv-<hash>`` of the few-shot set (content, labels,
    order), the seed, every ``mtv_fit`` setting (defaults filled in) and the way the answer tokens its losses score are
    made (``ANSWER_IDS_VERSION``), so its cache namespace is its own."""
    unknown = set(settings) - set(FIT_OPTIONS)
    if unknown:
        raise TypeError(f"mtv_fit takes no option {sorted(unknown)}; it takes {sorted(FIT_OPTIONS)}")
    fit = {**FIT_OPTIONS, **settings, "seed": seed, "answer_ids": ANSWER_IDS_VERSION}
    fit.pop("progress", None)
    run = "|".join([e.fingerprint() + e.label for e in demos] + [json.dumps(fit, sort_keys=True)])
    name = f"mtv-{hashlib.sha256(run.encode()).hexdigest()[:12]}"
    return replace(adapter.identity, extra=f"{adapter.identity.extra}+{name}")


def _fitted(store: ActivationCache | None, fit: Callable[[], MTV]) -> MTV:
    """The MTV ``store`` holds (verified), else ``fit()``'s, stored."""
    found = store.read([f"mtv:{k}" for k in FITTED]) if store is not None else {}
    if len(found) == len(FITTED):
        arrays = {k: torch.from_numpy(found[f"mtv:{k}"]) for k in FITTED}
        return MTV(means=arrays["means"], heads=arrays["heads"].bool(), logits=arrays["logits"])
    mtv = fit()
    if store is not None:
        store.put({"mtv:means": mtv.means.numpy(), "mtv:heads": mtv.heads.numpy(), "mtv:logits": mtv.logits.numpy()})
    return mtv


def mtv_predict(
    adapter: Adapter,
    demos: Sequence[Example],
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    seed: int = 0,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    every_token: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    cache_only: bool | None = None,
    **settings,
) -> list[str]:
    """MTV fitted on the few-shot set ``demos`` (``mtv_fit``; ``settings`` are its keyword arguments, and
    ``batch_size``, prompts per forward pass, is its as well as generation's), then its patched greedy answers to
    ``examples`` (``mtv_generate``) mapped onto ``labels`` ("" where none is named: counted wrong).

    ``cache_dir``: the fitted vector and the raw answers are kept there under the patched model's namespace
    (``mtv_identity``): when every answer is cached nothing is fitted; otherwise a cached fit is reused.
    ``cache_only`` (see ``savs.cache.cache_only_mode``): raise ``CacheMissError`` instead of running the model.
    """
    if not examples:
        return []
    only = cache_only_mode(cache_only, cache_dir)
    settings = {**settings, "batch_size": batch_size}
    identity = mtv_identity(adapter, demos, seed, settings)
    store = ActivationCache(cache_dir, identity.namespace) if cache_dir is not None else None

    def generate(todo: list[int]) -> TextBatches:
        mtv = _fitted(store, lambda: mtv_fit(adapter, demos, seed=seed, progress=progress, **settings))
        yield from mtv_batches(
            adapter,
            mtv,
            [examples[i] for i in todo],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            every_token=every_token,
            progress=progress,
        )

    keys = [answer_key(e, adapter.render(e), max_new_tokens=max_new_tokens, every_token=every_token) for e in examples]
    return labelled(cached_texts(store, keys, generate, cache_only=only, what="MTV answers"), labels)
