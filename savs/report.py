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
from savs.methods import HEAD_METHODS, METHODS
from savs.outputs import atomic_write
from savs.profiles import Profile, Study

# Our method names that the paper's main table also has (ours -> the paper's row name).
PAPER_METHODS = {"zero-shot": "zero-shot", "ICL": "4-shot ICL", "MTV": "MTV", "LoRA": "LoRA", "SAVs": "SAVs"}
# Our model names whose rows the paper's main table also has (ours -> the paper's row name); CLIP and SigLIP rows
# are ours as "CLIP (<checkpoint>)" and "SigLIP (<checkpoint>)".
PAPER_MODEL_ROWS = {"llava-ov-7b": "LLaVA-OV-7B", "qwen2-vl-7b": "Qwen2-VL-7B", "llava-1.5-7b": "LLaVA-1.5",
                    "instructblip-7b": "InstructBLIP", "CLIP": "CLIP", "SigLIP": "SigLIP"}  # fmt: skip

N_BOOTSTRAP = 2000


def bootstrap_resamples(n: int, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(n_boot, n) test-example indices drawn with replacement: fixed, so every method's interval is drawn from the
    same resamples and two methods' difference is paired."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paper_model(model: str) -> str | None:
    """The paper's row name for our ``model`` (``PAPER_MODEL_ROWS``), or None."""
    return PAPER_MODEL_ROWS.get(model.split(" (")[0])


def summarize(
    results: pd.DataFrame, by: Sequence[str] = ("model", "task", "method", "shots", "metric")
) -> pd.DataFrame:
    """Mean, std (over seeds; NaN for one seed), seeds and test size per group of per-seed rows. A seed twice in a
    group is a ValueError: its std would be over copies of one run ("± 0.0")."""
    value = "value" if "value" in results else "accuracy"
    if "seed" in results:
        twice = results[results.duplicated([*by, "seed"], keep=False)]
        if len(twice):
            first = twice.iloc[0]
            raise ValueError(
                f"{len(twice)} rows repeat a seed of their group, e.g. seed {first['seed']} of "
                f"{', '.join(f'{k}={first[k]}' for k in by)}: the std over seeds would be over copies of one run"
            )
    grouped = results.groupby(list(by), sort=False)
    out = grouped[value].agg(mean="mean", std="std", n_seeds="count")
    out["n_test"] = grouped["n_test"].max()
    return out.reset_index()


def mean_std(mean: float, std: float) -> str:
    """'81.3 ± 2.1', or just the mean when there is one seed."""
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def main_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide main table: (model, method) rows in ``savs.methods.METHODS``' order, one column per task (and per extra
    metric).

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
    order = {m: i for i, m in enumerate(METHODS)}
    wide = wide.sort_index(level="method", key=lambda idx: idx.map(order), sort_remaining=False)
    return wide.sort_index(level="model", sort_remaining=False).reset_index().rename_axis(columns=None)


def paper_task(task: str) -> str:
    """Our task name as the paper's table groups it (BLINK subtasks form one column)."""
    return "blink" if task.startswith("blink_") else task


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows for the methods we also run (its two main models', and those of its other models that we
    ran too), beside ours on the benchmarks we share with it.

    Where none of our tasks is one of the paper's benchmarks (the offline suite), the paper's rows come alone,
    with all its columns: they are context, not a like-for-like comparison.
    """
    ours = summary[summary["method"].isin(list(PAPER_METHODS))].copy()
    ours["column"] = [
        paper.PAPER_COLUMNS.get((paper_task(t), m)) for t, m in zip(ours["task"], ours["metric"], strict=True)
    ]
    ours = ours.dropna(subset=["column"])
    ran = {paper_model(m) for m in ours["model"]} - {None}
    theirs = paper.main_table_long(tuple(dict.fromkeys([*paper.PAPER_MODELS, *sorted(ran)])))
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


INTERLEAVED_COLUMNS = {("mhalubench", "accuracy"): "MHaluBench", ("naturalbench", "g_acc"): "NaturalBench (group)"}


def interleaved(summary: pd.DataFrame) -> pd.DataFrame:
    """The interleaved tasks' table (the paper's "generalization and interleaved" one): MHaluBench accuracy and
    NaturalBench group accuracy of every model and method of the main table that ran them, mean over seeds; empty
    when the profile has neither task."""
    keys = list(zip(summary["task"], summary["metric"], strict=True))
    ours = summary.assign(column=[INTERLEAVED_COLUMNS.get(k) for k in keys]).dropna(subset=["column"])
    if ours.empty:
        return pd.DataFrame(columns=["model", "method", *INTERLEAVED_COLUMNS.values()])
    wide = ours.pivot_table(index=["model", "method"], columns="column", values="mean", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def interleaved_markdown(table: pd.DataFrame) -> str:
    """What follows our interleaved ``table`` in its Markdown: why it is empty, if it is; then the paper's table,
    titled as the paper's."""
    note = "" if len(table) else "This profile runs neither MHaluBench nor NaturalBench.\n\n"
    return note + paper_markdown(paper.interleaved(), "interleaved tasks")


