"""Notebook 06's read-out study (issue #23): can a few heads, read by a linear model, match a linear probe?

On the same cached features, per model x task x shot count x seed: SAVs' vote and the linear read-outs of the same
selected heads (``SAVClassifier(readout=...)``) at every head count of the profile's ``readouts`` grid, and two
probes (standardised logistic regression, ``baselines.probe_predict``), the main table's "linear probe" on the last
hidden state and "linear probe, all heads" on every head's vector concatenated. Each row keeps which test examples
it got right, so ``readout_summary`` compares methods *paired* (the same bootstrap resamples of the test examples,
shared with notebook 06's head rules: ``savs.report.bootstrap_resamples``), averaged over seeds. Notebook 06
loops over the draws (``draw_rows``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from savs.experiments import Run, result_row
from savs.methods import METHODS, labels
from savs.report import _boot, _signed, bootstrap_resamples, to_markdown

VOTE, LOGISTIC, LDA = "SAVs vote", "logistic read-out", "LDA read-out"
HIDDEN_PROBE, HEADS_PROBE = "probe: last hidden state", "probe: all heads"
READOUT_OF = {VOTE: "vote", LOGISTIC: "logistic", LDA: "lda"}
PROBES = (HIDDEN_PROBE, HEADS_PROBE)
PROBE_METHODS = {HIDDEN_PROBE: "linear probe", HEADS_PROBE: "linear probe, all heads"}  # their main-table rows
SPARSE_SHARE = 0.05  # "a few heads": at most 5% of the model's heads (13 of savs-mini's 270)
COLUMNS = [
    "model", "task", "method", "heads", "n_heads_model", "features", "shots", "seed", "n_few_shot", "n_test",
    "accuracy", "ci_low", "ci_high", "regularization", "seconds", "correct",
]  # fmt: skip


def draw_rows(run: Run, shots: int, seed: int) -> list[dict]:
    """The study's rows on one few-shot draw (``shots`` per class, ``seed``): one per method and head count.

    ``heads`` is the number of heads read (all of them for the all-heads probe, none for the hidden-state probe);
    ``features`` the numbers a test example needs (heads x head size, or the hidden size); ``seconds`` fit + predict;
    ``regularization`` the read-out's chosen C (logistic) or shrinkage (LDA). Read-outs need two shots per class
    (their inner cross-validation); at one shot only the vote and the probes run. ``COLUMNS``: the rows' columns.
    """
    session = run.session
    few = run.task.few_shot(shots, seed)
    test = session.test(run.task.name, few)
    X, y, X_test = run.heads(few), labels(few), run.heads(test)
    _, L, H, d = X.shape
    grid = sorted({min(int(k), L * H) for k in session.profile.readouts.grid})
    methods = [VOTE] + ([LOGISTIC, LDA] if shots >= 2 else [])
    rows = []

    def row(method: str, heads: int | None, features: int, predictions, seconds: float, reg: float = np.nan) -> dict:
        correct = np.asarray(predictions) == labels(test)
        low, high = np.percentile(100 * correct[bootstrap_resamples(len(test))].mean(axis=1), [2.5, 97.5])
        return result_row(
            run, seed, shots, method=method, heads=heads, n_heads_model=L * H, features=features,
            n_few_shot=len(few), n_test=len(test), accuracy=run.task.evaluate(test, list(predictions))["accuracy"],
            ci_low=low, ci_high=high, regularization=reg, seconds=seconds, correct=correct,
        )  # fmt: skip

    for method in methods:
        for k in grid:
            start = time.perf_counter()
            clf = session.classifier(n_heads=k, readout=READOUT_OF[method]).fit(X, y)
            predictions = clf.predict(X_test)
            reg = np.nan if clf.readout_ is None else clf.readout_.regularization
            rows.append(row(method, k, k * d, predictions, time.perf_counter() - start, reg))
    for method, heads, features in ((HIDDEN_PROBE, None, run.hidden(few).shape[1]), (HEADS_PROBE, L * H, L * H * d)):
        start = time.perf_counter()
        predictions = METHODS[PROBE_METHODS[method]].predict(run, few, test, seed)  # the main table's probes
        rows.append(row(method, heads, features, predictions, time.perf_counter() - start))
    return rows


def readout_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x task x shots x method x heads: accuracy (mean over seeds) with its 95% bootstrap interval over test
    examples, and paired differences: to SAVs' vote with as many heads (``vs_vote``) and to the better of the two
    probes there (``vs_probe``, the one with the higher mean accuracy: the harder reference, named in
    ``best_probe``). Also the mean fit + predict seconds and the features a test example needs."""
    out = []
    for (model, task, shots), sub in results.groupby(["model", "task", "shots"], sort=False):
        resamples = bootstrap_resamples(int(sub["n_test"].iloc[0]))
        boots = {key: (g["accuracy"].mean(), _boot(list(g["correct"]), resamples))
                 for key, g in sub.groupby(["method", "heads"], sort=False, dropna=False)}  # fmt: skip
        probes = {key: v for key, v in boots.items() if key[0] in PROBES}
        best_probe = max(probes, key=lambda key: probes[key][0]) if probes else None
        for (method, heads), group in sub.groupby(["method", "heads"], sort=False, dropna=False):
            mean, boot = boots[(method, heads)]
            row = {
                "model": model, "task": task, "shots": shots, "method": method, "heads": heads,
                "n_heads_model": int(group["n_heads_model"].iloc[0]),
                "share_of_heads": np.nan if pd.isna(heads) else heads / group["n_heads_model"].iloc[0],
                "features": int(group["features"].iloc[0]), "n_seeds": len(group),
                "n_test": int(group["n_test"].iloc[0]),
                "accuracy": mean, "ci_low": np.percentile(boot, 2.5), "ci_high": np.percentile(boot, 97.5),
                "seconds": group["seconds"].mean(), "best_probe": best_probe[0] if best_probe else "",
            }  # fmt: skip
            refs = {"vs_vote": boots.get((VOTE, heads)) if method != VOTE else None,
                    "vs_probe": probes.get(best_probe) if best_probe and method not in PROBES else None}  # fmt: skip
            for key, ref in refs.items():
                diff = None if ref is None else boot - ref[1]
                row[key] = np.nan if diff is None else mean - ref[0]
                row[f"{key}_low"] = np.nan if diff is None else np.percentile(diff, 2.5)
                row[f"{key}_high"] = np.nan if diff is None else np.percentile(diff, 97.5)
            out.append(row)
    return pd.DataFrame(out).astype({"heads": "Int64"})


