"""Stage-1 alignment of savs-mini: only the projector learns, on an image-text corpus from easy-VQA's train split.

    python -m savs.mini.train --out savs/mini/weights/savs-mini-projector.safetensors

Corpus (train split only; nothing here is ever evaluated): for a seeded subset of easy-VQA train images,
a caption "A {color} {shape}." (LLaVA stage-1 style, the colour and shape read off the image's own
question-answer pairs) under one of a few "describe" instructions, plus the image's VQA pairs asked as
"{question} Answer with one word." Batches mix the three kinds (caption, open question, yes/no) equally.
Fashion-MNIST and digits stay out on purpose: like a real LMM, savs-mini should answer what its
instruction data covered and be poor where it never saw the domain, which is where SAVs earn their keep.

Speed on 2 CPU cores: the vision encoder is frozen, so its features are computed once per image; with
the question first, everything before the image tokens (system prompt, question) does not depend on the
projector, so its KV cache is computed once per distinct question (easy-VQA has ~100) without gradients,
and each step runs forward and backward over the image tokens, the assistant header and the answer only.

Writes the projector (``aligned.*`` and ``untrained.*`` keys: the norm-matched random init, kept for the
ablation), a JSON of recipe, corpus, loss history and timings beside it, and the loss-curve figure.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch.nn import functional as F
from tqdm.auto import tqdm

from savs.examples import Example
from savs.kvcache import KV, Memo, stacked
from savs.mini.adapter import MiniAdapter
from savs.mini.model import IMAGE_TOKEN, MiniLMM, Projector, build, projector_digest
from savs.mini.vision import FEATURE_DIM, preprocess
from savs.outputs import atomic_path, atomic_write

CAPTION_PROMPTS = (
    "Describe the image briefly.",
    "What is in this picture?",
    "Give a short description of the image.",
    "Write a short caption for this image.",
)
VQA_SUFFIX = " Answer with one word."
SHAPES = ("circle", "rectangle", "triangle")
KINDS = ("caption", "open", "yesno")
FIGURE = Path("figures/savs_mini_alignment_loss.png")
RECIPE = ("images", "steps", "batch_size", "lr", "seed")  # the arguments that shape the weights


# ----- corpus ------------------------------------------------------------------------------------
def build_corpus(n_images: int, seed: int) -> dict[str, list[Example]]:
    """Caption, open-question and yes/no examples for ``n_images`` easy-VQA train images, by kind."""
    import easy_vqa

    questions, answers, image_ids = easy_vqa.get_train_questions()
    paths = easy_vqa.get_train_image_paths()
    facts: dict[int, dict[str, str]] = {}
    for q, a, i in zip(questions, answers, image_ids, strict=True):
        if q.startswith("what color") or "color of" in q:
            facts.setdefault(i, {})["color"] = a
        elif a in SHAPES:
            facts.setdefault(i, {})["shape"] = a
    described = sorted(i for i, f in facts.items() if len(f) == 2)
    chosen = set(random.Random(seed).sample(described, min(n_images, len(described))))
    images = {i: Image.open(paths[i]).convert("RGB") for i in sorted(chosen)}
    rng = random.Random(seed)
    corpus: dict[str, list[Example]] = {kind: [] for kind in KINDS}
    for i in sorted(chosen):
        f = facts[i]
        corpus["caption"].append(
            Example(
                rng.choice(CAPTION_PROMPTS), f"A {f['color']} {f['shape']}.", (images[i],), f"cap/{i}", {"image_id": i}
            )
        )
    for n, (q, a, i) in enumerate(zip(questions, answers, image_ids, strict=True)):
        if i in chosen:
            kind = "yesno" if a in ("yes", "no") else "open"
            text = q[:1].upper() + q[1:] + VQA_SUFFIX
            corpus[kind].append(Example(text, a.capitalize(), (images[i],), f"vqa/{n}", {"image_id": i}))
    return corpus


def vision_features(model: MiniLMM, examples: Sequence[Example], batch_size: int = 32) -> dict[int, torch.Tensor]:
    """Frozen vision features ``(n_tokens, 1280)`` of every distinct image, by easy-VQA image id."""
    images = {e.meta["image_id"]: e.pil_images()[0] for e in examples}
    ids = sorted(images)
    out: dict[int, torch.Tensor] = {}
    for s in tqdm(range(0, len(ids), batch_size), desc="vision features", unit="batch"):
        chunk = ids[s : s + batch_size]
        feats = model.image_features(preprocess([images[i] for i in chunk]))  # (b, n_tokens, 1280)
        out.update(zip(chunk, feats, strict=True))
    return out


# ----- projector init ----------------------------------------------------------------------------
def norm_matched_projector(model: MiniLMM, features: torch.Tensor, seed: int) -> Projector:
    """A seeded random projector whose output norm matches the mean token-embedding norm on ``features``.

    Default init gives image tokens a norm unlike any word's; rescaling the last layer puts them where the
    LM expects its inputs, which is what makes the untrained projector a fair ablation.
    """
    torch.manual_seed(seed)
    proj = Projector(FEATURE_DIM, model.config.hidden_size)
    target = model.get_input_embeddings().weight.norm(dim=-1).mean()
    with torch.no_grad():
        scale = target / proj(features).norm(dim=-1).mean()
        proj.fc2.weight.mul_(scale)
        proj.fc2.bias.mul_(scale)
    return proj


# ----- batches -----------------------------------------------------------------------------------
class Batcher:
    """Tokenised training examples split at the first image token, and memoised prefix KV caches.

    Everything before the image tokens is independent of the projector: its keys and values are computed
    once per distinct prefix, without gradients, and left-padded into each batch's cache.
    """

    def __init__(self, adapter: MiniAdapter) -> None:
        self.adapter, self.model = adapter, adapter.model
        self.pad, self.end = adapter.tokenizer.pad_token_id, self.model.config.eos_token_id
        self.prefixes: Memo[KV] = Memo(size=None)  # every distinct prefix: easy-VQA has about a hundred questions

    def split(self, e: Example) -> tuple[tuple[int, ...], list[int], int]:
        """(prefix ids, suffix ids, how many suffix tokens precede the answer) of one example."""
        text = self.adapter.render(e).replace(IMAGE_TOKEN, IMAGE_TOKEN * self.model.vision.n_tokens)
        prompt = self.adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
        answer = self.adapter.tokenizer(e.label, add_special_tokens=False)["input_ids"] + [self.end]
        cut = prompt.index(self.model.image_token_id)
        return tuple(prompt[:cut]), prompt[cut:] + answer, len(prompt) - cut

    def prefix_kv(self, prefix: tuple[int, ...]) -> KV:
        """Keys and values of ``prefix`` (one row), prefilled without gradients the first time it is met."""
        return self.prefixes.get(prefix, lambda: self._prefill(prefix))

    @torch.no_grad()
    def _prefill(self, prefix: tuple[int, ...]) -> KV:
        ids = torch.tensor([prefix])  # (1, P)
        return self.adapter.prefill({"input_ids": ids, "attention_mask": torch.ones_like(ids), "logits_to_keep": 1}).kv

    def loss(self, examples: Sequence[Example], features: torch.Tensor) -> torch.Tensor:
        """Mean next-token loss on the answers (and their end token) of a batch; ``features`` ``(B, n, 1280)``."""
        rows = [self.split(e) for e in examples]
        n_before = {r[2] for r in rows}
        assert len(n_before) == 1, "every suffix starts with the same image tokens and assistant header"
        start = n_before.pop()  # the answer's first column in the suffix
        S = max(len(r[1]) for r in rows)
        cache, prefix_mask = stacked([self.prefix_kv(prefix) for prefix, _, _ in rows])  # prefix_mask (B, P)
        suffix = torch.tensor([s + [self.pad] * (S - len(s)) for _, s, _ in rows])  # (B, S)
        suffix_mask = torch.tensor([[1] * len(s) + [0] * (S - len(s)) for _, s, _ in rows])  # (B, S)
        labels = suffix[:, start:].masked_fill(suffix_mask[:, start:] == 0, -100)  # (B, A)
        out = self.model(
            suffix,
            torch.cat([prefix_mask, suffix_mask], dim=1),
            image_features=features,
            cache=cache,
            use_cache=True,
            logits_to_keep=torch.arange(start - 1, S - 1),  # the positions that predict answer tokens
        )
        return F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


# ----- training ----------------------------------------------------------------------------------
def align(
    batcher: Batcher, corpus: dict[str, list[Example]], feats: dict[int, torch.Tensor], args: argparse.Namespace
) -> list[dict]:
    """Train the projector of ``batcher``'s model in place: AdamW, linear warm-up then cosine decay, each batch equal
    thirds of the corpus's kinds; the per-step loss and learning rate."""
    projector = batcher.model.projector
    opt = torch.optim.AdamW(projector.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
    )
    rng = random.Random(args.seed)
    pools = {kind: rng.sample(corpus[kind], len(corpus[kind])) for kind in KINDS}
    cursor = dict.fromkeys(KINDS, 0)
    history: list[dict] = []
    projector.train()
    bar = tqdm(range(args.steps), desc="align projector", unit="step")
    for step in bar:
        batch = []
        for j in range(args.batch_size):
            kind = KINDS[(step * args.batch_size + j) % len(KINDS)]
            batch.append(pools[kind][cursor[kind] % len(pools[kind])])
            cursor[kind] += 1
        features = torch.stack([feats[e.meta["image_id"]] for e in batch])  # (B, n, 1280)
        loss = batcher.loss(batch, features)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(projector.parameters(), 1.0)
        opt.step()
        schedule.step()
        history.append({"step": step + 1, "loss": round(loss.item(), 5), "lr": schedule.get_last_lr()[0]})
        bar.set_postfix(loss=f"{loss.item():.3f}")
    projector.eval()
    return history