def transfer_matrix(cross: pd.DataFrame, *variants: str) -> pd.DataFrame:
    """(model, source) x target mean accuracy over seeds, for the given cross-task variants (rows: whose heads)."""
    sub = cross[cross["variant"].isin(variants)]
    return sub.pivot_table(index=["model", "source"], columns="target", values="accuracy", aggfunc="mean", sort=False)


def rows_not_run(profile: Profile) -> str:
    """A note naming the paper's main-table rows that ``profile`` does not run, and why (a note, not blank rows)."""
    missing = ["GPT-4o (an API model: the paper's numbers only)"]
    if not profile.zero_shot_models:
        missing.append("LLaVA-1.5 and InstructBLIP zero-shot (`zero_shot_models`)")
    contrastive = [name for key, name in (("clip", "CLIP"), ("siglip", "SigLIP")) if key not in profile.baselines]
    if contrastive:
        missing.append(f"{' and '.join(contrastive)} (the `clip` / `siglip` baselines: weights from the hub)")
    return (
        f"Rows of the paper's table not run by profile `{profile.name}`: {'; '.join(missing)}. "
        "The `paper` profile runs every one of them but GPT-4o."
    )


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
    rule: str | None = None,
) -> str:
    """The caption every table and figure carries: model(s), data, shots, seeds, test size, heads, the profile.

    ``shots`` / ``heads`` / ``rule`` replace the profile's value where a figure sweeps or fixes it (``rule``: the
    SAV rule in words, ``rule_text``); ``ablations`` adds the ablation models.
    """
    tasks = profile.study_tasks(study) if study is not None else profile.tasks
    models = [*profile.models, *(profile.ablation_models if ablations else ())]
    return (
        f"Model: {', '.join(models)}{_stand_in(models)}. Tasks: {', '.join(tasks)}. "
        f"Shots: {shots or profile.shots} per class. Seeds: {', '.join(map(str, profile.seeds))}. "
        f"Test: up to {profile.n_test or 'all'} examples per task. Heads: {heads or profile.n_heads} "
        f"({rule or rule_text(profile)}). Profile: {profile.name}."
    )


PAPER_RULE = {"metric": "cosine", "scoring": "in_sample", "selection": "top_k", "voting": "majority", "readout": "vote"}


def rule_text(profile: Profile, **shown: str) -> str:
    """The SAV rule in words: "cosine, in_sample scoring, top_k selection, majority voting: the paper's rule";
    ``shown`` replaces a part where an experiment sets it itself (e.g. ``scoring="in_sample vs leave_one_out"``)."""
    rule = {**profile.rule(), **shown}
    text = f"{rule['metric']}, {rule['scoring']} scoring, {rule['selection']} selection, {rule['voting']} voting"
    if rule.get("readout", "vote") != "vote":
        text = f"{text}, {rule['readout']} read-out of the heads (ours)"
    return text + (": the paper's rule" if rule == PAPER_RULE else "")


