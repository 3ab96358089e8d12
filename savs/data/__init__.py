"""Task loaders: the offline suite (runs anywhere) and the paper's benchmarks (from the hub or local copies).

``load_task(name)`` is the one entry point; ``TASKS`` maps every task name to its loader. A local copy of a
benchmark at ``$SAVS_DATA/<name>`` (in the layout its loader's docstring describes) is used instead of the hub.
Your own data: ``from_folder`` (one subfolder per class), ``from_dataset`` (a ``datasets`` table), ``from_table``
(CSV / JSONL of image paths and labels) and ``from_path`` (any of them, from a string), in ``savs.data.custom``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from savs.data.benchmarks import BENCHMARKS, PAPER_BENCHMARKS
from savs.data.custom import from_dataset, from_folder, from_path, from_table
from savs.data.offline import OFFLINE_TASKS
from savs.examples import Task

__all__ = ["TASKS", "from_dataset", "from_folder", "from_path", "from_table", "load_task"]

TASKS: dict[str, Callable[..., Task]] = {**OFFLINE_TASKS, **BENCHMARKS}


def local_source(name: str) -> Path | None:
    """``$SAVS_DATA/<name>`` when ``$SAVS_DATA`` is set and holds a copy of task ``name``."""
    root = os.environ.get("SAVS_DATA")
    path = Path(root) / name if root else None
    return path if path is not None and path.exists() else None


def load_task(name: str, protocol: str | None = None, **kwargs) -> Task:
    """Load task ``name`` (keyword arguments go to its loader); unknown names list the known ones.

    ``protocol`` ("authors" or "savs") picks the prompts of the paper's main-table benchmarks (None: the loader's
    default, the authors'); other tasks have one set of prompts and ignore it. ``source`` defaults to
    ``$SAVS_DATA/<name>`` when that exists.
    """
    try:
        loader = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
    if protocol is not None and name in PAPER_BENCHMARKS:
        kwargs["protocol"] = protocol
    if name in BENCHMARKS and kwargs.get("source") is None and (local := local_source(name)) is not None:
        kwargs["source"] = local
    return loader(**kwargs)
