"""The one example type every loader returns and every model adapter consumes."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image


@dataclass(frozen=True)
class Example:
    """One (image(s), prompt) -> label item.

    ``text`` is the user turn only (no chat template: the adapter adds it); ``images`` are RGB PIL
    images in prompt order (empty for text-only tasks); ``label`` is the gold class name.
    ``uid`` names the example for humans (``"fashion_mnist/test/17"``); caching never relies on it.
    """

    text: str
    label: str
    images: tuple[Image.Image, ...] = ()
    uid: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def fingerprint(self) -> str:
        """Content hash of prompt and pixels (not of label or uid): the activation-cache key part."""
        h = hashlib.sha256(self.text.encode())
        for im in self.images:
            h.update(f"{im.mode}{im.size}".encode())
            h.update(im.tobytes())
        return h.hexdigest()


@dataclass
class Task:
    """A labelled task: a training pool to draw few-shot sets from and a fixed test set.

    ``labels`` is the label set in a fixed order; every example's label must be in it.
    """

    name: str
    labels: tuple[str, ...]
    train: list[Example]
    test: list[Example]
    description: str = ""

    def __post_init__(self) -> None:
        known = set(self.labels)
        for split, items in (("train", self.train), ("test", self.test)):
            bad = {e.label for e in items} - known
            if bad:
                raise ValueError(f"task {self.name!r}: {split} labels {sorted(bad)} are not in its label set")

    def few_shot(self, k: int, seed: int = 0) -> list[Example]:
        """``k`` training examples per class, drawn with ``seed`` (the same seed gives the same set)."""
        return sample_per_class(self.train, k, seed, self.labels)

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
        """Metrics of ``predictions`` on ``examples``, in %. Plain accuracy; grouped benchmarks override."""
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        if not examples:
            raise ValueError("nothing to evaluate: no examples")
        hits = sum(e.label == p for e, p in zip(examples, predictions, strict=True))
        return {"accuracy": 100.0 * hits / len(examples)}

    def test_subset(self, n: int | None = None, seed: int = 0) -> list[Example]:
        """The first ``n`` test examples of a seeded shuffle (all of them when ``n`` is None)."""
        items = list(self.test)
        random.Random(seed).shuffle(items)
        return items if n is None else items[:n]


def sample_per_class(
    pool: Sequence[Example], k: int, seed: int, labels: Sequence[str] | None = None
) -> list[Example]:
    """Draw ``k`` examples of every label (in label order), seeded; a clear error if one has fewer."""
    labels = list(labels) if labels is not None else sorted({e.label for e in pool})
    by_label: dict[str, list[Example]] = {lab: [] for lab in labels}
    for e in pool:
        if e.label in by_label:
            by_label[e.label].append(e)
    rng = random.Random(seed)
    out: list[Example] = []
    for lab in labels:
        items = by_label[lab]
        if len(items) < k:
            raise ValueError(f"label {lab!r} has {len(items)} examples in the pool; {k} per class were asked")
        out.extend(rng.sample(items, k))
    return out
