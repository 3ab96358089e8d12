"""Experiment profiles: which models, tasks, shots, seeds and baselines the notebooks run, read from YAML.

``load_profile("mini", tasks="digits,fashion_mnist", seeds="0,1")`` reads ``savs/profiles/mini.yaml`` (or any
YAML path) and applies overrides on top: the run parameters, each declared once in ``PARAMETERS`` (make's variables,
a notebook's ``overrides``, the command-line steps' ``NAME=VALUE`` words and ``savs fit``'s rule options all derive
from it); an override left ``None`` keeps the profile's value. Overrides arrive from make as strings, so lists may
also be comma-separated.
A profile may start from another (``extends: paper``, or a YAML path relative to the profile's folder): its own keys
replace the other's. Every value is checked here (``check_profile``), with the overrides applied, before any model
or data set loads: preflight, the extraction step and the notebooks all read profiles through ``load_profile``, so
a bad value is a ``ProfileError`` naming it, and the allowed values, at once.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from savs.paths import PROFILES

DTYPES = ("float32", "bfloat16", "float16")  # what a profile or an override may load models in
BASELINES = ("zero_shot", "icl", "lora", "mtv", "clip", "siglip", "linear_probe", "knn", "blind", "vision_probe")
MODEL_OPTIONS = ("anyres_every_image",)  # what a profile's model_options may set (savs.load_model's options)
STUDIES = ("shot_scaling", "head_sparsity", "cross_task", "head_maps", "head_methods", "readouts")  # notebook sweeps
DEVICE = re.compile(r"(cpu|cuda|mps|xpu|npu|hpu|meta)(:\d+)?")  # what torch.device takes (a GPU is "cuda")


class ProfileError(ValueError):
    """A profile or override that cannot run: an unknown key, task or baseline, a value of the wrong kind, a
    repeated seed; the message names the field, the value and what is allowed."""


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
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-model load options (MODEL_OPTIONS)
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
        """How the profile loads ``model`` (``savs.load_model``'s keyword arguments): device, dtype, its options."""
        options = self.model_options.get(model)
        return {"device": self.device, "dtype": self.dtype_for(model), **({"options": options} if options else {})}

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


def _as_tuple(value: Any, kind: type = str, name: str = "value") -> tuple:
    """A YAML list, a single value, or a comma-separated string (from papermill ``-p``) as a tuple; ints stay ints
    ("3" from the command line becomes 3), anything else given for one is a ProfileError naming ``name``."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    elif not isinstance(value, list | tuple):
        value = [value]
    return tuple(v if kind is str or v == "all" else _int(v, name) for v in value)


def _int(value: Any, name: str) -> int:
    """``value`` as an int (a string of digits from the command line included); a ProfileError naming ``name``."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{name} must be whole numbers; got {value!r}")
    return value


def _study(raw: dict | None) -> Study:
    """A study section of the YAML."""
    raw = dict(raw or {})
    _check_keys(raw, {"tasks", "grid", "methods", "shots"}, "study")
    tasks = _as_tuple(raw["tasks"]) if raw.get("tasks") is not None else None
    shots = _as_tuple(raw.get("shots", []), int, "a study's shots")
    if any(s == "all" or s < 1 for s in shots):
        raise ProfileError(f"a study's shots must be ints >= 1; got {list(shots)}")
    return Study(tasks, _as_tuple(raw.get("grid", []), int, "a study's grid"), _as_tuple(raw.get("methods", [])), shots)


def _baselines(raw: dict | None) -> dict[str, Baseline]:
    """The ``baselines`` section: a method listed is on, with its options; a method left out is off."""
    out = {}
    for name, spec in (raw or {}).items():
        if name not in BASELINES:
            raise ProfileError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
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
            raise ProfileError(f"{key} must be one of {allowed}; got {raw[key]!r}")
    n = raw.get("n_heads", 20)
    if n != "all" and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ProfileError(f"n_heads must be an int >= 1 or 'all'; got {n!r}")


def _check_keys(raw: dict, allowed: set[str], where: str) -> None:
    """Refuse keys a profile does not know (a typo would otherwise be silently ignored)."""
    unknown = set(raw) - allowed
    if unknown:
        raise ProfileError(f"unknown {where} keys {sorted(unknown)}; known: {sorted(allowed)}")


