"""The figures: small functions from the experiments' DataFrames to matplotlib figures, saved as PNG + PDF.

Every figure carries its caption (model, data, shots, seeds) as a wrapped super-title, and the paper's curve,
where it has one, sits in its own panel titled as the paper's, never drawn as if it were ours.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.decomposition import PCA

from savs import paper
from savs.classifier import SCORE_NAMES, score_is_accuracy
from savs.outputs import atomic_path

# Metadata a figure file would otherwise carry that changes between runs or installs (None: left out): a PDF's
# dates, creator and producer (matplotlib's version), a PNG's software, an SVG's date and creator. SVG ids are salted.
STABLE_METADATA = {
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
}


def save(fig: Figure, name: str, out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<name>.png`` (150 dpi) and ``.pdf`` (``save_figure``: the same figure, the same bytes)."""
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        save_figure(fig, path)
    return paths


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> None:
    """``fig.savefig`` without timestamps or version strings in the file (``STABLE_METADATA``), so that saving the
    same figure twice writes identical bytes; atomically (``savs.outputs``), in the format the suffix names (none:
    matplotlib's default)."""
    fmt = Path(path).suffix.lstrip(".").lower() or plt.rcParams["savefig.format"]
    with plt.rc_context({"svg.hashsalt": "savs"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=STABLE_METADATA.get(fmt))


def _grid(n: int, width: float = 4.2, height: float = 3.4, max_cols: int = 4) -> tuple[Figure, list[plt.Axes]]:
    """A figure with ``n`` panels in rows of at most ``max_cols``; unused panels hidden."""
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _integer_axes(ax: plt.Axes) -> None:
    """Whole-number ticks on both axes (layers and heads are indices)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _caption(fig: Figure, caption: str) -> None:
    """The caption as a wrapped super-title, so the figure says what made it even out of context."""
    width = int(fig.get_figwidth() * 14)
    fig.tight_layout()  # first: laid out with a suptitle, the panels would leave a gap for it below the top edge
    fig.suptitle(textwrap.fill(caption, width), fontsize=8, y=1.0, va="bottom")  # above the top; save() keeps it


def curves(df: pd.DataFrame, x: str, caption: str, xlabel: str, paper_df: pd.DataFrame, hue: str = "method") -> Figure:
    """Accuracy vs ``x``, one panel per (model, task), mean over seeds with a +-1 std band; the paper's panel last
    (``paper_df`` has its own ``x`` column)."""
    panels = list(df.groupby(["model", "task"], sort=False))
    fig, axes = _grid(len(panels) + 1)
    for ax, ((model, task), sub) in zip(axes, panels, strict=False):
        sns.lineplot(data=sub, x=x, y="accuracy", hue=hue, errorbar="sd", marker="o", ax=ax)
        ax.set(title=f"ours: {model}, {task}", xlabel=xlabel, ylabel="accuracy (%)", xscale="log")
        ax.legend(fontsize=7)
    ax = axes[-1]
    sns.lineplot(data=paper_df, x=x, y="accuracy", hue="task", marker="o", ax=ax)
    ax.set(title=f"paper, {paper_df['model'].iloc[0]} (read off its plot)", xlabel=xlabel, ylabel="accuracy (%)")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    for ax in axes:
        ticks = sorted({*df[x].unique(), *paper_df[x].unique()})
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.minorticks_off()
    _caption(fig, caption)
    return fig


def transfer_heatmap(matrix: pd.DataFrame, caption: str) -> Figure:
    """Source task (rows: whose heads vote) x target task (columns) accuracy, one panel per model."""
    models = list(dict.fromkeys(matrix.index.get_level_values("model")))
    fig, axes = _grid(len(models), width=1.1 * matrix.shape[1] + 3, height=0.7 * matrix.shape[0] / len(models) + 2)
    for ax, model in zip(axes, models, strict=True):
        sns.heatmap(matrix.loc[model], annot=True, fmt=".1f", cmap="viridis", vmin=0, vmax=100, ax=ax)
        ax.set(title=f"ours: {model}", xlabel="target task (class means, test set)", ylabel="heads selected on")
    _caption(fig, caption)
    return fig


def head_maps(
    maps: dict[tuple[str, str], dict[str, np.ndarray]], caption: str, scoring: str = "in_sample"
) -> Figure:
    """Per (model, task): every head's score (mean over seeds; in % where ``scoring`` gives accuracies) as a
    layer x head map; dots = selected heads, sized by the share of seeds that selected them."""
    fig, axes = _grid(len(maps), width=3.6, height=5.0, max_cols=5)
    for ax, ((model, task), m) in zip(axes, maps.items(), strict=True):
        scores, selected = m["scores"], m["selected"]  # (L, H) each
        image = ax.imshow(scores, aspect="auto", cmap="magma", origin="lower", **_score_range(scoring))
        layer, head = np.nonzero(selected)
        ax.scatter(head, layer, s=40 * selected[layer, head], facecolors="none", edgecolors="cyan", linewidths=1)
        ax.set(title=f"{model}, {task}", xlabel="head", ylabel="layer")
        _integer_axes(ax)
        _layer_ticks(ax, m.get("layers"), len(scores))
        fig.colorbar(image, ax=ax, label=_score_label(scoring))
    _caption(fig, caption)
    return fig


def head_pca(maps: dict[tuple[str, str], dict[str, np.ndarray]], caption: str) -> Figure:
    """Per (model, task): the top head's test vectors projected on their first two principal components."""
    fig, axes = _grid(len(maps), width=3.8, height=3.4, max_cols=5)
    for ax, ((model, task), m) in zip(axes, maps.items(), strict=True):
        xy = PCA(n_components=2).fit_transform(m["top_vectors"])  # (n, 2)
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=m["labels"], s=12, ax=ax, legend=len(set(m["labels"])) <= 10)
        layer, head = m["top_head"]
        ax.set(title=f"{model}, {task}\ntop head: layer {layer}, head {head}", xlabel="PC 1", ylabel="PC 2")
        if ax.get_legend():
            ax.legend(fontsize=6, markerscale=0.7)
    _caption(fig, caption)
    return fig