def _cell(r: pd.Series) -> str:
    return f"{r['accuracy']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]"


def _label(method: str, heads) -> str:
    return method if method in PROBES else f"{method} @{int(heads)}"


def readout_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The shown table: one row per model x task x shots, one column per method (and head count), "acc [95% CI]"."""
    s = summary.assign(column=[_label(m, h) for m, h in zip(summary["method"], summary["heads"], strict=True)],
                       cell=[_cell(r) for _, r in summary.iterrows()])  # fmt: skip
    wide = s.pivot_table(index=["model", "task", "shots"], columns="column", values="cell", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Features per test example and the mean fit + predict seconds (over tasks, shots and seeds), per method. The
    seconds are this machine's and move from run to run: ``cost_lines`` prints them, the written table leaves them out
    so that a rerun writes the same bytes."""
    s = summary.assign(column=[_label(m, h) for m, h in zip(summary["method"], summary["heads"], strict=True)])
    cost = s.groupby("column", sort=False).agg(heads=("heads", "first"), features=("features", "median"),
                                               seconds=("seconds", "mean"))  # fmt: skip
    cost["features"] = cost["features"].astype(int)
    cost["heads"] = ["" if pd.isna(h) else str(int(h)) for h in cost["heads"]]
    return cost.reset_index().rename(columns={"column": "method", "features": "features read (median)"})


def cost_lines(summary: pd.DataFrame) -> str:
    """One line per method: the numbers a test example needs and the mean fit + predict time ("0.37 s": the executed
    notebook keeps the line and elides the time, ``savs.nbclean``)."""
    rows = cost_table(summary).to_dict("records")
    return "\n".join(
        f"{r['method']}: {r['features read (median)']} numbers per test example, fit + predict {r['seconds']:.2f} s"
        for r in rows
    )