def profile_path(name_or_path: str | Path, folder: Path | None = None) -> Path:
    """``savs/profiles/<name>.yaml`` for a bare name, else the given YAML path (relative to ``folder`` where given:
    the folder of the profile that ``extends`` it)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        path = folder / path if folder is not None and not path.is_absolute() else path
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    path = PROFILES / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
        raise ProfileError(f"unknown profile {name_or_path!r}; known: {known} (or pass a path to a YAML file)")
    return path


def read_profile(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A profile's YAML mapping, with the profile it ``extends`` underneath (its own keys win); a relative YAML path
    in ``extends`` is read from this profile's folder."""
    if path.resolve() in seen:
        raise ProfileError(f"profile {path} extends itself through {' -> '.join(map(str, seen))}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ProfileError(f"{path} must hold a mapping of profile keys; got a {type(raw).__name__}")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    try:
        base_path = profile_path(base, path.parent)
    except ProfileError as err:
        raise ProfileError(f"{path}: extends: {err}") from err
    return {**read_profile(base_path, (*seen, path.resolve())), **raw}


def parse_profile(raw: dict, name: str) -> Profile:
    """A Profile from a YAML mapping (lists become tuples, sections become their records)."""
    raw = dict(raw)
    _check_keys(raw, {f.name for f in fields(Profile)} - {"name"}, "profile")
    if raw.get("protocol") not in (None, "authors", "savs"):
        raise ProfileError(f"protocol must be 'authors' or 'savs'; got {raw['protocol']!r}")
    _check_rule(raw)
    for model, options in (raw.get("model_options") or {}).items():
        _check_keys(dict(options or {}), set(MODEL_OPTIONS), f"model_options[{model!r}]")
    for key in ("models", "tasks", "ablation_models", "zero_shot_models"):
        raw[key] = _as_tuple(raw.get(key, []))
    raw["seeds"] = _as_tuple(raw.get("seeds", [0]), int, "seeds")
    raw["baselines"] = _baselines(raw.get("baselines"))
    for key in STUDIES:
        raw[key] = _study(raw.get(key))
    raw["task_options"] = raw.get("task_options") or {}
    if not isinstance(raw["task_options"], dict):
        raise ProfileError(f"task_options must map tasks to their loader options; got {raw['task_options']!r}")
    return Profile(name=name, **raw)


def load_profile(name_or_path: str | Path = "mini", *, device: str | None = None, **overrides: Any) -> Profile:
    """Read a profile and apply ``overrides``: any of ``PARAMETERS`` by name (``n_heads=10``, ``seeds="0,1"``; None
    keeps the profile's value); ``device`` is where the models run (set per process by the extraction step).

    ``model`` replaces the models (the ablation models, which belong to the profile's model, and the zero-shot-only
    models are dropped); ``tasks`` replaces the tasks of the profile and of every study; ``baselines`` keeps only
    those named; ``dtype`` replaces every model's; the rest replace the field of the same name.
    """
    path = profile_path(name_or_path)
    profile = parse_profile(read_profile(path), path.stem)
    changes: dict[str, Any] = {}
    for name, value in overrides_from(overrides).items():
        changes.update(BY_NAME[name].apply(profile, value))
    if device is not None:
        changes["device"] = device
    profile = replace(profile, **changes)
    check_profile(profile)
    return profile


def _count(value: Any, name: str, minimum: int = 1, optional: bool = False) -> None:
    """An int (not a bool) of at least ``minimum`` (None too, where ``optional``), or a ProfileError naming it."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or null" if optional else ""
        raise ProfileError(f"{name} must be an int >= {minimum}{none}; got {value!r}")


def _distinct(values: tuple, name: str) -> None:
    """No value twice: two copies of one seed (or task, or model) would be averaged as if independent."""
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise ProfileError(f"{name} lists {', '.join(twice)} more than once: {list(values)}")


def _known_tasks(tasks: tuple[str, ...], where: str, known: dict) -> None:
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ProfileError(f"{where}: unknown tasks {unknown}; known tasks: {', '.join(sorted(known))}")


def check_profile(p: Profile) -> None:
    """Every value of ``p`` that a run would otherwise reject late (in extraction, a notebook's table, a loader) or
    use wrongly (a repeated seed), checked now: counts and sizes, dtype and device, task names and their loader
    options, baselines' sizes, study grids and methods. A ProfileError names the field."""
    from savs.data import TASKS
    from savs.methods import HEAD_METHODS, METHODS

    where = f"profile {p.name!r}"
    for key in ("models", "tasks"):
        if not getattr(p, key):
            raise ProfileError(f"{where}: {key} is empty; name at least one")
    for key in ("models", "tasks", "seeds", "ablation_models", "zero_shot_models"):
        _distinct(getattr(p, key), key)
    _known_tasks(p.tasks, "tasks", TASKS)
    for seed in p.seeds:
        _count(seed, "seeds", minimum=0)
    _count(p.shots, "shots")
    _count(p.batch_size, "batch_size")
    for key in ("n_train", "n_test", "ablation_n_seeds"):
        _count(getattr(p, key), key, optional=True)
    dtypes = p.dtype.values() if isinstance(p.dtype, dict) else [p.dtype]
    if any(d is not None and d not in DTYPES for d in dtypes):
        raise ProfileError(f"dtype must be one of {DTYPES} (or one per model); got {p.dtype!r}")
    if p.device is not None and not (isinstance(p.device, str) and DEVICE.fullmatch(p.device)):
        raise ProfileError(f"device must be cpu, cuda, cuda:<index>, mps or null (the GPU if any); got {p.device!r}")
    for name, spec in p.baselines.items():
        _check_baseline_options(name, spec.options)
        _count(spec.n_seeds, f"baselines.{name}.n_seeds", optional=True)
        _count(spec.n_test, f"baselines.{name}.n_test", optional=True)
        _known_tasks(spec.tasks or (), f"baselines.{name}.tasks", TASKS)
    for key in STUDIES:
        study = getattr(p, key)
        _known_tasks(study.tasks or (), f"{key}.tasks", TASKS)
        _distinct(study.grid, f"{key}.grid")
        _distinct(study.shots, f"{key}.shots")
        for value in study.grid:
            if not (value == "all" and key != "shot_scaling"):
                _count(value, f"{key}.grid ({'shots' if key == 'shot_scaling' else 'heads'})")
        allowed = tuple(HEAD_METHODS if key == "head_methods" else METHODS)
        if unknown := [m for m in study.methods if m not in allowed]:
            raise ProfileError(f"{key}.methods: unknown {unknown}; known: {', '.join(allowed)}")
    for task, options in p.task_options.items():
        _known_tasks((task,), "task_options", TASKS)
        _check_loader_options(task, options, TASKS[task])


ANY: Any = None  # _keywords' answer for a function whose keyword arguments cannot be listed


def _keywords(function: Any, seen: frozenset = frozenset()) -> set[str] | Any:
    """The keyword arguments ``function`` (or class) takes; where it takes ``**kwargs``, also those of the savs
    functions and classes its body calls (a benchmark loader passes them on to its family's builder). ``ANY`` when
    that cannot be known."""
    params = inspect.signature(function).parameters
    names = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return names
    code = getattr(function, "__code__", None)
    called = [function.__globals__.get(n) for n in code.co_names] if code is not None else []
    called = [f for f in called if (inspect.isfunction(f) or inspect.isclass(f)) and f not in seen | {function}
              and getattr(f, "__module__", "").startswith("savs.")]  # fmt: skip
    if not called:
        return ANY
    for callee in called:
        more = _keywords(callee, seen | {function})
        if more is ANY:
            return ANY
        names |= more
    return names


# What a baseline's options go to in savs.baselines (its function, and those that function passes them on to);
# empty: it takes none, the experiments set everything
BASELINE_FUNCTIONS = {"zero_shot": ("zero_shot",), "icl": ("in_context",),
                      "lora": ("lora_predict", "lora_finetune", "lora.LoraRecipe"), "mtv": ("mtv_predict", "mtv_fit"),
                      "clip": ("contrastive_predict",), "siglip": ("contrastive_predict",), "linear_probe": (),
                      "knn": (), "blind": (), "vision_probe": ()}  # fmt: skip


def _check_baseline_options(name: str, options: dict[str, Any]) -> None:
    """A baseline's options must be keyword arguments its function takes (a typo was silently ignored or failed
    as a TypeError hours in); CLIP / SigLIP also take ``model``, the checkpoint."""
    if not options:
        return
    targets = BASELINE_FUNCTIONS[name]
    if not targets:
        raise ProfileError(f"baselines.{name} takes no options (only n_seeds, n_test, tasks); got {sorted(options)}")
    import savs.baselines

    taken = {"model"} if name in ("clip", "siglip") else set()
    for target in targets:
        module, _, attr = target.rpartition(".")
        function = getattr(getattr(savs.baselines, module) if module else savs.baselines, attr)
        params = inspect.signature(function).parameters
        taken |= {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    taken -= {"adapter", "examples", "labels", "train", "demos", "task", "cache_dir", "cache_only", "progress", "seed",
              "calibration", "model" if name not in ("clip", "siglip") else ""}  # fmt: skip
    if unknown := sorted(set(options) - taken):
        raise ProfileError(f"baselines.{name}: unknown options {unknown}; it takes {sorted(taken)}")


def _check_loader_options(task: str, options: Any, loader: Any) -> None:
    """``task_options[task]`` must be keyword arguments its loader takes (a typo would be a TypeError much later)."""
    if not isinstance(options, dict):
        raise ProfileError(f"task_options.{task} must map option names to values; got {options!r}")
    taken = _keywords(loader)
    if taken is ANY:
        return
    taken -= {"protocol", "n_train", "n_test", "seed"}  # the profile sets these itself
    if unknown := sorted(set(options) - taken):
        raise ProfileError(f"task_options.{task}: unknown options {unknown}; {task}'s loader takes {sorted(taken)}")


# --- the run parameters: each declared once ---------------------------------------------------------------------------
# make (`make main-results N_HEADS=10`), a notebook's `overrides`, the command-line steps (`python -m savs.preflight
# --profile mini N_HEADS=10`), `savs fit` (the rule's, as `--n-heads`) and `load_profile(..., n_heads=10)` all read
# this table: adding a parameter is one line here plus the code that uses it.


@dataclass(frozen=True)
class Parameter:
    """One run parameter: ``name`` is ``load_profile``'s keyword and a notebook's ``overrides`` key, ``NAME`` make's
    variable; ``apply`` turns a value (typed, or a string from the command line) into the profile fields it replaces;
    ``rule`` marks an option of the SAV rule (``SAVClassifier``'s), which ``savs fit`` takes too."""

    name: str
    help: str
    apply: Callable[[Profile, Any], dict[str, Any]]
    rule: bool = False

    @property
    def option(self) -> str:
        """The command-line option ``savs fit`` spells it as (``--n-heads``)."""
        return "--" + self.name.replace("_", "-")


def _keep_baselines(p: Profile, value: Any) -> dict[str, Any]:
    """Keep only the named baselines ("" or [] switches every one off); each must be set up by the profile."""
    keep = set(_as_tuple(value))
    if unknown := keep - set(BASELINES):
        raise ProfileError(f"unknown baselines {sorted(unknown)}; known: {', '.join(BASELINES)}")
    if missing := keep - set(p.baselines):
        raise ProfileError(
            f"profile {p.name!r} does not set up baselines {sorted(missing)} (their options, e.g. a model or test "
            f"size): add them to its YAML; it has {', '.join(p.baselines)}"
        )
    return {"baselines": {k: v for k, v in p.baselines.items() if k in keep}}


def _one_int(value: Any, name: str) -> int:
    """A count from the command line ("5") or Python (5)."""
    values = _as_tuple(value, int, name) if isinstance(value, str) else (value,)
    if len(values) != 1:
        raise ProfileError(f"{name} must be one whole number; got {value!r}")
    return values[0]


def _n_heads(value: Any) -> int | str:
    """``n_heads``: an int >= 1 or "all" ("10" from the command line is 10)."""
    if isinstance(value, str) and value != "all":
        try:
            value = _int(value, "n_heads")
        except ProfileError:
            raise ProfileError(f"n_heads must be an int >= 1 or 'all'; got {value!r}") from None
    _check_rule({"n_heads": value})
    return value


def _rule(key: str) -> Callable[[Profile, Any], dict[str, Any]]:
    """A SAV-rule option replacing the field of its name, checked against SAVClassifier's choices."""

    def apply(p: Profile, value: Any) -> dict[str, Any]:
        _check_rule({key: value})
        return {key: value}

    return apply


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("model", "models to run, comma-separated (registry name, hub id, local dir, random:<family>); drops the "
              "profile's ablation and zero-shot-only models",
              lambda p, v: {"models": _as_tuple(v), "ablation_models": (), "zero_shot_models": ()}),
    Parameter("tasks", "tasks, comma-separated, for the profile and every study (savs.data.TASKS)",
              lambda p, v: {"tasks": _as_tuple(v), **{k: replace(getattr(p, k), tasks=None) for k in STUDIES}}),
    Parameter("shots", "examples per class in the few-shot set", lambda p, v: {"shots": _one_int(v, "shots")}),
    Parameter("seeds", "few-shot seeds, comma-separated (0,1,2)", lambda p, v: {"seeds": _as_tuple(v, int, "seeds")}),
    Parameter("n_test", "test examples per task", lambda p, v: {"n_test": _one_int(v, "n_test")}),
    Parameter("baselines", "keep only these baselines, comma-separated", _keep_baselines),
    Parameter("dtype", "float32, bfloat16 or float16 for every model", lambda p, v: {"dtype": v}),
    Parameter("n_heads", "heads that vote (an int, or all)", lambda p, v: {"n_heads": _n_heads(v)}, rule=True),
    Parameter("metric", "cosine (the paper's) or euclidean", _rule("metric"), rule=True),
    Parameter("scoring", "how heads are scored: in_sample (the paper's), leave_one_out, cv or fisher",
              _rule("scoring"), rule=True),
    Parameter("selection", "top_k (the paper's) or pursuit", _rule("selection"), rule=True),
    Parameter("voting", "majority (the paper's) or reliability (CALM's weighted soft vote)", _rule("voting"),
              rule=True),
    Parameter("readout", "vote (the paper's), or logistic or lda: a linear model on the selected heads' vectors (ours; "
              "regularised by cross-validation on the shots; needs 2 per class)",
              _rule("readout"), rule=True),
)  # fmt: skip
BY_NAME = {p.name: p for p in PARAMETERS}


def overrides_from(values: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """Overrides by declared name from a mapping (a notebook's ``overrides``; keys in any case) or ``NAME=VALUE``
    words (make's and the command line's); a value of None or "" keeps the profile's. An unknown name is refused:
    a misspelt parameter would otherwise be ignored."""
    if not isinstance(values, Mapping):
        pairs = [word.partition("=") for word in values]
        if bad := [word for word, (_, eq, _) in zip(values, pairs, strict=True) if not eq]:
            raise ProfileError(f"overrides are NAME=VALUE (e.g. N_HEADS=10); got {bad}")
        values = {name: value for name, _, value in pairs}
    out = {}
    for name, value in values.items():
        key = str(name).strip().lower()
        if key not in BY_NAME:
            raise ProfileError(f"unknown parameter {name!r}; known: {', '.join(p.name.upper() for p in PARAMETERS)}")
        if value is not None and value != "":
            out[key] = value
    return out


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """``--profile`` and the overrides as ``NAME=VALUE`` words, for the command-line steps make runs (preflight, the
    extraction), so that they read the profile as the notebooks will."""
    parser.add_argument("--profile", default="mini", help="profile name or YAML path (as `make reproduce PROFILE=`)")
    parser.add_argument("overrides", nargs="*", metavar="NAME=VALUE", help="run parameters over the profile's: "
                        + "; ".join(f"{p.name.upper()}: {p.help}" for p in PARAMETERS))  # fmt: skip


def add_rule_options(parser: argparse.ArgumentParser, defaults: Mapping[str, Any]) -> None:
    """The SAV rule's parameters as options (``--n-heads 10 --scoring cv``) with ``defaults``, for ``savs fit``."""
    for p in PARAMETERS:
        if p.rule:
            parser.add_argument(p.option, dest=p.name, type=lambda v, p=p: _as_option(p, v), default=defaults[p.name],
                                help=f"{p.help} (default {defaults[p.name]})")  # fmt: skip


def _as_option(parameter: Parameter, value: str) -> Any:
    """A rule option's value, checked as the profile would check it (argparse shows the error)."""
    try:
        return parameter.apply(None, value)[parameter.name]  # type: ignore[arg-type]  # rule ones never read p
    except ProfileError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def make_help() -> str:
    """``make help``'s lines for the parameters."""
    return "\n".join(f"  {p.name.upper():<10} {p.help}" for p in PARAMETERS)



def misspelt(names: Sequence[str]) -> list[str]:
    """Each of ``names`` (the variables a make run was given) that is no run parameter but nearly one (``N_HEAD``,
    ``SEED``, ``n_heads``), with the one it resembles: make would run the profile's value without a word."""
    known = [p.name.upper() for p in PARAMETERS]
    near = {n: n.upper() if n.upper() in known else next(iter(difflib.get_close_matches(n, known, 1, 0.8)), None)
            for n in names if n not in known}  # fmt: skip
    return [f"{name} (did you mean {match}?)" for name, match in near.items() if match]


def main(argv: Sequence[str] | None = None) -> int:
    """make's view of the table: ``--names`` (its variables), ``--make-help`` (its lines), ``--misspelt NAME...``."""
    args = argparse.ArgumentParser(prog="python -m savs.profiles")
    args.add_argument("--names", action="store_true", help="the parameters' make variables")
    args.add_argument("--make-help", action="store_true", help="make help's lines for them")
    args.add_argument("--misspelt", nargs="*", metavar="NAME", help="exit 2 naming any near-miss of a parameter")
    parsed = args.parse_args(argv)
    if parsed.misspelt is not None:
        if wrong := misspelt(parsed.misspelt):
            print(f"make: not a run parameter: {', '.join(wrong)}; make help lists them", file=sys.stderr)
            return 2
        return 0
    if parsed.names or parsed.make_help:
        print(" ".join(p.name.upper() for p in PARAMETERS) if parsed.names else make_help())
        return 0
    args.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