def _stand_in(models: Sequence[str]) -> str:
    """The caption's warning where a model is our stand-in."""
    if any("savs-mini" in m for m in models):
        return " (our embedded stand-in, not a model of the paper)"
    if any(m.startswith("random:") for m in models):
        return " (random-weight stand-ins: the numbers are noise)"
    return ""


def run_markdown(profile: Profile) -> str:
    """What a notebook run of ``profile`` will do, in a paragraph: printed at the top of every notebook, so it always
    describes the run at hand (whatever profile and overrides made it)."""
    models = [*profile.models, *profile.ablation_models]
    baselines = []
    for name, spec in profile.baselines.items():
        limits = [f"{spec.n_seeds} seed(s)" if spec.n_seeds else "", f"{spec.n_test} test examples" if spec.n_test
                  else "", f"tasks {', '.join(spec.tasks)}" if spec.tasks else ""]  # fmt: skip
        limits = [x for x in limits if x]
        baselines.append(f"{name}" + (f" ({', '.join(limits)})" if limits else ""))
    ablation = (
        f" The ablation model(s) {', '.join(profile.ablation_models)} run zero-shot, SAVs and all heads voting, on "
        f"{profile.ablation_n_seeds or len(profile.seeds)} seed(s)."
        if profile.ablation_models
        else ""
    )
    protocol = f" Prompts: the {profile.protocol} protocol." if profile.protocol else ""
    return (
        f"**This run: profile `{profile.name}`.** {profile.description.rstrip('.')}. Models: "
        f"{', '.join(models)}{_stand_in(models)}. Tasks: {', '.join(profile.tasks)}. {profile.shots} shots per class, "
        f"seeds {', '.join(map(str, profile.seeds))}, up to {profile.n_test or 'all'} test examples per task; SAVs "
        f"with {profile.n_heads} heads ({rule_text(profile)}).{protocol} Baselines: {', '.join(baselines) or 'none'}."
        f"{ablation} Every feature goes through the activation cache: an example passes through a model once across "
        "all notebooks."
    )


# Columns measuring how long something took: they differ on every run, so they stay in memory and out of the tables.
WALL_TIME_COLUMNS = ("seconds",)


def write_table(
    data: pd.DataFrame, name: str, out_dir: Path, caption: str, shown: pd.DataFrame | None = None, extra: str = ""
) -> list[Path]:
    """``<out_dir>/<name>.csv`` (``data``) and ``.md`` (caption, ``shown`` or else ``data`` as a table, ``extra``);
    an empty table is left out of the Markdown (``extra`` says why), not drawn as a header with no rows. Wall-time
    columns (``WALL_TIME_COLUMNS``) are left out of the CSV: a table holds what a rerun reproduces."""
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    atomic_write(csv, data.drop(columns=list(WALL_TIME_COLUMNS), errors="ignore").to_csv(index=False))
    shown = data if shown is None else shown
    parts = [caption, to_markdown(shown) if len(shown) else "", extra]
    atomic_write(md, "\n\n".join(part for part in parts if part) + "\n")
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


# --- head methods (notebook 06) ----------------------------------------------------------------------------------


def _boot(correct: list[np.ndarray], resamples: np.ndarray) -> np.ndarray:
    """Accuracy (%) on every resample of the test examples, averaged over seeds: (n_boot,)."""
    return 100 * np.mean([c[resamples].mean(axis=1) for c in correct], axis=0)


def sparsity(results: pd.DataFrame, n_heads: int | str) -> int:
    """The head count SAVs had in ``results`` at the profile's ``n_heads``: itself, or every head where it is "all"
    or more than the model has (the summary, table and figure compare the rules there)."""
    most = int(results.loc[results["method"] == "SAVs", "heads"].max())
    return most if n_heads == "all" else min(int(n_heads), most)


