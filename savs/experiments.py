"""The session every notebook opens, and the pieces its study's loop calls.

A ``Session`` holds a profile, the shared activation cache and the loaded tasks, and draws the few-shot and test
sets; ``Session.run(model, task)`` gives a ``Run`` whose features (head vectors, hidden states, vision features) are
extracted once and reused by every method of ``savs.methods``; ``Session.classifier()`` is the profile's SAV rule.
The loops of the studies are written out in their notebooks; here are what they loop over (``main_plan``,
``shot_scaling_plan``, ``active_methods``: also what ``savs.plan`` extracts beforehand) and the per-run pieces that
give their rows (``evaluate``, ``contrastive_rows``, ``transfer_rows``, ``selected_heads`` / ``head_map``,
``head_rule_rows`` / ``probe_rows``). Rows are tidy dicts, one per (model, task, method, shots, seed, ...);
``savs.report`` turns their DataFrames into tables and captions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sklearn.base import clone

from savs import baselines
from savs.cache import CacheMissError, cache_only_mode
from savs.classifier import SAVClassifier, score_is_accuracy
from savs.data import load_task
from savs.examples import Example, Task
from savs.extract import extract_features
from savs.methods import ABLATION_METHODS, HEAD_METHOD_PROBES, HEAD_METHODS, METHODS, allowed, labels
from savs.models import Adapter, load_model
from savs.profiles import Profile
from savs.report import bootstrap_resamples

T = TypeVar("T")

# --- sessions and runs -----------------------------------------------------------------------------


def load_adapter(name: str, profile: Profile, cache_dir: Path) -> Adapter:
    """A model as the profile loads it (device, dtype); ``random:`` models are built under ``cache_dir``."""
    return load_model(name, cache_dir, **profile.model_kwargs(name))


def load_profile_task(name: str, profile: Profile) -> Task:
    """Task ``name`` as the profile loads it (``Profile.task_kwargs``)."""
    return load_task(name, **profile.task_kwargs(name))


@dataclass
class Run:
    """One model on one task: the features every method shares, each extracted once (memoized by content); what a
    method of ``savs.methods`` reads (``methods.Features``)."""

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

    @property
    def cache(self) -> Path:
        """The session's activation cache (where the generation baselines keep their answers too)."""
        return self.session.cache

    @property
    def metric(self) -> str:
        """The profile's SAV metric (the nearest-class-mean methods use it)."""
        return self.session.profile.metric

    def classifier(self, **overrides: Any) -> SAVClassifier:
        """The session's unfitted SAV rule (``Session.classifier``)."""
        return self.session.classifier(**overrides)

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


# --- the methods (``savs.methods``) on the profile's sets -------------------------------------------


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


# --- the studies' plans and rows --------------------------------------------------------------------------------


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


def selected_heads(run: Run, clf: SAVClassifier, seed: int) -> list[dict]:
    """The heads ``clf`` (fitted on the run's few-shot set for ``seed``) selected, best first: one row each with its
    rank, decoder layer, head and score (in % where scores are accuracies, ``classifier.score_is_accuracy``)."""
    p = run.session.profile
    scale = 100 if score_is_accuracy(p.scoring) else 1
    layer_of = list(run.adapter.head_layers)  # grid row -> real decoder layer (a hybrid's skip some)
    return [
        result_row(run, seed, p.shots, rank=rank + 1, layer=layer_of[row], head=head,
                   score=scale * float(clf.head_scores_[row, head]))
        for rank, (row, head) in enumerate(clf.heads_.tolist())
    ]  # fmt: skip


def head_map(run: Run, fits: dict[int, SAVClassifier]) -> dict[str, np.ndarray]:
    """Where the heads of ``fits`` (seed -> SAVs fitted on that seed's few-shot set) sit: every head's score (mean
    over seeds; in % where scores are accuracies), the share of seeds that selected it, the decoder layer of each
    grid row, and the top head's vectors on the first seed's test set with their labels (for a 2-D projection)."""
    p = run.session.profile
    scale = 100 if score_is_accuracy(p.scoring) else 1
    layer_of = list(run.adapter.head_layers)
    scores = scale * np.mean([c.head_scores_ for c in fits.values()], axis=0)  # (L, H)
    selected = np.zeros_like(scores)
    for clf in fits.values():
        selected[tuple(clf.heads_.T)] += 1 / len(fits)  # share of seeds that picked each head
    test = run.session.test(run.task.name, run.task.few_shot(p.shots, next(iter(fits))))  # the first seed's test set
    row, head = np.unravel_index(scores.argmax(), scores.shape)  # the best head over seeds
    return {
        "scores": scores,
        "selected": selected,
        "layers": np.array(layer_of),  # the decoder layer of each row of scores / selected
        "top_head": np.array([layer_of[row], head]),
        "top_vectors": run.heads(test)[:, row, head],  # (n_test, d)
        "labels": labels(test),
    }


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


def probe_rows(run: Run, few: list[Example], test: list[Example], seed: int, probes: Sequence[str]) -> list[dict]:
    """The head-methods study's rows of the main table's ``probes`` (``HEAD_METHOD_PROBES``) on one draw, each on the
    seeds its baseline runs, scored on the head rules' test set."""
    rows = []
    for name in probes:
        if seed in run.session.profile.seeds_for(METHODS[name].baseline):
            start = time.perf_counter()
            predictions = METHODS[name].predict(run, few, test, seed)
            rows.append(scored_row(run, few, test, seed, name, predictions, time.perf_counter() - start))
    return rows


def head_rule_rows(run: Run, few: list[Example], test: list[Example], seed: int, rules: Sequence[str]) -> list[dict]:
    """The head-methods study's rows of the head rules ``rules`` (``HEAD_METHODS``) on one few-shot draw.

    Rules with a free head count run at each count of the study's grid and the profile's; one row per rule and head
    count: ``accuracy`` (%), its 95% bootstrap interval over test examples (``ci_low``, ``ci_high``), the fit + predict
    ``seconds``, and at the profile's head count (and for the all-heads rules) the log loss of ``predict_proba`` as
    is and temperature-calibrated. ``correct`` holds which test examples each row got right (paired comparisons,
    ``report.head_methods_summary``); drop it before writing a CSV (``HEAD_METHOD_COLUMNS``: the rows' columns)."""
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
            rows.append(scored_row(run, few, test, seed, name, predictions, seconds, **rule, **losses))
    return rows


def scored_row(
    run: Run, few: list[Example], test: list[Example], seed: int, method: str, predictions, seconds: float, **values
) -> dict:
    """A head-methods row: accuracy with its bootstrap interval, and which test examples were right."""
    correct = np.asarray(predictions) == labels(test)
    low, high = np.percentile(100 * correct[bootstrap_resamples(len(test))].mean(axis=1), [2.5, 97.5])
    return result_row(
        run, seed, run.session.profile.shots, method=method, **values, n_few_shot=len(few), n_test=len(test),
        accuracy=run.task.evaluate(test, list(predictions))["accuracy"], ci_low=low, ci_high=high, seconds=seconds,
        correct=correct,
    )  # fmt: skip
