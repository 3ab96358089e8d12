"""CLIP and SigLIP zero-shot rows: image-text similarity, scored the way each kind of task allows.

The paper reports CLIP and SigLIP on the retrieval and classification benchmarks and on two interleaved tasks
(MHaluBench, NaturalBench) without naming the checkpoints or the scoring. Defaults here (any hub id or local
directory of a transformers CLIP or SigLIP model works; ``CONTRASTIVE_MODELS`` names them ``"clip"`` and ``"siglip"``):

- CLIP: ``openai/clip-vit-large-patch14-336`` (ViT-L/14 at 336 px, OpenAI's largest released CLIP and the vision
  tower of LLaVA-1.5, a model of the same table);
- SigLIP: ``google/siglip-so400m-patch14-384`` (the shape-optimised 400M ViT at 384 px, the largest of the original
  SigLIP releases, and the vision tower of LLaVA-OneVision-7B, the paper's main model).

So each contrastive row is the image-text model that an LMM of the table sees through.

``similarity`` gives the model's own image-text logits: ``scale * cos`` for CLIP, ``scale * cos + bias`` for
SigLIP (whose sigmoid is its match probability). Then, per kind of task (``contrastive_predict`` picks by task name):

- **classification** (``classify``): each example's candidates are the options its prompt shows
  (``Example.meta["options"]``, the authors' four for EuroSAT, Pets and the other class sets), else every label;
  each rendered as ``template`` ("a photo of a {}.", CLIP's own) around its readable name (``readable``:
  "AnnualCrop" -> "annual crop"); the most similar one is the answer.
- **image-caption matching**, Yes/No per (image, caption) (NaturalBench-Retrieval, SugarCrepe; ``mutual_best``):
  Yes exactly where the pair's similarity is strictly the highest both among its image's captions and among its
  caption's images within the group. SugarCrepe's groups are one image with its caption and a hard negative, so
  the pair counts when the true caption outscores the negative: SugarCrepe's own protocol. NaturalBench-Retrieval's
  2 x 2 groups: ``group_acc`` is then Winoground's group score; ``winoground_scores`` gives the text and image
  scores as that protocol defines them (the standard way to report a contrastive model there).
- **MHaluBench** (claims, Yes = hallucinated; ``below_threshold``): a claim is called hallucinated when its
  similarity to the image is below a threshold fitted on the few-shot set (``fit_threshold``: the cut that
  classifies the most few-shot claims right). CLIP has no calibrated match/no-match boundary, so this is the one
  place a contrastive row uses labels; SigLIP's own boundary (``threshold=0``: sigmoid 0.5) is the alternative.
- **NaturalBench VQA** (``answer_statements``): a question and each of its answers as one text ("{question}
  {answer}"; for a multiple-choice question whose text lists lettered options, the stem with that option's
  text); the most similar answer is the prediction. Each image is answered on its own, which is what leaves a
  contrastive model near zero group accuracy (the paper: CLIP and SigLIP 1.2).

The paper does not say how it scored these (its text and the authors' code, ``chancharikmitra/SAVs``, have no CLIP
or SigLIP evaluation); these rules are our choice, to be stated beside every table that shows them. The texts
scored come from ``Example.meta["query"]`` (the caption, claim or question the benchmark loaders keep beside the
prompt).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoProcessor

from savs.data.prompts import YES_NO_LABELS
from savs.examples import Example, Task, decode

CLIP_MODEL = "openai/clip-vit-large-patch14-336"
SIGLIP_MODEL = "google/siglip-so400m-patch14-384"
CONTRASTIVE_MODELS = {"clip": CLIP_MODEL, "siglip": SIGLIP_MODEL}
TEMPLATE = "a photo of a {}."
MATCHING_TASKS = ("naturalbench_retrieval", "sugarcrepe")
YES, NO = YES_NO_LABELS


@dataclass
class ContrastiveModel:
    """A CLIP or SigLIP model with its processor; ``kind`` is "clip" or "siglip"."""

    model: torch.nn.Module
    processor: object
    name: str

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        cache_dir: str | Path | None = None,
    ) -> ContrastiveModel:
        """Load ``"clip"``, ``"siglip"``, a hub id or a local directory (read from the local hub cache alone when no
        network answers, as ``savs.models.load_model`` does), or ``"random:clip"`` / ``"random:siglip"`` (a
        random-weight stand-in built under ``cache_dir``, for dry runs); fp32 on a CPU, bf16 on a GPU."""
        from savs.models.base import default_device, default_dtype
        from savs.models.registry import RANDOM_SCHEME, _hub_offline, hub_reachable, random_model_dir

        path = CONTRASTIVE_MODELS.get(name_or_path, name_or_path)
        if path.startswith(RANDOM_SCHEME):
            path = str(random_model_dir(path, cache_dir))
        device = torch.device(device) if device is not None else default_device()
        offline = not Path(path).is_dir() and not hub_reachable()
        with _hub_offline(offline):
            model_type = AutoConfig.from_pretrained(path).model_type
            if model_type not in ("clip", "siglip", "siglip2"):
                raise ValueError(f"{name_or_path!r} is a {model_type!r} model, not CLIP or SigLIP")
            model = AutoModel.from_pretrained(path, dtype=dtype or default_dtype(device)).to(device)
            processor = AutoProcessor.from_pretrained(path)
        return cls(model.eval(), processor, str(name_or_path))

    @property
    def kind(self) -> str:
        return "clip" if self.model.config.model_type == "clip" else "siglip"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def image_embeddings(self, images: Sequence, batch_size: int = 32) -> torch.Tensor:
        """L2-normalised image embeddings ``(N, D)``, fp32 on the CPU."""
        out = []
        for start in range(0, len(images), batch_size):
            pixels = self.processor(images=list(images[start : start + batch_size]), return_tensors="pt")
            pixels = pixels["pixel_values"].to(self.device, self.model.dtype)
            out.append(_pooled(self.model.get_image_features(pixel_values=pixels)))
        return torch.nn.functional.normalize(torch.cat(out).float().cpu(), dim=-1)

    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """L2-normalised text embeddings ``(M, D)``, fp32 on the CPU. SigLIP's texts are padded to its fixed length
        (how it was trained); both models truncate to their maximum length (CLIP: 77 tokens)."""
        length = self.model.config.text_config.max_position_embeddings
        padding = "max_length" if self.kind == "siglip" else True
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.processor(
                text=list(texts[start : start + batch_size]),
                padding=padding,
                truncation=True,
                max_length=length,
                return_tensors="pt",
            ).to(self.device)
            # what the tokenizer gives: SigLIP's gives no attention mask (it attends to its padding, as in training)
            inputs = {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask", "position_ids")}
            out.append(_pooled(self.model.get_text_features(**inputs)))
        return torch.nn.functional.normalize(torch.cat(out).float().cpu(), dim=-1)

    def _scale_and_bias(self) -> tuple[float, float]:
        """``exp(logit_scale)`` and ``logit_bias`` (SigLIP's; 0 for CLIP)."""
        scale = float(self.model.logit_scale.detach().float().exp())
        bias = float(self.model.logit_bias.detach().float()) if hasattr(self.model, "logit_bias") else 0.0
        return scale, bias

    def logits(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> np.ndarray:
        """The model's image-text logits ``(N, M)``: ``exp(logit_scale) * cos`` (+ ``logit_bias`` for SigLIP)."""
        scale, bias = self._scale_and_bias()
        return (scale * (image_embeds @ text_embeds.T) + bias).numpy()

    def pair_logits(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> np.ndarray:
        """The logit of each image with the text of its own row, ``(N,)`` from two ``(N, D)``: ``logits``' diagonal
        without its ``N x N`` matrix."""
        scale, bias = self._scale_and_bias()
        return (scale * (image_embeds * text_embeds).sum(-1) + bias).numpy()


def _pooled(out) -> torch.Tensor:
    """The projected embedding: a tensor, or the ``pooler_output`` transformers 5 returns."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def load_contrastive(name_or_path: str = "clip", **kwargs) -> ContrastiveModel:
    """``ContrastiveModel.from_pretrained``."""
    return ContrastiveModel.from_pretrained(name_or_path, **kwargs)


# ----- similarities of examples ------------------------------------------------------------------------------------
def _single_image(example: Example):
    if len(example.images) != 1:
        raise ValueError(f"a contrastive model scores one image per example; {example.uid!r} has {len(example.images)}")
    return example.images[0]


def _distinct_images(examples: Sequence[Example]) -> tuple[list, list[int]]:
    """The distinct images of ``examples`` (the same object shared by several examples, e.g. one image's claims, is
    one) and each example's position among them."""
    images, rows = [], []
    seen: dict[int, int] = {}
    for e in examples:
        image = _single_image(e)
        if id(image) not in seen:
            seen[id(image)] = len(images)
            images.append(image)
        rows.append(seen[id(image)])
    return images, rows


def _embedded(
    model: ContrastiveModel, examples: Sequence[Example], texts: Sequence[str], batch_size: int, progress: bool
) -> tuple[torch.Tensor, list[int], torch.Tensor, list[int]]:
    """Embeddings of the distinct images of ``examples`` and of the distinct ``texts``, each embedded once; with each
    example's row among the images and each text's row among the texts."""
    images, rows = _distinct_images(examples)
    embeds = []
    for start in tqdm(
        range(0, len(images), batch_size), desc=f"{model.kind} images", unit="batch", disable=not progress
    ):
        decoded = [decode(im).convert("RGB") for im in images[start : start + batch_size]]
        embeds.append(model.image_embeddings(decoded, batch_size))
    image_embeds = torch.cat(embeds) if embeds else torch.zeros(0, 1)
    unique_texts = list(dict.fromkeys(texts))
    column = {t: j for j, t in enumerate(unique_texts)}
    return image_embeds, rows, model.text_embeddings(unique_texts), [column[t] for t in texts]


def similarity(
    model: ContrastiveModel,
    examples: Sequence[Example],
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """Logits ``(n_examples, n_texts)`` of every example's image against every text; each distinct image and text is
    embedded once."""
    image_embeds, rows, text_embeds, columns = _embedded(model, examples, texts, batch_size, progress)
    return model.logits(image_embeds, text_embeds)[np.ix_(rows, columns)]


def paired_scores(
    model: ContrastiveModel,
    examples: Sequence[Example],
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """Each example's image against its own text: ``(n,)`` logits, pair by pair (no images x texts matrix, which for
    a benchmark of distinct captions grows with the square of its size)."""
    if len(texts) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(texts)} texts")
    image_embeds, rows, text_embeds, columns = _embedded(model, examples, texts, batch_size, progress)
    return model.pair_logits(image_embeds[rows], text_embeds[columns])


def query(example: Example) -> str:
    """The caption, claim or question a contrastive model scores against the image (``meta["query"]``)."""
    text = example.meta.get("query")
    if not isinstance(text, str):
        raise ValueError(f"example {example.uid!r} has no meta['query'] (the caption / claim / question to score)")
    return text


# ----- the scoring rules (pure: similarities in, labels out) -------------------------------------------------------
def classify(sims: np.ndarray, candidates: Sequence[Sequence[str]], columns: dict[str, int]) -> list[str]:
    """Per row of ``sims`` (examples x texts), the candidate whose text column scores highest (first of equals)."""
    out = []
    for i, options in enumerate(candidates):
        scores = [sims[i, columns[c]] for c in options]
        out.append(options[int(np.argmax(scores))])
    return out


def mutual_best(examples: Sequence[Example], scores: Sequence[float]) -> list[str]:
    """Yes where an (image, caption) pair's score is strictly the highest of its image's pairs and of its caption's
    pairs in its group, No elsewhere.

    Rows: examples of one ``meta["group"]`` with the same ``meta["image"]`` (absent: the group has one image, as a
    SugarCrepe pair); columns: the same ``meta["caption"]`` (absent: each example its own caption).
    """
    scores = np.asarray(scores, dtype=float)
    rows: dict[tuple, list[int]] = {}
    cols: dict[tuple, list[int]] = {}
    for i, e in enumerate(examples):
        group = e.meta.get("group", e.uid)
        rows.setdefault((group, e.meta.get("image", 0)), []).append(i)
        cols.setdefault((group, e.meta.get("caption", ("own", i))), []).append(i)
    best = np.ones(len(examples), dtype=bool)
    for units in (rows, cols):
        for members in units.values():
            for i in members:
                others = [scores[j] for j in members if j != i]
                best[i] &= all(scores[i] > s for s in others)
    return [YES if b else NO for b in best]


def winoground_scores(examples: Sequence[Example], scores: Sequence[float]) -> dict[str, float]:
    """Winoground's text, image and group scores (%) over 2 x 2 groups (``meta`` keys ``group``, ``image``,
    ``caption``; caption k belongs to image k): text = each image scores its own caption above the other, image =
    each caption scores its own image above the other, group = both. Returned as ``text_acc``, ``image_acc`` and
    ``group_acc`` per (group, image), (group, caption) and group, as NaturalBench-Retrieval's metrics count units."""
    s: dict[object, dict[tuple[int, int], float]] = {}
    for e, score in zip(examples, scores, strict=True):
        s.setdefault(e.meta["group"], {})[(e.meta["image"], e.meta["caption"])] = float(score)
    text = image = group = 0
    for g, m in s.items():
        if set(m) != {(0, 0), (0, 1), (1, 0), (1, 1)}:
            raise ValueError(f"group {g!r} is not a whole 2 x 2 group: {sorted(m)}")
        t = [m[(i, i)] > m[(i, 1 - i)] for i in (0, 1)]  # image i prefers its own caption
        v = [m[(c, c)] > m[(1 - c, c)] for c in (0, 1)]  # caption c prefers its own image
        text, image, group = text + sum(t), image + sum(v), group + (all(t) and all(v))
    n = len(s)
    return {"text_acc": 100.0 * text / (2 * n), "image_acc": 100.0 * image / (2 * n), "group_acc": 100.0 * group / n}


def fit_threshold(scores: Sequence[float], yes: Sequence[bool], yes_below: bool = True) -> float:
    """The cut that labels the most of ``scores`` right (Yes below it when ``yes_below``, else above): a midpoint
    between neighbouring scores, or just outside their range; the lowest of equally good cuts."""
    scores = np.asarray(scores, dtype=float)
    yes = np.asarray(yes, dtype=bool)
    if not len(scores):
        raise ValueError("no scores to fit a threshold on")
    values = np.unique(scores)
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    right = [int(((scores < c) if yes_below else (scores > c)).__eq__(yes).sum()) for c in cuts]
    return float(cuts[int(np.argmax(right))])


def below_threshold(scores: Sequence[float], threshold: float) -> list[str]:
    """Yes where the score is below ``threshold`` (the claim does not match its image), else No."""
    return [YES if s < threshold else NO for s in scores]


_OPTIONS = re.compile(r"(?:^|\s)\(?A[.)]\s*(?P<a>.+?)\s+\(?B[.)]\s*(?P<b>.+?)\s*$", re.DOTALL)


def answer_statements(question: str, answers: Sequence[str]) -> list[str]:
    """One text per answer: "{question} {answer}"; where the question ends with lettered options ("... A. red
    B. blue") and the answers are those letters, the stem followed by the option's own text."""
    match = _OPTIONS.search(question)
    if match and [a.upper() for a in answers] == ["A", "B"]:
        stem = question[: match.start()].strip()
        return [f"{stem} {match.group('a').strip()}", f"{stem} {match.group('b').strip()}"]
    return [f"{question.strip()} {a}" for a in answers]


def readable(label: str) -> str:
    """A class name as words: CamelCase and underscores split, lower case ("AnnualCrop" -> "annual crop",
    "T-shirt/top" unchanged but lower case)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label).replace("_", " ").lower()


# ----- one entry point per task ------------------------------------------------------------------------------------
def contrastive_predict(
    model: ContrastiveModel,
    task: Task,
    examples: Sequence[Example],
    *,
    calibration: Sequence[Example] = (),
    template: str = TEMPLATE,
    threshold: float | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> list[str]:
    """Zero-shot labels of ``examples`` of ``task`` by ``model`` (module docstring: the rule per kind of task).

    ``calibration`` (the seed's few-shot set) fits MHaluBench's threshold when ``threshold`` is None; other tasks
    use no labels.
    """
    if not examples:
        return []
    kw = {"batch_size": batch_size, "progress": progress}
    if task.name in MATCHING_TASKS:
        return mutual_best(examples, paired_scores(model, examples, [query(e) for e in examples], **kw))
    if task.name == "mhalubench":
        if threshold is None:
            if not calibration:
                raise ValueError("MHaluBench: pass the few-shot set as calibration (or a threshold)")
            fitted = paired_scores(model, calibration, [query(e) for e in calibration], **kw)
            threshold = fit_threshold(fitted, [e.label == YES for e in calibration], yes_below=True)
        return below_threshold(paired_scores(model, examples, [query(e) for e in examples], **kw), threshold)
    if task.name == "naturalbench":
        answers = [["Yes", "No"] if e.meta.get("question_type", "yes_no") == "yes_no" else ["A", "B"] for e in examples]
        statements = [answer_statements(query(e), a) for e, a in zip(examples, answers, strict=True)]
        pairs = [(e, t) for e, own in zip(examples, statements, strict=True) for t in own]  # two per example
        scores = paired_scores(model, [e for e, _ in pairs], [t for _, t in pairs], **kw).reshape(len(examples), 2)
        return [a[int(np.argmax(row))] for a, row in zip(answers, scores, strict=True)]
    if set(task.labels) == set(YES_NO_LABELS):
        raise ValueError(f"no contrastive scoring rule for the Yes/No task {task.name!r}")
    options = [list(e.meta.get("options") or task.labels) for e in examples]
    texts = list(dict.fromkeys(template.format(readable(c)) for opts in options for c in opts))
    sims = similarity(model, examples, texts, **kw)
    columns = {t: j for j, t in enumerate(texts)}
    rendered = [[template.format(readable(c)) for c in opts] for opts in options]
    picked = classify(sims, rendered, columns)
    return [opts[r.index(p)] for opts, r, p in zip(options, rendered, picked, strict=True)]