def head_scores(
    scores: np.ndarray, heads: np.ndarray, caption: str, scoring: str = "in_sample", layers: list[int] | None = None
) -> Figure:
    """A classifier's ``head_scores_`` as a layer x head map (accuracies in %), selected heads (grid rows, heads)
    circled; ``layers``: the decoder layer of each row where they are not 0..L-1 (a hybrid decoder's attention
    layers)."""
    fig, ax = plt.subplots(figsize=(4.5, 5.5))
    shown = 100 * scores if score_is_accuracy(scoring) else scores
    image = ax.imshow(shown, aspect="auto", cmap="magma", origin="lower", **_score_range(scoring))
    ax.scatter(heads[:, 1], heads[:, 0], s=40, facecolors="none", edgecolors="cyan", label="selected heads")
    ax.set(xlabel="head", ylabel="layer")
    _integer_axes(ax)
    _layer_ticks(ax, layers, len(scores))
    ax.legend(fontsize=7, loc="upper right")
    fig.colorbar(image, ax=ax, label=_score_label(scoring))
    _caption(fig, caption)
    return fig


def _layer_ticks(ax, layers, n_rows: int) -> None:
    """Label a head map's rows with their decoder layers where these are not 0..L-1 (a hybrid's attention layers)."""
    if layers is not None and list(layers) != list(range(n_rows)):
        ax.set_yticks(range(n_rows), [str(layer) for layer in layers])


def _score_range(scoring: str) -> dict[str, float]:
    """A head-score map's colour range: 0-100 for accuracies in %, the data's own for unbounded scores."""
    return {"vmin": 0, "vmax": 100} if score_is_accuracy(scoring) else {}


def _score_label(scoring: str) -> str:
    return f"head score ({SCORE_NAMES[scoring]}{', %' if score_is_accuracy(scoring) else ''})"


def paper_head_locations() -> str:
    """The paper's description of its head maps, to print beside ours (its figure is a heat map, not numbers)."""
    return f"{paper.head_locations()}\n(paper, LLaVA-OV-7B; {paper.SOURCE})"


