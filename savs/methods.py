"""Every classifier the experiments compare, in one table: how it predicts and what it reads.

``METHODS`` names the main table's methods in its row order (baselines first, then SAVs' ablations, SAVs, then our
read-out), each a function of ``(run, few_shot, test, seed) -> predictions``, where ``run`` holds one model's
features on one task (``savs.experiments.Run``). ``HEAD_METHODS``: the head rules notebook 06 compares, as
``SAVClassifier`` options. The module loads no torch (a baseline's module is imported inside the method that runs
it), so the report orders its rows and the profile checks its studies' method names from this one table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from savs.classifier import SAVClassifier, answer_set_mask
from savs.examples import Example, Task

if TYPE_CHECKING:
    from savs.models.base import Adapter


class Features(Protocol):
    """What a method reads of one model on one task (``savs.experiments.Run``, each feature extracted once)."""

    adapter: Adapter
    task: Task
    cache: Path  # the shared activation cache
    metric: str  # the profile's SAV metric

    def heads(self, examples: Sequence[Example]) -> np.ndarray: ...  # (n, L, H, d)
    def hidden(self, examples: Sequence[Example]) -> np.ndarray: ...  # (n, hidden)
    def vision(self, examples: Sequence[Example]) -> np.ndarray: ...  # (n, features)
    def options(self, baseline: str) -> dict: ...
    def classifier(self, **overrides: Any) -> SAVClassifier: ...


Predict = Callable[[Features, list[Example], list[Example], int], list[str]]


def labels(examples: Sequence[Example]) -> np.ndarray:
    """The gold labels, as the array sklearn-style classifiers take."""
    return np.array([e.label for e in examples])


def allowed(classes: Sequence[str], test: Sequence[Example]) -> np.ndarray | None:
    """Which of ``classes`` each test example may take: its ``meta["answer_set"]`` (NaturalBench VQA's yes/no and
    A/B questions share one label set), else any; None when no example has one (``answer_set_mask``)."""
    return answer_set_mask(classes, [e.meta.get("answer_set") for e in test])


def _sav(
    run: Features, few: list[Example], test: list[Example], seed: int, n_heads: int | str | None = None, **rule: Any
) -> list[str]:
    """SAVs (``n_heads`` None: the profile's k); "all" lets every head vote; ``rule`` overrides the profile's (e.g.
    ``readout``). A test example with an answer set (``allowed``) is answered from it: a masked vote."""
    options = {**rule} if n_heads is None else {"n_heads": n_heads, **rule}
    clf = run.classifier(**options).fit(run.heads(few), labels(few))
    return clf.predict(run.heads(test), allowed(clf.classes_, test)).tolist()


def _ncm(run: Features, few: list[Example], test: list[Example], seed: int, last_layer: bool) -> list[str]:
    """Nearest class mean (the profile's metric) on one concatenated vector: the last layer's heads or every layer's."""

    def flat(X: np.ndarray) -> np.ndarray:
        X = X[:, -1:] if last_layer else X  # (n, L', H, d)
        return X.reshape(len(X), 1, 1, -1)  # (n, 1, 1, L'*H*d): one "head"

    clf = SAVClassifier(n_heads=1, metric=run.metric).fit(flat(run.heads(few)), labels(few))
    return clf.predict(flat(run.heads(test)), allowed(clf.classes_, test)).tolist()


def _blind(run: Features, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """SAVs with every image blanked, few-shot and test alike: what the prompt alone carries."""
    from savs.baselines import blank_images

    return _sav(run, blank_images(few), blank_images(test), seed)


def _probe(
    run: Features, few: list[Example], test: list[Example], seed: int, kind: str, vision: bool = False,
    heads: bool = False,
) -> list[str]:  # fmt: skip
    """A linear or k-NN probe on the LM's last hidden state (or the vision encoder's features, or every head's vector
    concatenated: the cached head vectors, (n, L*H*d)); a test example with an answer set is answered from it."""
    from savs.baselines import probe_predict

    features = run.vision if vision else (lambda ex: run.heads(ex).reshape(len(ex), -1)) if heads else run.hidden
    answer_sets = [e.meta.get("answer_set") for e in test]
    return list(probe_predict(features(few), labels(few), features(test), kind, seed, answer_sets))


def _generation(baseline: str, run: Features, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """A generation baseline (zero-shot, ICL, LoRA, MTV: ``savs.baselines``), its answers matched to a label. Its
    answers (and LoRA's weights, MTV's fit) are kept in the activation cache; they are not in ``savs.plan``, which
    ``SAVS_CACHE_ONLY`` runs vouch for, so what the cache lacks is generated even then."""
    from savs import baselines

    kw = {"cache_dir": run.cache, "cache_only": False, **run.options(baseline)}
    if baseline == "zero_shot":  # no few-shot examples used
        return baselines.zero_shot(run.adapter, test, run.task.labels, **kw)
    predict = {"icl": baselines.in_context, "lora": baselines.lora_predict, "mtv": baselines.mtv_predict}[baseline]
    return predict(run.adapter, few, test, run.task.labels, seed=seed, **kw)


@dataclass(frozen=True)
class Method:
    """A classifier to compare: its prediction function, the profile baseline that switches and sizes it
    (None: always run, on every seed and the whole test set), whether it ignores the seed, and which cached
    features it reads of the few-shot and test examples (``savs.plan``: what to extract before the notebooks)."""

    predict: Predict
    baseline: str | None = None
    seedless: bool = False
    reads: tuple[str, ...] = ("features",)  # "features": heads + hidden state; "vision"; "blind": blanked copies'


# The main table's read-out row, fixed before any result was seen (issue #23): the profile's SAV heads (its n_heads,
# its scoring and selection) read by the logistic read-out, instead of their vote. Not picked on test data.
BEST_READOUT = {"name": "SAV heads, logistic read-out (ours)", "readout": "logistic"}

# In the order of the main table's rows (``report.main_table`` sorts by it).
METHODS: dict[str, Method] = {
    # Generation, its answer matched to a label: zero-shot; ICL (demonstrations drawn from the few-shot set with the
    # seed); LoRA (fine-tuned on the few-shot set); MTV (mean heads of many-shot ICL prompts patched into the heads
    # REINFORCE chose).
    "zero-shot": Method(partial(_generation, "zero_shot"), "zero_shot", seedless=True, reads=()),
    "ICL": Method(partial(_generation, "icl"), "icl", reads=()),
    "LoRA": Method(partial(_generation, "lora"), "lora", reads=()),
    "MTV": Method(partial(_generation, "mtv"), "mtv", reads=()),
    "linear probe": Method(partial(_probe, kind="linear"), "linear_probe"),
    "linear probe, all heads": Method(partial(_probe, kind="linear", heads=True), "linear_probe"),
    "k-NN": Method(partial(_probe, kind="knn"), "knn"),
    "vision-encoder probe": Method(partial(_probe, kind="linear", vision=True), "vision_probe", reads=("vision",)),
    "SAVs, blank images": Method(_blind, "blind", reads=("blind",)),
    "last layer (NCM)": Method(partial(_ncm, last_layer=True)),
    "all layers (NCM)": Method(partial(_ncm, last_layer=False)),
    "all heads vote": Method(partial(_sav, n_heads="all")),
    "SAVs": Method(_sav),
    BEST_READOUT["name"]: Method(partial(_sav, readout=BEST_READOUT["readout"])),
}
# What runs on a profile's ablation models (savs-mini's untrained projector: does alignment teach the model to answer,
# and do SAVs need it?)
ABLATION_METHODS = ("zero-shot", "all heads vote", "SAVs")

# Name -> SAVClassifier options. "SAVs" is the paper's rule; each next one changes one choice, the last combines
# them. Those fixing n_heads run once per seed; the others run at every head count of the study's grid.
HEAD_METHODS: dict[str, dict[str, Any]] = {
    "SAVs": {},
    "LOO scoring": {"scoring": "leave_one_out"},
    "5-fold CV scoring": {"scoring": "cv"},
    "Fisher scoring (HEC)": {"scoring": "fisher"},
    "pursuit selection": {"selection": "pursuit"},
    "CALM voting": {"voting": "reliability"},
    "CV + pursuit + CALM": {"scoring": "cv", "selection": "pursuit", "voting": "reliability"},
    "all heads vote": {"n_heads": "all"},
    "CALM, all heads": {"n_heads": "all", "voting": "reliability"},
}
HEAD_METHOD_PROBES = ("linear probe", "vision-encoder probe")  # from METHODS, where the profile switches them on
