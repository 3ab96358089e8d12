"""The experiments behind every table and figure: the pieces the notebooks' loops call.

A ``Session`` holds a profile, the shared activation cache and the loaded tasks; ``Session.run(model, task)``
gives a ``Run`` whose features (head vectors, hidden states, vision features) are extracted once and reused by
every method; ``Session.classifier()`` is the profile's SAV rule. ``METHODS`` names every classifier compared in
the paper's main table, each a function of ``(run, few_shot, test, seed) -> predictions``. The long sweeps
(``main_results``, ``shot_scaling``, ``head_maps``, ``head_methods``) are loops here; the head-sparsity and
cross-task loops are written out in their notebooks, over ``result_row``, ``fit_sav`` and ``transfer_rows``. All
return tidy DataFrames with one row per (model, task, method, shots, seed, metric); ``savs.report`` turns them
into tables and captions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sklearn.base import clone

from savs import baselines
from savs.cache import CacheMissError, cache_only_mode
from savs.classifier import SAVClassifier, answer_set_mask, score_is_accuracy
from savs.data import load_task
from savs.examples import Example, Task
from savs.extract import extract_features
from savs.methods import BEST_READOUT, HEAD_METHOD_PROBES, HEAD_METHODS, bootstrap_resamples
from savs.models import Adapter, load_model
from savs.profiles import Profile

T = TypeVar("T")
Predict = Callable[["Run", list[Example], list[Example], int], list[str]]

# --- sessions and runs -----------------------------------------------------------------------------


def load_adapter(name: str, profile: Profile, cache_dir: Path) -> Adapter:
    """A model as the profile loads it (device, dtype); ``random:`` models are built under ``cache_dir``."""
    return load_model(name, cache_dir, **profile.model_kwargs(name))


def load_profile_task(name: str, profile: Profile) -> Task:
    """Task ``name`` as the profile loads it (``Profile.task_kwargs``)."""
    return load_task(name, **profile.task_kwargs(name))


@dataclass
class Run:
    """One model on one task: the features every method shares, each extracted once (memoized by content)."""

    session: Session
    model: str
    adapter: Adapter
    task: Task
    memo: dict[tuple, Any] = field(default_factory=dict)

    def _memoized(self, kind: str, examples: Sequence[Example], compute: Callable[[], T]) -> T:
        """``compute()`` once per (kind, examples' content)."""
        key = (kind, *(e.fingerprint() for e in examples))
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def heads(self, examples: Sequence[Example]) -> np.ndarray:
        """Every head's last-token vector, ``(n, L, H, d)``, through the shared on-disk cache."""
        return self._features(examples)["heads"]

    def hidden(self, examples: Sequence[Example]) -> np.ndarray:
        """The last layer's last-token hidden state, ``(n, hidden)`` (the probes' features)."""
        return self._features(examples)["hidden"]

    def _features(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """Head vectors and the final hidden state from one forward pass per example (both cached on disk)."""
        return self._memoized("features", examples, lambda: self._extract_features(examples))

    def _extract_features(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """From the cache; on a miss, first the session's ``fill_miss`` (a notebook's: the plan's batches,
        ``savs.plan.extract_as_planned``, so the vectors are those ``make extract`` would have cached), then whatever
        lies outside it."""
        kw = {"heads": self.adapter.head_layers, "hidden": -1, "batch_size": self.session.profile.batch_size,
              "cache_dir": self.session.cache, "progress": False}  # fmt: skip
        try:
            return extract_features(self.adapter, examples, cache_only=True, **kw)
        except CacheMissError:
            if cache_only_mode(None, self.session.cache):
                raise
        if self.session.fill_miss is not None:
            self.session.fill_miss(self.model, self.task.name, examples)
        return extract_features(self.adapter, examples, **kw)

    def vision(self, examples: Sequence[Example]) -> np.ndarray:
        """The vision encoder's pooled features, ``(n, features)``."""
        return self._memoized(
            "vision",
            examples,
            lambda: baselines.vision_features(self.adapter, examples, progress=False, cache_dir=self.session.cache),
        )

    def options(self, baseline: str) -> dict:
        """Keyword arguments for a baseline function: the profile's batch size, no progress bar, its options."""
        return {
            "batch_size": self.session.profile.batch_size,
            "progress": False,
            **self.session.profile.baselines[baseline].options,
        }


class Session:
    """A profile plus the shared activation cache; loads each task once and one model at a time."""

    def __init__(self, profile: Profile, cache_dir: Path) -> None:
        self.profile, self.cache = profile, Path(cache_dir)
        self.tasks: dict[str, Task] = {}
        self.loaded: tuple[str, Adapter] | None = None
        self.contrastive_models: dict[str, baselines.ContrastiveModel] = {}
        # How a cache miss is filled before the rest is extracted: (model, task, examples) -> None. A notebook's
        # session runs the plan's batches (``savs.plan.planned_session``); None: ``extract_features``'s own batches.
        self.fill_miss: Callable[[str, str, Sequence[Example]], object] | None = None

    def task(self, name: str) -> Task:
        """Task ``name``, loaded once per session (notebooks revisit tasks across experiments)."""
        if name not in self.tasks:
            self.tasks[name] = load_profile_task(name, self.profile)
        return self.tasks[name]

    def adapter(self, model: str) -> Adapter:
        """The model, kept loaded until another is asked for (two 7B models need not fit together)."""
        if self.loaded is None or self.loaded[0] != model:
            self.loaded = None  # free the previous model before loading the next
            self.loaded = (model, load_adapter(model, self.profile, self.cache))
        return self.loaded[1]

    def run(self, model: str, task: str) -> Run:
        """A fresh ``Run`` (empty feature memo) of ``model`` on ``task``."""
        return Run(self, model, self.adapter(model), self.task(task))

    def test(self, task: str, few: Sequence[Example], n: int | None = None) -> list[Example]:
        """The first ``n`` (default: the profile's) test examples of the task's fixed seeded order (whole groups for
        grouped tasks); where the few-shot pool is the test split, leaving out the seed's few-shot set ``few``."""
        t = self.task(task)
        if t.pool_is_test and not few:
            raise ValueError(f"task {task!r} draws few-shot sets from its test split: pass the seed's few-shot set")
        return t.test_subset(n if n is not None else self.profile.n_test, seed=0, exclude=few if t.pool_is_test else ())

    def contrastive(self, name: str) -> baselines.ContrastiveModel:
        """A CLIP or SigLIP model (``baselines.load_contrastive``), loaded once per session."""
        if name not in self.contrastive_models:
            self.contrastive_models[name] = baselines.load_contrastive(name, cache_dir=self.cache,
                                                                        device=self.profile.device)  # fmt: skip
        return self.contrastive_models[name]

    def classifier(self, **overrides: Any) -> SAVClassifier:
        """An unfitted ``SAVClassifier`` with the profile's SAV rule (head count, metric, scoring, selection, voting),
        ``overrides`` replacing any of them (e.g. ``heads=`` for fixed voting heads)."""
        return SAVClassifier(**{"n_heads": self.profile.n_heads, **self.profile.rule(), **overrides})


# --- the methods -------------------------------------------------------------------------------------


def labels(examples: Sequence[Example]) -> np.ndarray:
    """The gold labels, as the array sklearn-style classifiers take."""
    return np.array([e.label for e in examples])


def allowed(classes: Sequence[str], test: Sequence[Example]) -> np.ndarray | None:
    """Which of ``classes`` each test example may take: its ``meta["answer_set"]`` (NaturalBench VQA's yes/no and
    A/B questions share one label set), else any; None when no example has one (``answer_set_mask``)."""
    return answer_set_mask(classes, [e.meta.get("answer_set") for e in test])


def _sav(
    run: Run, few: list[Example], test: list[Example], seed: int, n_heads: int | str | None = None, **rule: Any
) -> list[str]:
    """SAVs (``n_heads`` None: the profile's k); "all" lets every head vote; ``rule`` overrides the profile's (e.g.
    ``readout``). A test example with an answer set (``allowed``) is answered from it: a masked vote."""
    options = {**rule} if n_heads is None else {"n_heads": n_heads, **rule}
    clf = run.session.classifier(**options).fit(run.heads(few), labels(few))
    return clf.predict(run.heads(test), allowed(clf.classes_, test)).tolist()


def _ncm(run: Run, few: list[Example], test: list[Example], seed: int, last_layer: bool) -> list[str]:
    """Nearest class mean (the profile's metric) on one concatenated vector: the last layer's heads or every layer's."""

    def flat(X: np.ndarray) -> np.ndarray:
        X = X[:, -1:] if last_layer else X  # (n, L', H, d)
        return X.reshape(len(X), 1, 1, -1)  # (n, 1, 1, L'*H*d): one "head"

    clf = SAVClassifier(n_heads=1, metric=run.session.profile.metric).fit(flat(run.heads(few)), labels(few))
    return clf.predict(flat(run.heads(test)), allowed(clf.classes_, test)).tolist()


def _blind(run: Run, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """SAVs with every image blanked, few-shot and test alike: what the prompt alone carries."""
    return _sav(run, baselines.blank_images(few), baselines.blank_images(test), seed)


def _probe(
    run: Run, few: list[Example], test: list[Example], seed: int, kind: str, vision: bool = False, heads: bool = False
) -> list[str]:
    """A linear or k-NN probe on the LM's last hidden state (or the vision encoder's features, or every head's vector
    concatenated: the cached head vectors, (n, L*H*d)); a test example with an answer set is answered from it."""
    features = run.vision if vision else (lambda ex: run.heads(ex).reshape(len(ex), -1)) if heads else run.hidden
    answer_sets = [e.meta.get("answer_set") for e in test]
    return list(baselines.probe_predict(features(few), labels(few), features(test), kind, seed, answer_sets))


def _answers_cache(run: Run) -> dict:
    """Keep a generation baseline's answers (and LoRA's weights, MTV's fit) in the session's cache. They are not in
    ``savs.plan``, which ``SAVS_CACHE_ONLY`` runs vouch for, so what the cache lacks is generated even then."""
    return {"cache_dir": run.session.cache, "cache_only": False}


def _zero_shot(run: Run, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """Greedy generation, the answer matched to a label (no few-shot examples used)."""
    return baselines.zero_shot(run.adapter, test, run.task.labels, **_answers_cache(run), **run.options("zero_shot"))


def _icl(run: Run, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """In-context learning: demonstrations drawn from the few-shot set with ``seed``, then generation."""
    return baselines.in_context(
        run.adapter, few, test, run.task.labels, seed=seed, **_answers_cache(run), **run.options("icl")
    )


def _lora(run: Run, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """LoRA fine-tuned on the same few-shot set, then generation."""
    return baselines.lora_predict(
        run.adapter, few, test, run.task.labels, seed=seed, **_answers_cache(run), **run.options("lora")
    )


def _mtv(run: Run, few: list[Example], test: list[Example], seed: int) -> list[str]:
    """Multimodal Task Vectors: mean heads of many-shot ICL prompts over the few-shot set, the heads to patch chosen
    by REINFORCE, then patched zero-shot generation."""
    return baselines.mtv_predict(
        run.adapter, few, test, run.task.labels, seed=seed, **_answers_cache(run), **run.options("mtv")
    )


@dataclass(frozen=True)
class Method:
    """A classifier to compare: its prediction function, the profile baseline that switches and sizes it
    (None: always run, on every seed and the whole test set), whether it ignores the seed, and which cached
    features it reads of the few-shot and test examples (``savs.plan``: what to extract before the notebooks)."""

    predict: Predict
    baseline: str | None = None
    seedless: bool = False
    reads: tuple[str, ...] = ("features",)  # "features": heads + hidden state; "vision"; "blind": blanked copies'


# In the order of the main table (savs.methods.METHOD_NAMES, torch-free, which the report sorts its rows by).
METHODS: dict[str, Method] = {
    "zero-shot": Method(_zero_shot, "zero_shot", seedless=True, reads=()),
    "ICL": Method(_icl, "icl", reads=()),
    "LoRA": Method(_lora, "lora", reads=()),
    "MTV": Method(_mtv, "mtv", reads=()),
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


def active_methods(profile: Profile, task: str, names: Sequence[str] = tuple(METHODS)) -> list[str]:
    """``names`` minus the baselines the profile switches off (or does not run on ``task``)."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    return [n for n in names if METHODS[n].baseline is None or profile.runs(METHODS[n].baseline, task)]


def method_sets(
    session: Session, task: str, method: str, shots: int, seeds: Sequence[int]
) -> list[tuple[int, list[Example], list[Example]]]:
    """(seed, few-shot set, test set) for each seed ``method`` runs on at ``shots`` per class: the seeds and test
    size its baseline allows. ``evaluate`` scores these and ``savs.plan`` extracts their features beforehand."""
    spec, profile = METHODS[method], session.profile
    if spec.baseline is not None:
        seeds = [s for s in seeds if s in profile.seeds_for(spec.baseline)]
    if spec.seedless:
        seeds = list(seeds)[:1]
    n_test = profile.n_test_for(spec.baseline) if spec.baseline else profile.n_test
    sets = []
    for seed in seeds:
        few = session.task(task).few_shot(shots, seed)
        sets.append((seed, few, session.test(task, few, n_test)))
    return sets


def evaluate(run: Run, method: str, shots: int, seeds: Sequence[int]) -> list[dict]:
    """Score ``method`` on ``run`` at ``shots`` per class for each seed it runs on: one row per seed x metric.

    Prints one line per seed with the time it took (the notebooks' log of where the time goes).
    """
    spec = METHODS[method]
    rows = []
    for seed, few, test in method_sets(run.session, run.task.name, method, shots, seeds):
        start = time.perf_counter()
        predictions = spec.predict(run, few, test, seed)
        seconds = time.perf_counter() - start
        print(f"{run.model} | {run.task.name} | {method} | {shots} shots | seed {seed}: {seconds:.1f} s")
        for metric, value in run.task.evaluate(test, predictions).items():
            rows.append(
                {
                    "model": run.model,
                    "task": run.task.name,
                    "method": method,
                    "shots": shots,
                    "seed": seed,
                    "n_few_shot": len(few),
                    "n_test": len(test),
                    "metric": metric,
                    "value": value,
                }
            )
    return rows


# --- experiments ---------------------------------------------------------------------------------------


def main_plan(profile: Profile) -> list[tuple[str, str, list[str], tuple[int, ...]]]:
    """(model, task, methods, seeds) of the main table: every active method on every model x task; the ablation
    models run ``ABLATION_METHODS`` (zero-shot only where the profile runs it) on their first ``ablation_n_seeds``
    seeds; the zero-shot models (the paper's other LMMs) answer zero-shot only."""
    p = profile
    plan = [(m, t, active_methods(p, t), p.seeds) for m in p.models for t in p.tasks]
    plan += [(m, t, active_methods(p, t, ABLATION_METHODS), p.seeds[: p.ablation_n_seeds])
             for m in p.ablation_models for t in p.tasks]  # fmt: skip
    plan += [(m, t, ["zero-shot"], p.seeds[:1]) for m in p.zero_shot_models for t in p.tasks if p.runs("zero_shot", t)]
    return plan


CONTRASTIVE = {"clip": "CLIP", "siglip": "SigLIP"}  # profile baseline -> the paper's row name


def contrastive_rows(session: Session, baseline: str, task: str) -> list[dict]:
    """A CLIP or SigLIP model's zero-shot rows on ``task`` (``baselines.contrastive_predict``: no LMM involved), as
    the paper's table has them: model "CLIP (<checkpoint>)", method "zero-shot"; one seed (the few-shot set only
    calibrates MHaluBench's match threshold)."""
    options = dict(session.profile.baselines[baseline].options)
    model = session.contrastive(options.pop("model", baseline))
    seed = session.profile.seeds_for(baseline)[0]
    few = session.task(task).few_shot(session.profile.shots, seed)
    test = session.test(task, few, session.profile.n_test_for(baseline))
    start = time.perf_counter()
    predictions = baselines.contrastive_predict(model, session.task(task), test, calibration=few, progress=False,
                                                **options)  # fmt: skip
    print(f"{model.name} | {task} | zero-shot | seed {seed}: {time.perf_counter() - start:.1f} s")
    name = f"{CONTRASTIVE[baseline]} ({model.name})"
    return [
        {"model": name, "task": task, "method": "zero-shot", "shots": 0, "seed": seed, "n_few_shot": len(few),
         "n_test": len(test), "metric": metric, "value": value}
        for metric, value in session.task(task).evaluate(test, predictions).items()
    ]  # fmt: skip


def shot_scaling_plan(profile: Profile) -> list[tuple[str, str, int, list[str]]]:
    """(model, task, shots, methods) of the shot-scaling curve."""
    p, study = profile, profile.shot_scaling
    return [
        (model, task, int(shots), active_methods(p, task, study.methods or ("SAVs",)))
        for model in p.models
        for task in p.study_tasks(study)
        for shots in study.grid
    ]


def main_results(session: Session) -> pd.DataFrame:
    """The main table (``main_plan``, then the CLIP / SigLIP rows where the profile lists them), one row per model x
    task x method x seed x metric."""
    p, rows = session.profile, []
    for model, task, methods, seeds in main_plan(p):
        run = session.run(model, task)
        for method in methods:
            rows += evaluate(run, method, p.shots, seeds)
    for baseline in CONTRASTIVE:
        rows += [row for task in p.tasks if p.runs(baseline, task) for row in contrastive_rows(session, baseline, task)]
    return pd.DataFrame(rows)


def shot_scaling(session: Session) -> pd.DataFrame:
    """Accuracy vs examples per class, for the study's methods: one row per model x task x shots x method x seed."""
    rows = []
    for model, task, shots, methods in shot_scaling_plan(session.profile):
        run = session.run(model, task)
        for method in methods:
            rows += evaluate(run, method, shots, session.profile.seeds)
    df = pd.DataFrame(rows)
    return df[df["metric"] == "accuracy"].rename(columns={"value": "accuracy"}).drop(columns="metric")


def fit_sav(run: Run, seed: int) -> SAVClassifier:
    """The profile's SAVs fitted on the run's few-shot set for ``seed``."""
    few = run.task.few_shot(run.session.profile.shots, seed)
    return run.session.classifier().fit(run.heads(few), labels(few))


def random_heads(clf: SAVClassifier, seed: int) -> np.ndarray:
    """As many (layer, head) pairs as ``clf`` selected, drawn uniformly without replacement with ``seed``."""
    L, H = clf.head_grid_
    pick = np.random.default_rng(seed).choice(L * H, size=len(clf.heads_), replace=False)
    return np.stack(np.unravel_index(pick, (L, H)), axis=1)


def transfer_rows(run: Run, fitted: dict[str, SAVClassifier], seed: int) -> list[dict]:
    """Heads selected on each source task (``fitted``: task -> its SAVs), voting on the run's task: one row per
    variant. "heads from source": the run's few-shot set gives the class means (only its labels are needed);
    "heads + means from source": the source's classifier as is (only where both share a label set); "random heads":
    as many heads drawn with the seed, the control. The run's own task as source is plain SAVs."""
    p = run.session.profile
    few = run.task.few_shot(p.shots, seed)
    test = run.session.test(run.task.name, few)
    X_few, y_few, X_test = run.heads(few), labels(few), run.heads(test)
    own = fitted[run.task.name]
    variants = []
    for source, clf in fitted.items():
        variants.append(("heads from source", source, run.session.classifier(heads=clf.heads_).fit(X_few, y_few)))
        if set(clf.classes_) == set(own.classes_):
            variants.append(("heads + means from source", source, clf))
    control = run.session.classifier(heads=random_heads(own, seed)).fit(X_few, y_few)
    variants.append(("random heads", "random heads", control))
    return [
        result_row(
            run,
            seed,
            p.shots,
            n_test=len(test),
            variant=variant,
            source=source,
            target=run.task.name,
            accuracy=run.task.evaluate(test, clf.predict(X_test, allowed(clf.classes_, test)).tolist())["accuracy"],
        )
        for variant, source, clf in variants
    ]


def head_maps(session: Session) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, np.ndarray]]]:
    """Where the selected heads sit: per model x task, the head scores (mean over seeds), how often each head
    was selected, and the top head's test vectors with their labels (for a 2-D projection).

    Returns (table of selected heads per seed: rank, layer, head, score; arrays per (model, task)). Scores that are
    accuracies (``classifier.score_is_accuracy``) are in %.
    """
    p = session.profile
    scale = 100 if score_is_accuracy(p.scoring) else 1
    rows, maps = [], {}
    for model in p.models:
        for task in p.study_tasks(p.head_maps):
            run = session.run(model, task)
            layer_of = list(run.adapter.head_layers)  # grid row -> real decoder layer (a hybrid's skip some)
            fits = []
            for seed in p.seeds:
                few = run.task.few_shot(p.shots, seed)
                clf = session.classifier().fit(run.heads(few), labels(few))
                fits.append(clf)
                for rank, (row, head) in enumerate(clf.heads_.tolist()):
                    score = scale * float(clf.head_scores_[row, head])
                    rows.append(
                        result_row(run, seed, p.shots, rank=rank + 1, layer=layer_of[row], head=head, score=score)
                    )
            scores = scale * np.mean([c.head_scores_ for c in fits], axis=0)  # (L, H)
            selected = np.zeros_like(scores)
            for clf in fits:
                selected[tuple(clf.heads_.T)] += 1 / len(fits)  # share of seeds that picked each head
            test = session.test(task, run.task.few_shot(p.shots, p.seeds[0]))  # the first seed's test set
            row, head = np.unravel_index(scores.argmax(), scores.shape)  # the best head over seeds
            maps[(model, task)] = {
                "scores": scores,
                "selected": selected,
                "layers": np.array(layer_of),  # the decoder layer of each row of scores / selected
                "top_head": np.array([layer_of[row], head]),
                "top_vectors": run.heads(test)[:, row, head],  # (n_test, d)
                "labels": labels(test),
            }
    return pd.DataFrame(rows), maps


def result_row(run: Run, seed: int, shots: int, **values) -> dict:
    """A result row carrying who made it (model, task, shots, seed) plus ``values``."""
    return {"model": run.model, "task": run.task.name, "shots": shots, "seed": seed, **values}


# --- beyond SAVs: head scoring, selection and voting rules on the same features (issue #13) ------------------

HEAD_METHOD_COLUMNS = [
    "model", "task", "method", "scoring", "selection", "voting", "heads", "shots", "seed", "n_few_shot", "n_test",
    "accuracy", "ci_low", "ci_high", "log_loss", "log_loss_calibrated", "seconds", "correct",
]  # fmt: skip
P_FLOOR = 1e-6  # log losses floor the true class's probability here (a hard vote gives it 0)


def _log_loss(proba: np.ndarray, classes: np.ndarray, y: np.ndarray) -> float:
    """Mean -log p(true class), p floored at ``P_FLOOR``."""
    p = proba[np.arange(len(y)), np.searchsorted(classes, y)]
    return float(-np.log(np.maximum(p, P_FLOOR)).mean())


def _calibrated_log_loss(
    clf: SAVClassifier, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, mask: np.ndarray | None
):
    """Log loss of the same rule with temperature calibration (``mask``: the test examples' allowed classes); NaN
    where the shots are too few for its nested folds."""
    try:
        calibrated = clone(clf).set_params(calibration="temperature").fit(X, y)
    except ValueError:  # too few examples per class for the nested folds (smoke profile)
        return np.nan
    return _log_loss(calibrated.predict_proba(X_test, mask), calibrated.classes_, y_test)


def head_method_names(profile: Profile) -> list[str]:
    """The rules and probes the head-methods study compares (its ``methods``, else all of them)."""
    names = list(profile.head_methods.methods) or [*HEAD_METHODS, *HEAD_METHOD_PROBES]
    unknown = [n for n in names if n not in HEAD_METHODS and n not in HEAD_METHOD_PROBES]
    if unknown:
        raise ValueError(f"unknown head methods {unknown}; known: {', '.join([*HEAD_METHODS, *HEAD_METHOD_PROBES])}")
    return names


def head_methods(session: Session) -> pd.DataFrame:
    """Every head rule of ``HEAD_METHODS`` and the probes, on the same cached features, per model x task x seed.

    Rules with a free head count run at each count of the study's grid. One row per model x task x method x heads x
    seed: ``accuracy`` (%), its 95% bootstrap interval over test examples (``ci_low``, ``ci_high``), the fit + predict
    ``seconds``, and for the head rules at the profile's head count (and the all-heads ones) the log loss of
    ``predict_proba`` as is and temperature-calibrated. Column ``correct`` holds which test examples each row got
    right (for paired comparisons, ``report.head_methods_summary``); drop it before writing a CSV.
    Probes run on the seeds the profile gives them, on the same test set as the head rules.
    """
    p, study = session.profile, session.profile.head_methods
    names = head_method_names(p)
    rules = [n for n in names if n in HEAD_METHODS]
    rows = []
    for model in p.models:
        for task in p.study_tasks(study):
            run = session.run(model, task)
            probes = active_methods(p, task, [n for n in names if n in HEAD_METHOD_PROBES])
            for seed in p.seeds:
                few = run.task.few_shot(p.shots, seed)
                test = session.test(task, few)
                rows += _head_rule_rows(run, few, test, seed, rules)
                for name in probes:
                    if seed in p.seeds_for(METHODS[name].baseline):
                        start = time.perf_counter()
                        predictions = METHODS[name].predict(run, few, test, seed)
                        rows.append(_scored_row(run, few, test, seed, name, predictions, time.perf_counter() - start))
                print(f"{model} | {task} | seed {seed}: {len(rows)} rows so far")
    return pd.DataFrame(rows, columns=HEAD_METHOD_COLUMNS).astype({"heads": "Int64"})


def _head_rule_rows(run: Run, few: list[Example], test: list[Example], seed: int, rules: Sequence[str]) -> list[dict]:
    """The rows of ``head_methods`` for the head rules ``rules`` on one few-shot draw."""
    p = run.session.profile
    X, y, X_test, y_test = run.heads(few), labels(few), run.heads(test), labels(test)
    n_all = X.shape[1] * X.shape[2]
    # always the paper's sparsity too; a count past the model's heads is all of them, run once (not one copy per count)
    grid = list(dict.fromkeys("all" if k == "all" or k >= n_all else k for k in [*p.head_methods.grid, p.n_heads]))
    paper_k = n_all if p.n_heads == "all" else min(p.n_heads, n_all)
    rows = []
    for name in rules:
        options = HEAD_METHODS[name]
        for k in [options["n_heads"]] if "n_heads" in options else grid:
            start = time.perf_counter()
            clf = SAVClassifier(**{"n_heads": k, "metric": p.metric, **options}).fit(X, y)
            mask = allowed(clf.classes_, test)
            predictions = clf.predict(X_test, mask)
            seconds = time.perf_counter() - start
            losses = {"log_loss": np.nan, "log_loss_calibrated": np.nan}
            if len(clf.heads_) == paper_k or "n_heads" in options:
                losses = {
                    "log_loss": _log_loss(clf.predict_proba(X_test, mask), clf.classes_, y_test),
                    "log_loss_calibrated": _calibrated_log_loss(clf, X, y, X_test, y_test, mask),
                }
            rule = {"scoring": clf.scoring, "selection": clf.selection, "voting": clf.voting, "heads": len(clf.heads_)}
            rows.append(_scored_row(run, few, test, seed, name, predictions, seconds, **rule, **losses))
    return rows


def _scored_row(
    run: Run, few: list[Example], test: list[Example], seed: int, method: str, predictions, seconds: float, **values
) -> dict:
    """A ``head_methods`` row: accuracy with its bootstrap interval, and which test examples were right."""
    correct = np.asarray(predictions) == labels(test)
    low, high = np.percentile(100 * correct[bootstrap_resamples(len(test))].mean(axis=1), [2.5, 97.5])
    return result_row(
        run, seed, run.session.profile.shots, method=method, **values, n_few_shot=len(few), n_test=len(test),
        accuracy=run.task.evaluate(test, list(predictions))["accuracy"], ci_low=low, ci_high=high, seconds=seconds,
        correct=correct,
    )  # fmt: skip