def sparse_limit(summary: pd.DataFrame) -> int:
    """The most heads a "sparse" read-out may read: 5% of the model's heads (13 of 270)."""
    return int(np.floor(SPARSE_SHARE * summary["n_heads_model"].min()))


def readout_verdict(summary: pd.DataFrame) -> list[str]:
    """Per model x task x shots, in words with paired 95% intervals: the sparse read-out fixed up front (logistic at
    the largest grid count within 5% of the heads) against the better probe; any read-out within 5% that matches or
    beats it; and where the vote beats the read-outs at the same head count."""
    limit = sparse_limit(summary)
    lines = []
    for (model, task, shots), sub in summary.groupby(["model", "task", "shots"], sort=False):
        probe = sub[sub["method"] == sub["best_probe"].iloc[0]]
        readout = sub[sub["method"].isin([LOGISTIC, LDA])]
        sparse = readout[(readout["heads"] <= limit).fillna(False)]
        parts = [f"**{model}, {task}, {shots} shots**:"]
        if len(probe):
            on = probe["method"].iloc[0].removeprefix("probe: ")
            parts.append(f"the better probe, on {on}, {_cell(probe.iloc[0])};")
        logistic = sparse[sparse["method"] == LOGISTIC]
        if len(logistic) and len(probe):
            r = logistic.sort_values("heads").iloc[-1]
            verdict = (
                "beats it" if r["vs_probe_low"] > 0 else "matches it" if r["vs_probe_high"] >= 0 else "is below it"
            )
            parts.append(f"{_label(LOGISTIC, r['heads'])} {_cell(r)} {verdict} "
                         f"({_signed(r['vs_probe'], r['vs_probe_low'], r['vs_probe_high'])}).")  # fmt: skip
            ok = sparse[sparse["vs_probe_high"] >= 0]
            cells = [
                f"{_label(m, h)} ({_signed(v, lo, hi)})"
                for m, h, v, lo, hi in ok[["method", "heads", "vs_probe", "vs_probe_low", "vs_probe_high"]].values
            ]
            parts.append(f"Read-outs of <= {limit} heads within the probe's interval: {', '.join(cells) or 'none'}.")
        elif not len(readout):
            parts.append("no read-out (fewer than 2 shots per class).")
        else:
            parts.append(f"no read-out reads at most 5% of the heads ({limit} of {sub['n_heads_model'].iloc[0]}).")
        better_vote = readout[readout["vs_vote_high"] < 0]
        if len(better_vote):
            cells = [
                f"{_label(m, h)} ({_signed(v, lo, hi)})"
                for m, h, v, lo, hi in better_vote[["method", "heads", "vs_vote", "vs_vote_low", "vs_vote_high"]].values
            ]
            parts.append(f"The vote beats: {', '.join(cells)}.")
        lines.append(" ".join(parts))
    return lines


def _diffs(s: pd.DataFrame, key: str) -> list[str]:
    """Each row's paired difference ``key`` as '+3.2 [+0.5, +6.0]' ('' where there is no reference)."""
    return [_signed(v, lo, hi) for v, lo, hi in s[[key, f"{key}_low", f"{key}_high"]].values]


def readout_markdown(summary: pd.DataFrame) -> str:
    """The reading, the cost table, and the paired differences to the probe of every read-out."""
    verdict = "\n".join(f"- {line}" for line in readout_verdict(summary))
    s = summary[summary["vs_probe"].notna()]
    diffs = s.assign(
        method=[_label(m, h) for m, h in zip(s["method"], s["heads"], strict=True)],
        vs_best_probe=_diffs(s, "vs_probe"),
        vs_vote_same_heads=_diffs(s, "vs_vote"),
    )[["model", "task", "shots", "method", "best_probe", "vs_best_probe", "vs_vote_same_heads"]]
    return (
        f"### Reading (95% paired bootstrap intervals over test examples, seeds averaged)\n\n{verdict}\n\n"
        f"### Cost: features a test example needs (fit times: the notebook prints them, README \"Sparse heads\")\n\n"
        f"{to_markdown(cost_table(summary).drop(columns='seconds'))}\n\n"
        f"### Paired differences (accuracy points)\n\n{to_markdown(diffs)}"
    )
