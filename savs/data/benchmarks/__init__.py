"""The paper's main-table benchmarks (Mitra et al., ICCV 2025), from the Hugging Face Hub or a local copy.

Every loader is ``load_x(split=..., n_train=None, n_test=None, seed=0, source=None) -> Task``:

- ``split`` is the evaluated split. The few-shot pool is the benchmark's train split when it has one (a
  classification set's ``pool_min_per_class`` tops up its short classes with images moved out of the test set);
  otherwise a disjoint part of the evaluated split's groups: a seeded quarter (``POOL_FRACTION``) by default,
  and under the authors' protocol what they used (SugarCrepe: a small seeded number of pairs;
  NaturalBench-Retrieval: the groups their fixed test file does not list). No test example is ever in the pool
  and a group (an image's claims or questions, a NaturalBench quadruple, a SugarCrepe pair, an MME pair) never
  straddles the two, except where the authors drew the few-shot set from the evaluated split itself (BLINK:
  ``Task.pool_is_test``, each seed's few-shot set then left out of its test set).
- ``n_train`` / ``n_test`` keep that many groups (one image for classification and VQA, one group for the
  grouped benchmarks) from a seeded order that takes the classes in turn where the label is a column; None
  keeps all. Only the kept rows' images are decoded.
- ``source=None`` loads from the hub (``datasets.load_dataset`` or, for benchmarks shipped as JSON + images, a
  snapshot of the repo's files); ``source=<path>`` loads a local copy with the same columns (a
  ``save_to_disk`` DatasetDict, a directory ``datasets.load_dataset`` reads, or the JSON layout). A hub
  failure (offline, gated) raises ``BenchmarkUnavailableError`` naming the dataset id and what to do; nothing
  is half-loaded.

Grouped benchmarks return a ``GroupedTask`` (extra metrics per unit of examples, from
``Example.meta["group"]`` and friends), VQAv2 / OK-VQA a ``VQATask`` (VQA accuracy) and VizWiz a
``VizWizTask``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from savs.data.benchmarks._common import POOL_FRACTION, PROTOCOLS, BenchmarkUnavailableError, GroupedTask
from savs.data.benchmarks.classification import CLASSIFICATION_LOADERS, MAX_OPTIONS
from savs.data.benchmarks.open_vqa import VQATask, load_okvqa, load_vqav2, normalize_answer, vqa_accuracy
from savs.data.benchmarks.retrieval import load_naturalbench_retrieval, load_sugarcrepe
from savs.data.benchmarks.safety import load_mhalubench, load_vlguard
from savs.data.benchmarks.vqa import (
    BLINK_SUBTASKS,
    VizWizTask,
    blink_name,
    load_blink,
    load_mme,
    load_naturalbench,
    load_vizwiz,
)
from savs.examples import Task

# The paper's main-table benchmarks: each takes ``protocol`` ("authors", the default, or "savs").
PAPER_BENCHMARKS: dict[str, Callable[..., Task]] = {
    "mhalubench": load_mhalubench,
    "vlguard": load_vlguard,
    **{blink_name(s): partial(load_blink, s) for s in BLINK_SUBTASKS},
    "vizwiz": load_vizwiz,
    "naturalbench": load_naturalbench,
    "naturalbench_retrieval": load_naturalbench_retrieval,
    "sugarcrepe": load_sugarcrepe,
    **CLASSIFICATION_LOADERS,
}
BENCHMARKS: dict[str, Callable[..., Task]] = {
    **PAPER_BENCHMARKS,
    "mme": load_mme,
    "vqav2": load_vqav2,
    "okvqa": load_okvqa,
}

__all__ = [
    "BENCHMARKS",
    "BLINK_SUBTASKS",
    "MAX_OPTIONS",
    "PAPER_BENCHMARKS",
    "POOL_FRACTION",
    "PROTOCOLS",
    "BenchmarkUnavailableError",
    "GroupedTask",
    "VQATask",
    "VizWizTask",
    "normalize_answer",
    "vqa_accuracy",
]
