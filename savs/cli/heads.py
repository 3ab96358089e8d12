"""``savs heads``: the heads a saved classifier votes with and every head's few-shot score, from its folder alone
(no model loads); ``--plot`` draws the layer x head score map."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from savs.classifier import SCORE_NAMES
from savs.cli import common
from savs.cli.common import CommandError, bad_input
from savs.outputs import check_output

# The task fields heads reads (common.TASK_TYPES).
NEEDS = ("model", "data", "labels", "shots", "seed", "scoring", "selection", "head_scores", "head_layers")


def cmd_heads(args: argparse.Namespace) -> int:
    saved = common.read_classifier(args.dir, NEEDS)
    meta, heads = saved.task, saved.heads  # heads (k, 2): what the classifier votes with, checksum verified
    scores = np.array(meta["head_scores"])  # (L, H)
    L, H = scores.shape
    layer_numbers = meta["head_layers"]  # row -> real decoder layer
    row_of = {layer: row for row, layer in enumerate(layer_numbers)}
    scoring = meta["scoring"]
    order = "best first" if meta["selection"] == "top_k" else "in selection order"
    print(
        f"{len(heads)} of {L * H} heads of {meta['model']} vote, {order}; score: {SCORE_NAMES.get(scoring, scoring)} "
        f"({meta['shots']} per class x {len(meta['labels'])} classes, seed {meta['seed']})"
    )
    rows = heads.tolist()
    if args.all:
        ranked = np.argsort(-scores.ravel(), kind="stable")
        rows = [[layer_numbers[r], h] for r, h in np.stack(np.unravel_index(ranked, scores.shape), axis=1).tolist()]
    selected = {tuple(h) for h in heads.tolist()}
    print("rank\tlayer\thead\tscore" + ("\tvotes" if args.all else ""))
    for rank, (layer, head) in enumerate(rows, 1):
        mark = ("\tyes" if (layer, head) in selected else "\t") if args.all else ""
        print(f"{rank}\t{layer}\t{head}\t{scores[row_of[layer], head]:.4f}{mark}")
    if args.plot:
        _plot(args, meta, scores, heads, row_of)
    return 0


def _plot(
    args: argparse.Namespace, meta: dict[str, Any], scores: np.ndarray, heads: np.ndarray, row_of: dict[int, int]
) -> None:
    """--plot: the (L, H) score map with the voting heads circled, saved to the file named."""
    with bad_input():
        check_output(args.plot, "--plot")
    try:
        from savs import plots
    except ImportError as e:
        raise CommandError(f"--plot needs matplotlib and seaborn (pip install 'savs[notebooks]'): {e}", 1) from e
    caption = (
        f"Head scores of {meta['model']} on {Path(meta['data']).name} ({len(meta['labels'])} classes): "
        f"{meta['shots']} shots per class, seed {meta['seed']}; circled: the {len(heads)} voting heads"
    )
    rows = np.array([[row_of[layer], head] for layer, head in heads.tolist()])  # (k, 2) grid rows
    fig = plots.head_scores(scores, rows, caption, meta["scoring"], layers=meta["head_layers"])
    try:
        with bad_input():
            plots.save_figure(fig, args.plot)
    finally:
        plots.plt.close(fig)  # a command leaves no figure open (nor one for a notebook to show)
    common.info(args, f"plot written to {args.plot}")
