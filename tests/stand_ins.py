"""Loading the small benchmark stand-ins (``savs.testing.benchmarks``) that the ``copies`` fixture writes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from savs.data.benchmarks import BENCHMARKS
from savs.data.benchmarks.retrieval import NBR_AUTHORS_TEST
from savs.examples import Example, Task


def load(name: str, copies: Callable[[str], Path], **kwargs) -> Task:
    """Benchmark ``name`` loaded from its stand-in (NaturalBench-Retrieval with the authors' test file beside it)."""
    if name == "naturalbench_retrieval" and kwargs.get("protocol", "authors") == "authors":
        kwargs.setdefault("test_file", copies(name).parent / "authors" / NBR_AUTHORS_TEST)
    if name == "sugarcrepe" and kwargs.get("protocol", "authors") == "authors":
        kwargs.setdefault("pool_pairs", 4)  # of the stand-in's 14 pairs (the real default: 100 of 7,512)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not the authors'")  # the stand-in is not their file
        return BENCHMARKS[name](source=copies(name), **kwargs)


def by_group(items: list[Example]) -> dict:
    """Examples keyed by their group."""
    out: dict = {}
    for e in items:
        out.setdefault(e.meta["group"], []).append(e)
    return out
