"""Experiment profiles: which models, tasks, shots, seeds and baselines the notebooks run, read from YAML.

``load_profile("mini", tasks="digits,fashion_mnist", seeds="0,1")`` reads ``savs/profiles/mini.yaml`` (or any
YAML path) and applies a notebook's overrides on top; an override left ``None`` keeps the profile's value.
Overrides arrive from papermill / ``make`` as plain values, so lists may also be comma-separated strings.
A profile may start from another (``extends: paper``, or a YAML path relative to the profile's folder): its own keys
replace the other's. Every value is checked here (``check_profile``), with the overrides applied, before any model
or data set loads: preflight, the extraction step and the notebooks all read profiles through ``load_profile``, so
a bad value is a ``ProfileError`` naming it, and the allowed values, at once.
"""

from __future__ import annotations

import inspect
import re
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
        changes["seeds"] = _as_tuple(seeds, int, "seeds")
    if baselines is not None:
        keep = set(_as_tuple(baselines))
        unknown = keep - set(BASELINES)
        if unknown:
            raise ProfileError(f"unknown baselines {sorted(unknown)}; known: {', '.join(BASELINES)}")
        missing = keep - set(profile.baselines)
        if missing:
            raise ProfileError(
                f"profile {profile.name!r} does not set up baselines {sorted(missing)} (their options, e.g. a model or "
                f"test size): add them to its YAML; it has {', '.join(profile.baselines)}"
            )
        changes["baselines"] = {k: v for k, v in profile.baselines.items() if k in keep}
    if dtype is not None:
        changes["dtype"] = dtype
    for key, value in (("shots", shots), ("n_test", n_test)):
        if value is not None:
            changes[key] = _as_tuple(value, int, key)[0] if isinstance(value, str) and value.strip() else value
    if device is not None:
        changes["device"] = device
    rule = {"n_heads": n_heads, "metric": metric, "scoring": scoring, "selection": selection, "voting": voting,
            "readout": readout}  # fmt: skip
    rule = {k: v for k, v in rule.items() if v is not None}
    if isinstance(rule.get("n_heads"), str) and rule["n_heads"] != "all":  # from the command line: "10"
        try:
            rule["n_heads"] = _int(rule["n_heads"], "n_heads")
        except ProfileError:
            raise ProfileError(f"n_heads must be an int >= 1 or 'all'; got {rule['n_heads']!r}") from None
    _check_rule(rule)
    profile = replace(profile, **changes, **rule)
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