def head_methods(results: pd.DataFrame, summary: pd.DataFrame, caption: str, n_heads: int) -> Figure:
    """Per (model, task), two panels: accuracy vs heads kept for each head rule (mean over seeds), the all-heads rules
    and the probes as horizontal lines; below, every method at the paper's sparsity with its 95% bootstrap interval
    over test examples, against SAVs (solid) and the linear probe (dashed)."""
    panels = list(summary.groupby(["model", "task"], sort=False))
    fig, axes = plt.subplots(2, len(panels), figsize=(5.2 * len(panels), 9.5), squeeze=False)
    methods = list(dict.fromkeys(results["method"]))
    curve_rules = [m for m in methods if results.loc[results["method"] == m, "heads"].nunique() > 1]
    palette = [*sns.color_palette("tab10"), (0.0, 0.0, 0.0), (0.55, 0.55, 0.55), (0.6, 0.3, 0.0)]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    for col, ((model, task), sub) in enumerate(panels):
        ax = axes[0, col]
        rows = results[(results["model"] == model) & (results["task"] == task)]
        for method in curve_rules:
            curve = rows[rows["method"] == method].groupby("heads")["accuracy"].mean()
            ax.plot(curve.index.astype(float), curve.values, marker="o", ms=3, label=method, color=colors[method])
        for _, r in sub[~sub["method"].isin(curve_rules)].iterrows():
            label = r["method"] + ("" if pd.isna(r["heads"]) else f" ({int(r['heads'])} heads)")
            ax.axhline(r["accuracy"], ls="--" if pd.isna(r["heads"]) else ":", color=colors[r["method"]], label=label)
        ax.axvline(n_heads, color="grey", lw=0.6)
        ax.set(title=f"ours: {model}, {task}", xlabel="heads kept", ylabel="accuracy (%, mean of seeds)", xscale="log")
        ticks = sorted(rows.loc[rows["method"].isin(curve_rules), "heads"].dropna().unique().tolist())
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.minorticks_off()
        if col == 0:
            ax.legend(fontsize=6)
        ax = axes[1, col]
        at = sub[(sub["heads"] == n_heads).fillna(False) | ~sub["method"].isin(curve_rules)].iloc[::-1]
        for y, (_, r) in enumerate(at.iterrows()):
            ax.errorbar(r["accuracy"], y, xerr=[[r["accuracy"] - r["ci_low"]], [r["ci_high"] - r["accuracy"]]], fmt="o",
                        color=colors[r["method"]], capsize=2, ms=4)  # fmt: skip
        names = [m + ("" if pd.isna(h) else f" ({int(h)})") for m, h in zip(at["method"], at["heads"], strict=True)]
        ax.set_yticks(range(len(at)), names, fontsize=7)
        for method, ls in (("SAVs", "-"), ("linear probe", "--")):
            ref = at[at["method"] == method]
            if len(ref):
                ax.axvline(ref["accuracy"].iloc[0], ls=ls, color=colors[method], lw=1, label=method)
        ax.set(title=f"at {n_heads} heads (95% bootstrap CI over test examples)", xlabel="accuracy (%)")
        ax.legend(fontsize=6)
    _caption(fig, caption)
    return fig


def readouts(summary: pd.DataFrame, caption: str, sparse_limit: int) -> Figure:
    """Accuracy vs the share of the model's heads read, one panel per (model, task) row and shot count column: SAVs'
    vote and the linear read-outs of the same heads (95% bootstrap intervals over test examples, seeds averaged), the
    all-heads probe at share 1 and the hidden-state probe as a dashed line with its interval shaded; the grey line
    marks 5% of the heads (``sparse_limit``)."""
    rows = list(dict.fromkeys(zip(summary["model"], summary["task"], strict=True)))
    shots = sorted(summary["shots"].unique())
    fig, axes = plt.subplots(len(rows), len(shots), figsize=(3.6 * len(shots), 3.0 * len(rows)), squeeze=False,
                             sharex=True)  # fmt: skip
    methods = list(dict.fromkeys(summary["method"]))
    colors = dict(zip(methods, sns.color_palette("tab10"), strict=False))
    for i, (model, task) in enumerate(rows):
        for j, n in enumerate(shots):
            ax = axes[i, j]
            sub = summary[(summary["model"] == model) & (summary["task"] == task) & (summary["shots"] == n)]
            for method, g in sub[sub["share_of_heads"].notna()].groupby("method", sort=False):
                g = g.sort_values("share_of_heads")
                err = [g["accuracy"] - g["ci_low"], g["ci_high"] - g["accuracy"]]
                ax.errorbar(g["share_of_heads"], g["accuracy"], yerr=err, marker="o", ms=3, capsize=2, lw=1,
                            color=colors[method], label=method)  # fmt: skip
            for _, r in sub[sub["share_of_heads"].isna()].iterrows():
                ax.axhline(r["accuracy"], ls="--", lw=1, color=colors[r["method"]], label=r["method"])
                ax.axhspan(r["ci_low"], r["ci_high"], color=colors[r["method"]], alpha=0.12)
            ax.axvline(sparse_limit / sub["n_heads_model"].iloc[0], color="grey", lw=0.8)
            ax.set(xscale="log", title=f"{task}, {n} shots", xlabel="share of the heads read" if i == len(rows) - 1
                   else None, ylabel=f"accuracy (%), {model}" if j == 0 else None)  # fmt: skip
            ticks = sorted(summary["share_of_heads"].dropna().unique())  # after the log scale, which resets them
            ax.set_xticks(ticks, [f"{100 * t:.1f}%" if t < 0.1 else f"{100 * t:.0f}%" for t in ticks], fontsize=6)
            ax.minorticks_off()
            ax.title.set_fontsize(9)
    axes[0, 0].legend(fontsize=6, loc="lower right")
    _caption(fig, caption)
    return fig
