"""Experiment profiles: which models, tasks, shots, seeds and baselines the notebooks run, read from YAML.

``load_profile("mini", tasks="digits,fashion_mnist", seeds="0,1")`` reads ``savs/profiles/mini.yaml`` (or any
YAML path) and applies a notebook's overrides on top; an override left ``None`` keeps the profile's value.
Overrides arrive from papermill / ``make`` as plain values, so lists may also be comma-separated strings.
A profile may start from another (``extends: paper``): its own keys replace the other's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from savs.paths import PROFILES

DTYPES = ("float32", "bfloat16", "float16")  # what a profile or an override may load models in
BASELINES = ("zero_shot", "icl", "lora", "mtv", "clip", "siglip", "linear_probe", "knn", "blind", "vision_probe")
STUDIES = ("shot_scaling", "head_sparsity", "cross_task", "head_maps", "head_methods", "readouts")  # notebook sweeps


@dataclass(frozen=True)
class Baseline:
    """A comparison method, run on the first ``n_seeds`` seeds and ``n_test`` test examples (None: all), on
    ``tasks`` only when given (None: every task of the profile).

    ``options`` are keyword arguments for the method's function in ``savs.baselines`` (e.g. LoRA's steps).
    """

    n_seeds: int | None = None
    n_test: int | None = None
    tasks: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """One notebook's sweep: its tasks (None: the profile's), its grid, the methods it compares and the shot counts it
    runs at (empty: the profile's ``shots``)."""

    tasks: tuple[str, ...] | None = None
    grid: tuple[int | str, ...] = ()
    methods: tuple[str, ...] = ()
    shots: tuple[int, ...] = ()


@dataclass(frozen=True)
class Profile:
    """Everything the notebooks vary, in one frozen record (printed at the top of every notebook)."""

    name: str
    description: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    shots: int = 20
    n_heads: int | str = 20
    metric: str = "cosine"  # the SAV rule every notebook fits (SAVClassifier's options; defaults: the paper's)
    scoring: str = "in_sample"
    selection: str = "top_k"
    voting: str = "majority"
    readout: str = "vote"  # how the selected heads classify: their vote (the paper's), or "logistic" / "lda" (ours)
    n_train: int | None = None
    n_test: int | None = None
    batch_size: int = 8
    device: str | None = None
    dtype: str | dict[str, str] | None = None  # one dtype, or one per model (the authors ran each in its own)
    protocol: str | None = None  # the paper benchmarks' prompts: "authors" or "savs" (None: the loaders' default)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-task loader keyword arguments
    ablation_models: tuple[str, ...] = ()
    zero_shot_models: tuple[str, ...] = ()  # more LMMs, zero-shot generation only (the paper's other rows)
    ablation_n_seeds: int | None = None
    baselines: dict[str, Baseline] = field(default_factory=dict)
    shot_scaling: Study = Study()
    head_sparsity: Study = Study()
    cross_task: Study = Study()
    head_maps: Study = Study()
    head_methods: Study = Study()
    readouts: Study = Study()  # notebook 06: linear read-outs of the heads vs the vote and the probes (grid: heads)

    def studies(self) -> tuple[Study, ...]:
        """Every notebook's sweep."""
        return tuple(getattr(self, key) for key in STUDIES)

    def study_tasks(self, study: Study) -> tuple[str, ...]:
        """A study's tasks: its own list, else the profile's."""
        return study.tasks if study.tasks is not None else self.tasks

    def dtype_for(self, model: str) -> str | None:
        """The dtype ``model`` loads in (None: the device's default)."""
        return self.dtype.get(model) if isinstance(self.dtype, dict) else self.dtype

    def rule(self) -> dict[str, Any]:
        """The SAV rule as ``SAVClassifier`` keyword arguments (the head count aside)."""
        return {"metric": self.metric, "scoring": self.scoring, "selection": self.selection, "voting": self.voting,
                "readout": self.readout}  # fmt: skip

    def task_kwargs(self, task: str) -> dict[str, Any]:
        """How the profile loads ``task`` (``savs.data.load_task``'s keyword arguments): its prompt protocol, few-shot
        pool and test sizes, the task's own loader options; seed 0 fixes the split."""
        return {"protocol": self.protocol, "n_train": self.n_train, "n_test": self.n_test, "seed": 0,
                **self.task_options.get(task, {})}  # fmt: skip

    def model_kwargs(self, model: str) -> dict[str, Any]:
        """How the profile loads ``model`` (``savs.load_model``'s keyword arguments): device and dtype."""
        return {"device": self.device, "dtype": self.dtype_for(model)}

    def runs(self, baseline: str, task: str) -> bool:
        """Whether ``baseline`` is on in this profile and runs on ``task``."""
        spec = self.baselines.get(baseline)
        return spec is not None and (spec.tasks is None or task in spec.tasks)

    def seeds_for(self, baseline: str) -> tuple[int, ...]:
        """The seeds a baseline runs on (its ``n_seeds`` first ones)."""
        return self.seeds[: self.baselines[baseline].n_seeds]

    def n_test_for(self, baseline: str) -> int | None:
        """The test examples a baseline is scored on: its own cap, never more than the profile's."""
        caps = [n for n in (self.baselines[baseline].n_test, self.n_test) if n is not None]
        return min(caps) if caps else None


def _as_tuple(value: Any, kind: type = str) -> tuple:
    """A YAML list, a single value, or a comma-separated string (from papermill ``-p``) as a tuple."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif not isinstance(value, list | tuple):
        value = [value]
    return tuple(v if kind is str or v == "all" else kind(v) for v in value)


def _study(raw: dict | None) -> Study:
    """A study section of the YAML."""
    raw = dict(raw or {})
    _check_keys(raw, {"tasks", "grid", "methods", "shots"}, "study")
    tasks = _as_tuple(raw["tasks"]) if raw.get("tasks") is not None else None
    shots = _as_tuple(raw.get("shots", []), int)
    if any(s == "all" or s < 1 for s in shots):
        raise ValueError(f"a study's shots must be ints >= 1; got {list(shots)}")
    return Study(tasks, _as_tuple(raw.get("grid", []), int), _as_tuple(raw.get("methods", [])), shots)


def _baselines(raw: dict | None) -> dict[str, Baseline]:
    """The ``baselines`` section: a method listed is on, with its options; a method left out is off."""
    out = {}
    for name, spec in (raw or {}).items():
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
        spec = dict(spec or {})
        tasks = spec.pop("tasks", None)
        out[name] = Baseline(
            spec.pop("n_seeds", None), spec.pop("n_test", None), None if tasks is None else _as_tuple(tasks), spec
        )
    return out


def _check_rule(raw: dict) -> None:
    """The SAV rule's options must be SAVClassifier's (a typo would otherwise fail deep inside a notebook)."""
    from savs.classifier import METRICS, SCORINGS, SELECTIONS, VOTINGS
    from savs.readout import READOUTS

    for key, allowed in (("metric", METRICS), ("scoring", SCORINGS), ("selection", SELECTIONS), ("voting", VOTINGS),
                         ("readout", READOUTS)):  # fmt: skip
        if key in raw and raw[key] not in allowed:
            raise ValueError(f"{key} must be one of {allowed}; got {raw[key]!r}")
    n = raw.get("n_heads", 20)
    if n != "all" and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n_heads must be an int >= 1 or 'all'; got {n!r}")


def _check_keys(raw: dict, allowed: set[str], where: str) -> None:
    """Refuse keys a profile does not know (a typo would otherwise be silently ignored)."""
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown {where} keys {sorted(unknown)}; known: {sorted(allowed)}")


def profile_path(name_or_path: str | Path) -> Path:
    """``savs/profiles/<name>.yaml`` for a bare name, else the given path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = PROFILES / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
        raise ValueError(f"unknown profile {name_or_path!r}; known: {known} (or pass a path to a YAML file)")
    return path


def read_profile(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A profile's YAML mapping, with the profile it ``extends`` underneath (its own keys win)."""
    if path in seen:
        raise ValueError(f"profile {path} extends itself through {' -> '.join(map(str, seen))}")
    raw = yaml.safe_load(path.read_text()) or {}
    base = raw.pop("extends", None)
    if base is None:
        return raw
    return {**read_profile(profile_path(base), (*seen, path)), **raw}


def parse_profile(raw: dict, name: str) -> Profile:
    """A Profile from a YAML mapping (lists become tuples, sections become their records)."""
    raw = dict(raw)
    _check_keys(raw, {f.name for f in fields(Profile)} - {"name"}, "profile")
    if raw.get("protocol") not in (None, "authors", "savs"):
        raise ValueError(f"protocol must be 'authors' or 'savs'; got {raw['protocol']!r}")
    _check_rule(raw)
    for key in ("models", "tasks", "ablation_models", "zero_shot_models"):
        raw[key] = _as_tuple(raw.get(key, []))
    raw["seeds"] = _as_tuple(raw.get("seeds", [0]), int)
    raw["baselines"] = _baselines(raw.get("baselines"))
    for key in STUDIES:
        raw[key] = _study(raw.get(key))
    return Profile(name=name, **raw)


def load_profile(
    name_or_path: str | Path = "mini",
    *,
    model: str | None = None,
    tasks: str | list[str] | None = None,
    shots: int | None = None,
    seeds: int | str | list[int] | None = None,
    n_test: int | None = None,
    baselines: str | list[str] | None = None,
    device: str | None = None,
    dtype: str | None = None,
    n_heads: int | str | None = None,
    metric: str | None = None,
    scoring: str | None = None,
    selection: str | None = None,
    voting: str | None = None,
    readout: str | None = None,
) -> Profile:
    """Read a profile and apply overrides.

    ``model`` replaces the models (comma-separated for several; the ablation models, which belong to the profile's
    model, and the zero-shot-only models are dropped);
    ``tasks`` replaces the tasks of the profile and of every study; ``baselines`` keeps only those named
    ("" or [] switches every baseline off); ``dtype`` ("float32", "bfloat16", "float16") replaces every model's; the
    rest (``shots``, ``n_test``, ``device`` and the SAV rule: ``n_heads``, ``metric``, ``scoring``, ``selection``,
    ``voting``, ``readout``) replace the field of the same name.
    """
    path = profile_path(name_or_path)
    profile = parse_profile(read_profile(path), path.stem)
    changes: dict[str, Any] = {}
    if model is not None:  # one model, or several comma-separated
        changes.update(models=_as_tuple(model), ablation_models=(), zero_shot_models=())
    if tasks is not None:
        changes["tasks"] = _as_tuple(tasks)
        for key in STUDIES:
            changes[key] = replace(getattr(profile, key), tasks=None)
    if seeds is not None:
        changes["seeds"] = _as_tuple(seeds, int)
    if baselines is not None:
        keep = set(_as_tuple(baselines))
        unknown = keep - set(BASELINES)
        if unknown:
            raise ValueError(f"unknown baselines {sorted(unknown)}; known: {', '.join(BASELINES)}")
        missing = keep - set(profile.baselines)
        if missing:
            raise ValueError(
                f"profile {profile.name!r} does not set up baselines {sorted(missing)} (their options, e.g. a model or "
                f"test size): add them to its YAML; it has {', '.join(profile.baselines)}"
            )
        changes["baselines"] = {k: v for k, v in profile.baselines.items() if k in keep}
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}")
        changes["dtype"] = dtype
    for key, value in (("shots", shots), ("n_test", n_test), ("device", device)):
        if value is not None:
            changes[key] = value
    rule = {"n_heads": n_heads, "metric": metric, "scoring": scoring, "selection": selection, "voting": voting,
            "readout": readout}  # fmt: skip
    rule = {k: v for k, v in rule.items() if v is not None}
    if "n_heads" in rule and rule["n_heads"] != "all":
        rule["n_heads"] = int(rule["n_heads"])  # from the command line: "10"
    _check_rule(rule)
    return replace(profile, **changes, **rule)
