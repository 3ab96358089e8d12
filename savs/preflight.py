"""Fail fast before a long run: can every model and task of a profile be had here, and can every task give the
few-shot and test sets the notebooks will draw?

``python -m savs.preflight --profile paper`` (run by ``make reproduce`` before any notebook) first asks the hub for
the config of each model the run loads (its LMMs, the zero-shot-only ones, CLIP / SigLIP) and each benchmark's data
(the offline suite, ``random:`` models, local directories and copies under ``$SAVS_DATA`` need no hub). Then, with no
model loaded, it draws every set of the profile's plan (``savs.plan``: each seed's few-shot sets at every shot count,
each test set) and names every task that cannot give one, e.g. a class with fewer pool examples than shots, together,
in one message, instead of letting a notebook stop hours in.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from savs.data import local_source
from savs.data.offline import OFFLINE_TASKS
from savs.models.registry import refusal, registry, resolve

if TYPE_CHECKING:
    from savs.profiles import Profile

OFFLINE_MODELS = ("savs-mini", "savs-mini-untrained")


def hub_error(model_id: str = "Qwen/Qwen2-VL-7B-Instruct") -> str | None:
    """Why the hub cannot be reached from here (one quick request), or None when it can."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    try:
        HfApi().model_info(model_id, timeout=10)
    except HfHubHTTPError:
        return None  # the hub answered (maybe "not found" or "gated"): it is reachable
    except Exception as err:  # noqa: BLE001 - offline mode, DNS, refused, timed out: all mean unreachable
        return f"{type(err).__name__}: {err}"
    return None


def unreachable(models: Iterable[str], tasks: Iterable[str]) -> list[str]:
    """What a profile needs from the hub but cannot get: each model and task, with why."""
    from transformers import AutoConfig

    from savs.data import load_task

    models = [m for m in models if m not in OFFLINE_MODELS and not m.startswith("random:") and not Path(m).is_dir()]
    tasks = [t for t in tasks if t not in OFFLINE_TASKS and local_source(t) is None]
    if not models and not tasks:
        return []
    down = hub_error()
    if down:  # no point asking about each one: name them all at once
        return [f"model {m} ({resolve(m)})" for m in models] + [f"task {t}" for t in tasks] + [f"(hub: {down})"]
    missing = []
    for m in models:
        try:
            reason = refusal(AutoConfig.from_pretrained(resolve(m)))
        except Exception as err:  # noqa: BLE001 - gated, missing, misspelt
            missing.append(f"model {m} ({resolve(m)}): {type(err).__name__}: {str(err).splitlines()[0]}")
            continue
        if reason is not None:  # reachable, but of a type load_model refuses: better said now than after an hour
            missing.append(f"model {m} ({resolve(m)}): not supported: {reason}")
    for t in tasks:
        try:
            load_task(t, n_train=1, n_test=1)  # downloads the data set once; the notebooks reuse it
        except Exception as err:  # noqa: BLE001
            missing.append(f"task {t}: {str(err).splitlines()[0]}")
    return missing


def checkpoints(profile: Profile) -> list[str]:
    """Every model a run of ``profile`` loads: its LMMs (the ablation ones, and the zero-shot ones where zero-shot
    runs) and the CLIP / SigLIP checkpoints of its contrastive baselines, as registry names, hub ids or directories."""
    from savs.baselines.contrastive import CONTRASTIVE_MODELS
    from savs.experiments import CONTRASTIVE

    p = profile
    zero_shot = p.zero_shot_models if any(p.runs("zero_shot", t) for t in p.tasks) else ()
    contrastive = [
        CONTRASTIVE_MODELS.get(name, name)
        for name in (p.baselines[b].options.get("model", b) for b in CONTRASTIVE if any(p.runs(b, t) for t in p.tasks))
    ]
    return list(dict.fromkeys([*p.models, *p.ablation_models, *zero_shot, *contrastive]))


def infeasible(profile: Profile, cache_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Every task of ``profile`` that cannot give a set its notebooks draw (task -> why), and the warnings drawing
    them raised (e.g. a BLINK letter with too few items for 20 shots). Loads tasks, never a model."""
    from savs.experiments import Session
    from savs.plan import profile_plan

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = profile_plan(Session(profile, cache_dir))
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    return plan.problems, notes


def main(argv: list[str] | None = None) -> int:
    from savs.cache import default_cache_dir
    from savs.profiles import ProfileError, add_profile_arguments, load_profile, overrides_from

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_profile_arguments(parser)
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile, **overrides_from(args.overrides))
    except ProfileError as err:  # a bad override or profile: say so before anything is loaded
        print(f"preflight: {err}", file=sys.stderr)
        return 2
    tasks = list(dict.fromkeys([*profile.tasks, *(t for st in profile.studies() for t in profile.study_tasks(st))]))
    missing = unreachable(checkpoints(profile), tasks)
    if missing:
        print(f"preflight: profile {profile.name!r} cannot run here; not reachable:", file=sys.stderr)
        print("\n".join(f"  - {m}" for m in missing), file=sys.stderr)
        print(
            "Log in to the Hugging Face hub (huggingface-cli login) on a networked machine, or point the profile at "
            f"local copies (model directories; $SAVS_DATA/<task>). Known models: {', '.join(registry())}",
            file=sys.stderr,
        )
        return 1
    problems, notes = infeasible(profile, default_cache_dir())
    for note in notes:
        print(f"preflight: note: {note}")
    if problems:
        print(f"preflight: profile {profile.name!r} cannot draw every set its notebooks need:", file=sys.stderr)
        print("\n".join(f"  - {task}: {why}" for task, why in problems.items()), file=sys.stderr)
        return 1
    print(f"preflight: every model and task of profile {profile.name!r} is reachable and gives its sets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
