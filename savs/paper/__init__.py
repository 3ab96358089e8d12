"""The paper's own numbers (Mitra et al., arXiv 2412.00142 v3 / ICCV 2025), shipped so a clone shows them beside ours.

``main_table_v3.csv`` is the authors' main results table, transcribed; the ``*_v3.csv`` figure tables are read off
the authors' plots (approximate), from ``figures_v3.md``. Every loader returns a DataFrame whose rows say which
model produced them, so nothing here can pass for our own numbers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SOURCE = "Mitra et al., arXiv 2412.00142 v3 (ICCV 2025)"
PAPER_MODELS = ("LLaVA-OV-7B", "Qwen2-VL-7B")

# (our task name, metric of Task.evaluate) -> column of the paper's main table; BLINK subtasks are averaged.
PAPER_COLUMNS: dict[tuple[str, str], str] = {
    ("mhalubench", "accuracy"): "MHalu",
    ("vlguard", "accuracy"): "VLGuard",
    ("blink", "accuracy"): "BLINK",
    ("vizwiz", "accuracy"): "VizWiz",
    ("naturalbench", "q_acc"): "NB_T",
    ("naturalbench", "i_acc"): "NB_I",
    ("naturalbench", "g_acc"): "NB_G",
    ("naturalbench_retrieval", "text_acc"): "NBr_T",
    ("naturalbench_retrieval", "image_acc"): "NBr_I",
    ("naturalbench_retrieval", "group_acc"): "NBr_G",
    ("sugarcrepe", "pair_acc"): "SugarCrepe",
    ("eurosat", "accuracy"): "EuroSAT",
    ("oxford_pets", "accuracy"): "Pets",
    ("imagenet1k", "accuracy"): "ImageNet1k",
    ("flowers102", "accuracy"): "Flowers",
    ("cub200", "accuracy"): "CUB",
}


def _read(name: str) -> pd.DataFrame:
    """One shipped CSV ('#' lines are provenance comments; '-' means not reported)."""
    return pd.read_csv(HERE / name, comment="#", na_values="-")


def main_table() -> pd.DataFrame:
    """The paper's main table, wide: one row per (model, method), one column per benchmark, accuracy in %."""
    return _read("main_table_v3.csv")


def main_table_long(models: tuple[str, ...] = PAPER_MODELS) -> pd.DataFrame:
    """The main table's rows for ``models``, long: model, method, column, accuracy (reported cells only)."""
    wide = main_table()
    wide = wide[wide["model"].isin(models)]
    long = wide.melt(id_vars=["model", "method"], var_name="column", value_name="accuracy")
    return long.dropna(subset=["accuracy"]).reset_index(drop=True)


def shot_scaling() -> pd.DataFrame:
    """Accuracy vs examples per label on EuroSAT and MHaluBench (LLaVA-OV-7B): model, task, shots, accuracy."""
    return _read("shot_scaling_v3.csv")


def head_sparsity() -> pd.DataFrame:
    """Accuracy vs heads kept (784 = all) on EuroSAT and MHaluBench (LLaVA-OV-7B): model, task, heads, accuracy."""
    return _read("head_sparsity_v3.csv")


def cross_task() -> pd.DataFrame:
    """MHaluBench <-> VLGuard transfer (LLaVA-OV-7B): model, method, MHB, VLG accuracy."""
    return _read("cross_task_v3.csv")


def interleaved() -> pd.DataFrame:
    """The interleaved image-text tasks (MHaluBench accuracy, NaturalBench group accuracy): CLIP, SigLIP and SAVs
    (LLaVA-OV-7B): model, method, one column per task."""
    return _read("interleaved_v3.csv")


def head_locations() -> str:
    """The paper's description of where the selected heads sit (text: the figure is a heat map)."""
    text = (HERE / "figures_v3.md").read_text()
    section = text.split("## Where the selected heads are", 1)[1].split("\n## ", 1)[0]
    return "Where the selected heads are" + section.rstrip()