def head_methods_summary(results: pd.DataFrame, n_heads: int, probe: str = "linear probe") -> pd.DataFrame:
    """Per model x task x method x heads: accuracy (mean over seeds) with a 95% bootstrap interval over test examples,
    and paired differences (resampled on the same test examples) to SAVs at ``n_heads`` (``vs_savs``), to SAVs at the
    same head count (``vs_savs_same_heads``; head rules on the grid only) and to ``probe`` (``vs_probe``).

    The intervals are over test examples only; seeds are averaged, not resampled. Log losses are means over seeds.
    """
    out = []
    for (model, task), sub in results.groupby(["model", "task"], sort=False):
        resamples = bootstrap_resamples(int(sub["n_test"].iloc[0]))
        refs = {
            "vs_savs": sub[(sub["method"] == "SAVs") & (sub["heads"] == n_heads)],
            "vs_probe": sub[sub["method"] == probe],
        }
        ref_boot = {k: _boot(list(r["correct"]), resamples) if len(r) else None for k, r in refs.items()}
        ref_mean = {k: r["accuracy"].mean() if len(r) else np.nan for k, r in refs.items()}
        savs = sub[sub["method"] == "SAVs"]
        savs_at = {h: (g["accuracy"].mean(), _boot(list(g["correct"]), resamples)) for h, g in savs.groupby("heads")}
        for (method, heads), group in sub.groupby(["method", "heads"], sort=False, dropna=False):
            boot = _boot(list(group["correct"]), resamples)
            row = {
                "model": model, "task": task, "method": method, "heads": heads, "n_seeds": len(group),
                "n_test": int(group["n_test"].iloc[0]), "accuracy": group["accuracy"].mean(),
                "ci_low": np.percentile(boot, 2.5), "ci_high": np.percentile(boot, 97.5),
            }  # fmt: skip
            same = savs_at.get(heads) if method in HEAD_METHODS and not pd.isna(heads) else None
            ref_boot["vs_savs_same_heads"] = None if same is None else same[1]
            ref_mean["vs_savs_same_heads"] = np.nan if same is None else same[0]
            for key, ref in ref_boot.items():
                diff = None if ref is None else boot - ref
                row[key] = np.nan if diff is None else row["accuracy"] - ref_mean[key]
                row[f"{key}_low"] = np.nan if diff is None else np.percentile(diff, 2.5)
                row[f"{key}_high"] = np.nan if diff is None else np.percentile(diff, 97.5)
            row["log_loss"] = group["log_loss"].mean()
            row["log_loss_calibrated"] = group["log_loss_calibrated"].mean()
            out.append(row)
    return pd.DataFrame(out).astype({"heads": "Int64"})


def _at_sparsity(summary: pd.DataFrame, n_heads: int) -> pd.DataFrame:
    """The summary's rows at the paper's sparsity: head rules at ``n_heads``, the all-heads rules, the probes."""
    fixed = [m for m, o in HEAD_METHODS.items() if "n_heads" in o]
    keep = (summary["heads"] == n_heads).fillna(False) | summary["method"].isin(fixed) | summary["heads"].isna()
    return summary[keep]


def _signed(value: float, low: float, high: float) -> str:
    """'+3.2 [+0.5, +6.0]', or '' when there is no reference."""
    return "" if pd.isna(value) else f"{value:+.1f} [{low:+.1f}, {high:+.1f}]"


def _interval(row: pd.Series, key: str) -> str:
    """A summary row's paired difference ``key`` with its interval, e.g. '+3.2 [+0.5, +6.0]'."""
    return _signed(row[key], row[f"{key}_low"], row[f"{key}_high"])


def head_methods_table(summary: pd.DataFrame, n_heads: int) -> pd.DataFrame:
    """The shown table: every method at the paper's sparsity, accuracy [95% CI] and paired differences."""
    rows = []
    for _, r in _at_sparsity(summary, n_heads).iterrows():
        calibrated = "-" if pd.isna(r["log_loss_calibrated"]) else f"{r['log_loss_calibrated']:.2f}"
        loss = "" if pd.isna(r["log_loss"]) else f"{r['log_loss']:.2f} -> {calibrated}"
        rows.append(
            {
                "model": r["model"], "task": r["task"], "method": r["method"],
                "heads": "" if pd.isna(r["heads"]) else int(r["heads"]), "seeds": r["n_seeds"],
                "accuracy [95% CI]": f"{r['accuracy']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]",
                "vs SAVs": _interval(r, "vs_savs"), "vs linear probe": _interval(r, "vs_probe"),
                "log loss (raw -> calibrated)": loss,
            }  # fmt: skip
        )
    return pd.DataFrame(rows)


