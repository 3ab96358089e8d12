"""Every path the notebooks read or write, in one place (as showyourwork's ``paths.py``).

Outputs go to ``results/`` (tables: CSV + Markdown) and ``figures/`` (PNG + PDF) at the repository root,
unless ``$SAVS_RESULTS`` / ``$SAVS_FIGURES`` (or a notebook's ``results_dir`` / ``figures_dir`` parameter)
say otherwise, so tests can write to a temporary directory and never touch the committed outputs.

Activations are cached where the library caches them (``savs.cache.default_cache_dir``: ``$SAVS_CACHE``,
else ``~/.cache/savs``), outside the repository: every notebook, ``make reproduce`` and a user's own
``fit_sav(..., cache_dir=...)`` share one store, so an example passes through a model once.
"""

from __future__ import annotations

import os
from pathlib import Path

from savs.cache import default_cache_dir

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
NOTEBOOKS = ROOT / "notebooks"
PROFILES = PACKAGE / "profiles"

# Output names (without suffix), one per table or figure, grouped by the notebook that writes them.
QUICKSTART_HEADS = "quickstart_head_scores"
MAIN_RESULTS = "main_results"  # per-seed rows
MAIN_SUMMARY = "main_results_summary"  # mean +- std over seeds (the Markdown appends the paper's rows)
MAIN_PAPER = "main_results_paper"  # the paper's rows for the methods we run, beside ours where tasks match
INTERLEAVED = "interleaved"  # MHaluBench and NaturalBench: SAVs vs CLIP / SigLIP, the paper's beside ours
SHOT_SCALING = "shot_scaling"
HEAD_SPARSITY = "head_sparsity"
CROSS_TASK = "cross_task"
HEAD_LOCATIONS = "head_locations"  # the selected heads per task, as a table
HEAD_MAPS = "head_maps"
HEAD_PCA = "head_pca"
OWN_TASK = "own_task"  # notebook 07: per-class accuracy on the example image folder (confusion matrix in the .md)
OWN_TASK_HEADS = "own_task_heads"
HEAD_METHODS = "head_methods"  # head scoring / selection / voting rules vs SAVs and the probes
READOUTS = "readouts"  # notebook 06 too: linear read-outs of the selected heads vs their vote and the probes


def results_dir(override: str | Path | None = None) -> Path:
    """Where tables go: ``override``, else ``$SAVS_RESULTS``, else ``<repo>/results``; created if missing."""
    path = Path(override or os.environ.get("SAVS_RESULTS") or ROOT / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(override: str | Path | None = None) -> Path:
    """Where figures go: ``override``, else ``$SAVS_FIGURES``, else ``<repo>/figures``; created if missing."""
    path = Path(override or os.environ.get("SAVS_FIGURES") or ROOT / "figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(override: str | Path | None = None) -> Path:
    """The activation cache shared by all notebooks: ``override``, else the library's default."""
    return Path(override) if override else default_cache_dir()