def train(args: argparse.Namespace) -> None:
    """Build the corpus, compute vision features, train the projector, write weights, JSON and figure."""
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.time()
    corpus = build_corpus(args.images, args.seed)
    everything = [e for kind in KINDS for e in corpus[kind]]
    model, tokenizer = build(Projector())  # placeholder projector: replaced below, once features exist
    t = time.time()
    feats = vision_features(model, everything)
    vision_ms = 1000 * (time.time() - t) / len(feats)
    calib = torch.stack([feats[i] for i in sorted(feats)[:64]])  # (64, n, 1280)
    untrained = norm_matched_projector(model, calib, args.seed)
    model.projector.load_state_dict(untrained.state_dict())
    model.projector.requires_grad_(True)
    adapter = MiniAdapter(model, tokenizer, "savs-mini", "untrained")
    batcher = Batcher(adapter)

    t = time.time()
    history = align(batcher, corpus, feats, args)
    step_s = (time.time() - t) / args.steps

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"aligned.{k}": v.detach().contiguous() for k, v in model.projector.state_dict().items()}
    tensors |= {f"untrained.{k}": v.contiguous() for k, v in untrained.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"recipe": "savs.mini.train", "seed": str(args.seed)})
    tail = [h["loss"] for h in history[-max(1, args.steps // 10) :]]
    record = {
        "model": "savs-mini: EfficientNet-Lite0 (ImageNet-1k, frozen) -> 2-layer GELU MLP -> SmolLM2-135M-Instruct",
        "recipe": {k: getattr(args, k) for k in RECIPE},
        "corpus": {
            "source": "easy-VQA 1.0 train split only (images and their question-answer pairs)",
            "images": len(feats),
            "examples": {kind: len(corpus[kind]) for kind in KINDS},
            "caption_prompts": list(CAPTION_PROMPTS),
            "vqa_suffix": VQA_SUFFIX,
            "mixture": "equal thirds per batch: caption, open question, yes/no",
        },
        "projector": {
            "aligned_sha": projector_digest(model.projector),
            "untrained_sha": projector_digest(untrained),
            "params": sum(p.numel() for p in untrained.parameters()),
        },
        "examples_seen": args.steps * args.batch_size,
        "final_loss": round(float(np.mean(tail)), 4),
        "timings": {
            "threads": torch.get_num_threads(),
            "vision_ms_per_image": round(vision_ms, 1),
            "seconds_per_step": round(step_s, 3),
            "total_minutes": round((time.time() - t0) / 60, 2),
        },
        "history": history,
    }
    atomic_write(out.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    plot_loss(history, Path(args.figure))
    print(f"wrote {out} and {out.with_suffix('.json')}; final loss {record['final_loss']}")


def plot_loss(history: list[dict], path: Path) -> None:
    """Per-step training loss and its moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([h["step"] for h in history])
    loss = np.array([h["loss"] for h in history])
    w = max(1, len(loss) // 25)
    smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, color="0.75", lw=0.8, label="per step")
    ax.plot(steps[w - 1 :], smooth, color="C0", lw=2, label=f"moving average ({w} steps)")
    ax.set(xlabel="step", ylabel="answer cross-entropy", title="savs-mini stage-1 alignment (projector only)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="savs/mini/weights/savs-mini-projector.safetensors")
    p.add_argument("--figure", default=str(FIGURE))
    p.add_argument("--images", type=int, default=800, help="easy-VQA train images in the corpus")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    train(args)


if __name__ == "__main__":
    main()
