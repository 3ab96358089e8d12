"""Fail fast before a long run: is every model and data set of a profile reachable from here?

``python -m savs.preflight --profile paper`` (run by ``make reproduce`` before any notebook) asks the
hub for each model's config and each benchmark's repository, and exits with one message naming all
that it could not reach, rather than letting a notebook half-run. The offline suite and local
directories need no hub and are not asked about.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from savs.data.offline import OFFLINE_TASKS
from savs.models.registry import MODELS, resolve

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

    models = [m for m in models if m not in OFFLINE_MODELS and not m.startswith("tiny:") and not Path(m).is_dir()]
    tasks = [t for t in tasks if t not in OFFLINE_TASKS]
    if not models and not tasks:
        return []
    down = hub_error()
    if down:  # no point asking about each one: name them all at once
        return [f"model {m} ({resolve(m)})" for m in models] + [f"task {t}" for t in tasks] + [f"(hub: {down})"]
    missing = []
    for m in models:
        try:
            AutoConfig.from_pretrained(resolve(m))
        except Exception as err:  # noqa: BLE001 - gated, missing, misspelt
            missing.append(f"model {m} ({resolve(m)}): {type(err).__name__}: {str(err).splitlines()[0]}")
    for t in tasks:
        try:
            load_task(t, n_train=1, n_test=1)  # downloads the data set once; the notebooks reuse it
        except Exception as err:  # noqa: BLE001
            missing.append(f"task {t}: {str(err).splitlines()[0]}")
    return missing


def main(argv: list[str] | None = None) -> int:
    from savs.profiles import load_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--model", default=None)
    parser.add_argument("--tasks", default=None)
    args = parser.parse_args(argv)
    profile = load_profile(args.profile, model=args.model or None, tasks=args.tasks or None)
    missing = unreachable(profile.models + profile.ablation_models, profile.tasks)
    if missing:
        print(f"preflight: profile {profile.name!r} cannot run here; not reachable:", file=sys.stderr)
        print("\n".join(f"  - {m}" for m in missing), file=sys.stderr)
        print(
            "Log in to the Hugging Face hub (huggingface-cli login) on a networked machine, or point the "
            f"profile at local copies (model directories; task loaders' source=). Known models: {', '.join(MODELS)}",
            file=sys.stderr,
        )
        return 1
    print(f"preflight: every model and task of profile {profile.name!r} is reachable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
