"""Task loaders: the offline suite (runs anywhere) and the paper's benchmarks (from the hub).

``load_task(name)`` is the one entry point; ``TASKS`` maps every task name to its loader. Your own data:
``from_folder`` (one subfolder per class), ``from_dataset`` (a ``datasets`` table), ``from_table`` (CSV / JSONL of
image paths and labels) and ``from_path`` (any of them, from a string), in ``savs.data.custom``.
"""

from __future__ import annotations

from collections.abc import Callable

from savs.data.benchmarks import BENCHMARKS
from savs.data.custom import from_dataset, from_folder, from_path, from_table
from savs.data.offline import OFFLINE_TASKS
from savs.examples import Task

__all__ = ["TASKS", "from_dataset", "from_folder", "from_path", "from_table", "load_task"]

TASKS: dict[str, Callable[..., Task]] = {**OFFLINE_TASKS, **BENCHMARKS}


def load_task(name: str, **kwargs) -> Task:
    """Load task ``name`` (keyword arguments go to its loader); unknown names list the known ones."""
    try:
        loader = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None
    return loader(**kwargs)
