"""What a profile's notebooks will ask of each model, in one place: per model and task, the examples whose features
(every head's vector and the last hidden state, from one pass), vision features and blank-image copies (the blind
control) the notebooks read.

It is built from the same functions the experiments run (``experiments.main_plan``, ``method_sets``, ...), with
each method declaring what it reads (``Method.reads``), so it cannot drift from them. ``savs.distributed``
extracts exactly this before the notebooks run (they then run no extraction pass), and ``savs.preflight`` builds
it, which loads every task but no model, to check that each task can give its few-shot and test sets.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from savs import baselines
from savs.examples import Example
from savs.experiments import Session, active_methods, head_method_names, main_plan, method_sets, shot_scaling_plan
from savs.extract import extract_batches, plan_batches
from savs.methods import HEAD_METHOD_PROBES, METHODS


@dataclass
class Need:
    """What the notebooks read of one model on one task: examples by fingerprint, in first-asked order."""

    model: str
    task: str
    features: dict[str, Example] = field(default_factory=dict)  # heads (all layers) + last hidden state
    vision: dict[str, Example] = field(default_factory=dict)  # the vision encoder's pooled features

    def add(self, kind: str, examples: Iterable[Example]) -> None:
        """Record ``examples`` as read for ``kind`` ("features", "vision", or "blind": their blanked copies'
        features)."""
        if kind == "blind":
            kind, examples = "features", baselines.blank_images(list(examples))
        target = self.features if kind == "features" else self.vision
        for e in examples:
            target.setdefault(e.fingerprint(), e)


class Plan:
    """The needs of a profile, keyed by (model, task); ``problems``: per task, why a set could not be drawn."""

    def __init__(self) -> None:
        self.needs: dict[tuple[str, str], Need] = {}
        self.problems: dict[str, str] = {}

    def need(self, model: str, task: str) -> Need:
        return self.needs.setdefault((model, task), Need(model, task))

    def method(self, session: Session, model: str, task: str, method: str, shots: int, seeds: Iterable[int]) -> None:
        """What ``method`` reads, for each (seed, few-shot set, test set) it is scored on (drawn even when it reads
        nothing: drawing them is what preflight checks)."""
        if task in self.problems:  # one problem per task is enough to name it
            return
        with self._noting(task, f"the {shots}-shot sets of {method}"):
            for _, few, test in method_sets(session, task, method, shots, list(seeds)):
                for kind in METHODS[method].reads:
                    self.need(model, task).add(kind, few + test)

    def study(self, session: Session, model: str, task: str, shots: int, seeds: Iterable[int]) -> None:
        """The few-shot and test sets a head study (sparsity, transfer, maps) fits and scores SAVs on."""
        if task in self.problems:
            return
        with self._noting(task, f"the {shots}-shot sets of a head study"):
            for seed in seeds:
                few = session.task(task).few_shot(shots, seed)
                self.need(model, task).add("features", few + session.test(task, few))

    def probes(self, session: Session, model: str, task: str, names: Iterable[str]) -> None:
        """What the head-methods study reads for the probes ``names`` it compares with the head rules: each on its
        baseline's seeds, scored on the rules' test sets (``session.test``: the profile's, not the baseline's, size)."""
        if task in self.problems:
            return
        p = session.profile
        with self._noting(task, f"the {p.shots}-shot sets of the head-methods study's probes"):
            for name in names:
                for seed in p.seeds_for(METHODS[name].baseline):
                    few = session.task(task).few_shot(p.shots, seed)
                    for kind in METHODS[name].reads:
                        self.need(model, task).add(kind, few + session.test(task, few))

    @contextmanager
    def _noting(self, task: str, what: str) -> Iterator[None]:
        """Record a task that cannot be loaded or cannot give a set instead of stopping."""
        try:
            yield
        except (ValueError, LookupError, OSError, RuntimeError) as e:
            self.problems[task] = f"{what}: {type(e).__name__}: {str(e).splitlines()[0]}"

    def check(self) -> None:
        """Raise one ValueError naming every task that cannot give its sets."""
        if self.problems:
            lines = "\n".join(f"  - {task}: {why}" for task, why in self.problems.items())
            raise ValueError(f"{len(self.problems)} tasks cannot give the sets the notebooks need:\n{lines}")


def profile_plan(session: Session) -> Plan:
    """Everything the notebooks of ``session``'s profile read (see the module docstring)."""
    p, plan = session.profile, Plan()
    # 00 quickstart: SAVs on the first model and task, first seed
    if p.models and p.tasks:
        plan.study(session, p.models[0], p.tasks[0], p.shots, p.seeds[:1])
    # 01 main table
    for model, task, methods, seeds in main_plan(p):
        for method in methods:
            plan.method(session, model, task, method, p.shots, seeds)
    # 02 shot scaling
    for model, task, shots, methods in shot_scaling_plan(p):
        for method in methods:
            plan.method(session, model, task, method, shots, p.seeds)
    # 03 head sparsity, 04 cross-task transfer, 05 head maps, 06 head rules (and the probes it compares them with)
    for study in (p.head_sparsity, p.cross_task, p.head_maps, p.head_methods):
        for model in p.models:
            for task in p.study_tasks(study):
                plan.study(session, model, task, p.shots, p.seeds)
    # 06 read-outs: the same sets' features at each of its shot counts (the probes read the same pass's hidden state)
    for model in p.models:
        for task in p.study_tasks(p.readouts) if p.readouts.grid else ():
            for shots in p.readouts.shots or (p.shots,):
                plan.study(session, model, task, shots, p.seeds)
    probes = [m for m in HEAD_METHOD_PROBES if m in head_method_names(p)]
    for model in p.models:
        for task in p.study_tasks(p.head_methods):
            plan.probes(session, model, task, active_methods(p, task, probes))
    return plan


_PLANS: weakref.WeakKeyDictionary[Session, Plan] = weakref.WeakKeyDictionary()


def planned_session(session: Session) -> Session:
    """``session``, its cache misses filled with the plan's batches first (``extract_as_planned``): a notebook's
    in-process extraction then gives the vectors ``make extract`` would have cached."""
    session.fill_miss = functools.partial(extract_as_planned, session)
    return session


def extract_as_planned(session: Session, model: str, task: str, examples: Sequence[Example]) -> int:
    """Fill the cache with the features of ``examples`` (``model`` on ``task``) in the batches ``savs.distributed``
    would run them in: the plan's batches holding any of them, each whole. A notebook whose cache misses then gets
    the vectors ``make extract`` would have cached, to the bit. Examples outside the profile's plan are left to the
    caller's own extraction. Returns how many batches ran."""
    if session not in _PLANS:
        _PLANS[session] = profile_plan(session)
    need = _PLANS[session].needs.get((model, task))
    if need is None or not need.features:
        return 0
    wanted = {e.fingerprint() for e in examples}
    batches = plan_batches(list(need.features.values()), session.profile.batch_size)
    batches = [b for b in batches if any(e.fingerprint() in wanted for e in b)]
    if not batches:
        return 0
    adapter = session.adapter(model)
    return extract_batches(adapter, batches, heads=adapter.head_layers, hidden=-1, cache_dir=session.cache,
                           progress=False)  # fmt: skip