def head_methods_verdict(summary: pd.DataFrame, n_heads: int, probe: str = "linear probe") -> list[str]:
    """Which rules beat SAVs and the probe at the paper's sparsity, per model x task, in words (paired 95% CIs)."""
    lines = []
    rules = [m for m in HEAD_METHODS if m != "SAVs"]
    for (model, task), sub in _at_sparsity(summary, n_heads).groupby(["model", "task"], sort=False):
        heads = sub[sub["method"].isin(rules)]
        if heads.empty:
            continue
        better = heads[heads["vs_savs_low"] > 0].sort_values("vs_savs", ascending=False)
        worse = heads[heads["vs_savs_high"] < 0].sort_values("vs_savs")
        best = heads.sort_values("accuracy", ascending=False).iloc[0]

        def cite(r: pd.Series, key: str = "vs_savs") -> str:
            return f"{r['method']} ({_interval(r, key)})"

        parts = [f"**{model}, {task}**: SAVs {sub.loc[sub['method'] == 'SAVs', 'accuracy'].mean():.1f}."]
        if len(better):
            parts.append(f"Better than SAVs: {', '.join(cite(r) for _, r in better.iterrows())}.")
        else:
            parts.append(f"No rule beats SAVs beyond its interval; best: {cite(best)}.")
        if len(worse):
            parts.append(f"Worse: {', '.join(cite(r) for _, r in worse.iterrows())}.")
        ref = sub[sub["method"] == probe]
        if len(ref):
            all_heads = sub[sub["method"].isin(HEAD_METHODS)]
            beat = all_heads[all_heads["vs_probe_low"] > 0]
            top = all_heads.sort_values("vs_probe", ascending=False).iloc[0]
            acc = ref["accuracy"].iloc[0]
            if len(beat):
                above = ", ".join(cite(r, "vs_probe") for _, r in beat.iterrows())
                parts.append(f"Above the {probe} ({acc:.1f}): {above}.")
            else:
                best_vs_probe = cite(top, "vs_probe")
                parts.append(f"No head rule beats the {probe} ({acc:.1f}) beyond its interval; best: {best_vs_probe}.")
        lines.append(" ".join(parts))
    grid = summary[summary["method"].isin(rules) & summary["vs_savs_same_heads"].notna()]
    for (model, task), sub in grid.groupby(["model", "task"], sort=False):
        better = sub[sub["vs_savs_same_heads_low"] > 0].sort_values("vs_savs_same_heads", ascending=False)
        cells = [
            f"{r['method']} at {int(r['heads'])} ({_interval(r, 'vs_savs_same_heads')})" for _, r in better.iterrows()
        ]
        found = f"better: {', '.join(cells)}" if cells else "none is better"
        line = (
            f"**{model}, {task}, every head count** (vs SAVs with as many heads; {len(sub)} comparisons, intervals "
            f"not corrected for their number): {found}."
        )
        at = next((i for i, text in enumerate(lines) if text.startswith(f"**{model}, {task}**")), len(lines) - 1)
        lines.insert(at + 1, line)
    return lines


def head_methods_markdown(summary: pd.DataFrame, n_heads: int) -> str:
    """The verdict, then accuracy vs heads kept per task (mean over seeds)."""
    curve = summary[summary["heads"].notna()]
    wide = curve.pivot_table(index=["model", "task", "method"], columns="heads", values="accuracy", sort=False)
    wide = wide.reset_index().rename_axis(columns=None)
    verdict = "\n".join(f"- {line}" for line in head_methods_verdict(summary, n_heads))
    return (
        f"### Reading (95% paired bootstrap intervals over test examples)\n\n{verdict}\n\n"
        f"### Accuracy vs heads kept (mean over seeds; columns: heads)\n\n{to_markdown(wide)}"
    )
