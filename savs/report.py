"""Tables and captions from the experiments' DataFrames: per-seed rows summarised to mean ± std, the main
table in the paper's layout, the paper's numbers beside ours (labelled as the paper's), and the caption every
table and figure carries (which model, data, shots and seeds made the numbers). ``write_table`` saves CSV +
Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from savs import paper
from savs.methods import METHOD_NAMES
from savs.profiles import Profile, Study

# Our method names that the paper's main table also has (ours -> the paper's row name).
PAPER_METHODS = {"zero-shot": "zero-shot", "ICL": "4-shot ICL", "LoRA": "LoRA", "SAVs": "SAVs"}


def summarize(
    results: pd.DataFrame, by: Sequence[str] = ("model", "task", "method", "shots", "metric")
) -> pd.DataFrame:
    """Mean, std (over seeds; NaN for one seed), seeds and test size per group of per-seed rows."""
    value = "value" if "value" in results else "accuracy"
    grouped = results.groupby(list(by), sort=False)
    out = grouped[value].agg(mean="mean", std="std", n_seeds="count")
    out["n_test"] = grouped["n_test"].max()
    return out.reset_index()


def mean_std(mean: float, std: float) -> str:
    """'81.3 ± 2.1', or just the mean when there is one seed."""
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def main_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide main table: (model, method) rows in METHOD_NAMES order, one column per task (and per extra metric).

    A cell scored on fewer seeds or test examples than the task's most says so: "41.0 [1 seed, n=100]".
    """
    most = summary.groupby("task")[["n_seeds", "n_test"]].transform("max")
    cells = []
    for row, top in zip(summary.itertuples(), most.itertuples(), strict=True):
        notes = [f"{row.n_seeds} seed{'s' * (row.n_seeds > 1)}"] if row.n_seeds < top.n_seeds else []
        notes += [f"n={row.n_test}"] if row.n_test < top.n_test else []
        cells.append(mean_std(row.mean, row.std) + (f" [{', '.join(notes)}]" if notes else ""))
    s = summary.assign(
        column=[t if m == "accuracy" else f"{t} {m}" for t, m in zip(summary["task"], summary["metric"], strict=True)],
        cell=cells,
    )
    wide = s.pivot_table(index=["model", "method"], columns="column", values="cell", aggfunc="first", sort=False)
    order = {m: i for i, m in enumerate(METHOD_NAMES)}
    wide = wide.sort_index(level="method", key=lambda idx: idx.map(order), sort_remaining=False)
    return wide.sort_index(level="model", sort_remaining=False).reset_index().rename_axis(columns=None)


def paper_task(task: str) -> str:
    """Our task name as the paper's table groups it (BLINK subtasks form one column)."""
    return "blink" if task.startswith("blink_") else task


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows for the methods we also run, beside ours on the benchmarks we share with it.

    Where none of our tasks is one of the paper's benchmarks (the offline suite), the paper's rows come alone,
    with all its columns: they are context, not a like-for-like comparison.
    """
    ours = summary[summary["method"].isin(list(PAPER_METHODS))].copy()
    ours["column"] = [
        paper.PAPER_COLUMNS.get((paper_task(t), m)) for t, m in zip(ours["task"], ours["metric"], strict=True)
    ]
    ours = ours.dropna(subset=["column"])
    theirs = paper.main_table_long()
    theirs = theirs[theirs["method"].isin(list(PAPER_METHODS.values()))]
    theirs = theirs.assign(source="paper, " + theirs["model"], cell=theirs["accuracy"].map("{:.1f}".format))
    parts = [theirs[["source", "method", "column", "cell"]]]
    if not ours.empty:
        ours = ours.groupby(["model", "method", "column"], sort=False)["mean"].mean().reset_index()
        ours = ours.assign(
            source="ours, " + ours["model"],
            method=ours["method"].map(PAPER_METHODS),
            cell=ours["mean"].map("{:.1f}".format),
        )
        parts.append(ours[["source", "method", "column", "cell"]])
        parts[0] = parts[0][parts[0]["column"].isin(set(ours["column"]))]
    long = pd.concat(parts, ignore_index=True)
    wide = long.pivot_table(index=["source", "method"], columns="column", values="cell", aggfunc="first", sort=False)
    columns = [c for c in paper.main_table().columns if c in wide.columns]
    return wide[columns].reset_index().rename_axis(columns=None)


def transfer_matrix(cross: pd.DataFrame, *variants: str) -> pd.DataFrame:
    """(model, source) x target mean accuracy over seeds, for the given cross-task variants (rows: whose heads)."""
    sub = cross[cross["variant"].isin(variants)]
    return sub.pivot_table(index=["model", "source"], columns="target", values="accuracy", aggfunc="mean", sort=False)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas needs the optional ``tabulate`` for this)."""
    cells = [[_fmt(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def _fmt(value: object) -> str:
    """A table cell: floats to one decimal, missing values empty."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.1f}"
    return str(value)


def describe(
    profile: Profile,
    study: Study | None = None,
    shots: str | None = None,
    heads: str | None = None,
    ablations: bool = False,
) -> str:
    """The caption every table and figure carries: model(s), data, shots, seeds, test size, heads, the profile.

    ``shots`` / ``heads`` replace the profile's value where a figure sweeps it; ``ablations`` adds the ablation models.
    """
    tasks = profile.study_tasks(study) if study is not None else profile.tasks
    models = [*profile.models, *(profile.ablation_models if ablations else ())]
    stand_in = " (our embedded stand-in, not a model of the paper)" if any("savs-mini" in m for m in models) else ""
    return (
        f"Model: {', '.join(models)}{stand_in}. Tasks: {', '.join(tasks)}. "
        f"Shots: {shots or profile.shots} per class. Seeds: {', '.join(map(str, profile.seeds))}. "
        f"Test: up to {profile.n_test or 'all'} examples per task. Heads: {heads or profile.n_heads}. "
        f"Profile: {profile.name}."
    )


def write_table(
    data: pd.DataFrame, name: str, out_dir: Path, caption: str, shown: pd.DataFrame | None = None, extra: str = ""
) -> list[Path]:
    """``<out_dir>/<name>.csv`` (``data``) and ``.md`` (caption, ``shown`` or else ``data`` as a table, ``extra``)."""
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    data.to_csv(csv, index=False)
    table = to_markdown(data if shown is None else shown)
    md.write_text(f"{caption}\n\n{table}\n" + (f"\n{extra}\n" if extra else ""))
    return [csv, md]


def paper_markdown(df: pd.DataFrame, what: str) -> str:
    """A Markdown section holding the paper's numbers, titled so they cannot pass for ours."""
    return f"### Paper: {what} ({paper.SOURCE}); not our runs\n\n{to_markdown(df)}"


def grid(study: Study) -> str:
    """A study's grid as text, for captions."""
    return ", ".join(map(str, study.grid))


def curve_table(curve: pd.DataFrame, x: str, hue: str = "method") -> pd.DataFrame:
    """A curve's per-seed rows as a wide table: (model, task, ``hue``) rows, one "mean ± std" column per ``x``."""
    s = summarize(curve, by=("model", "task", hue, x))
    s["cell"] = [mean_std(m, sd) for m, sd in zip(s["mean"], s["std"], strict=True)]
    wide = s.pivot_table(index=["model", "task", hue], columns=x, values="cell", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def curve_markdown(curve: pd.DataFrame, x: str, paper_curve: pd.DataFrame, hue: str = "method") -> str:
    """The wide table of our curve, then the paper's (its own section; ``paper_curve`` has its own ``x`` column)."""
    theirs = paper_curve.pivot_table(index=["model", "task"], columns=x, values="accuracy")
    theirs = theirs.reset_index().rename_axis(columns=None)
    ours = f"### Ours: mean ± std over seeds\n\n{to_markdown(curve_table(curve, x, hue))}"
    return f"{ours}\n\n{paper_markdown(theirs, 'LLaVA-OV-7B, read off its plot (approximate)')}"


def cross_task_markdown(cross: pd.DataFrame) -> str:
    """One source x target matrix per variant (mean over seeds), then the paper's MHaluBench <-> VLGuard table."""
    parts = []
    for variant in dict.fromkeys(cross["variant"]):
        matrix = transfer_matrix(cross, variant).reset_index().rename_axis(columns=None)
        parts.append(f"### Ours: {variant} (rows: source, columns: target)\n\n{to_markdown(matrix)}")
    parts.append(paper_markdown(paper.cross_task(), "MHaluBench <-> VLGuard, LLaVA-OV-7B"))
    return "\n\n".join(parts)
