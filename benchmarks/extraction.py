"""Extraction speed, measured (not a test): prints a Markdown table of examples/s and the ratios between variants.

(a) a bare forward pass (full model, LM head included), (b) ``extract_heads``, (c) a naive pipeline as the authors'
released code does it (three forward passes per example, batch 1, the full-sequence input and output of every o_proj
kept), (d) early stop at half depth, (e) shared-prefix cache off.

Built for a shared, noisy machine: after a warm-up round, every round runs each variant once, in an order rotated
from round to round (so no variant always follows the same one), each measurement repeated until it has used 2 CPU
seconds, and a variant's rate is the median over rounds with its interquartile range. Rates are per CPU second of
this process (one torch thread by default): the time other jobs hold the cores is not ours, and wall-clock rates on a
shared machine moved 2x between rounds; wall-clock rates are printed beside them. Each ratio is computed within a
round (both variants measured seconds apart, under the same load) and its median over rounds printed, with the
min-max over rounds.

Usage: ``python benchmarks/extraction.py [--model savs-mini] [--task fashion_mnist] [--n 8] [--naive-n 2]
[--rounds 5] [--min-cpu 2] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from savs.data import load_task
from savs.extract import extract_heads
from savs.models import load_model


def bare_forward(adapter, examples, batch_size: int) -> None:
    """What any user pays for one prefill pass per example: the whole model, LM head included."""
    with torch.inference_mode():
        for i in range(0, len(examples), batch_size):
            adapter.forward(adapter.encode(examples[i : i + batch_size]))


def naive(adapter, examples) -> list:
    """The released code's way: batch 1, three passes per example, every o_proj's full input and output kept."""
    kept = []
    hooks = [
        adapter.o_proj(i).register_forward_hook(lambda m, a, o: kept.append((a[0].clone(), o.clone())))
        for i in adapter.head_layers
    ]
    try:
        with torch.inference_mode():
            for e in examples:
                for _ in range(3):
                    adapter.forward(adapter.encode([e]))
    finally:
        for h in hooks:
            h.remove()
    return kept


def interleaved_rates(
    variants: dict[str, tuple[Callable[[], object], int]], rounds: int, min_cpu: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Examples per CPU second and per wall-clock second of each variant (``fn``, examples it handles), per round:
    one warm-up round, then ``rounds`` rounds each running every variant once (repeated until it has used
    ``min_cpu`` CPU seconds: a short measurement is mostly noise), the order rotated by one each round."""
    names = list(variants)
    for name in names:  # warm-up: first-call costs (allocations, lazy init) out of the measurements
        variants[name][0]()
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, n = variants[name]
            start_cpu, start_wall, done = time.process_time(), time.perf_counter(), 0
            while not done or time.process_time() - start_cpu < min_cpu:
                fn()
                done += n
            cpu[name].append(done / (time.process_time() - start_cpu))
            wall[name].append(done / (time.perf_counter() - start_wall))
    return cpu, wall


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile."""
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(med), float(q1), float(q3)


def round_ratio(rates: dict[str, list[float]], top: str, bottom: str) -> tuple[float, float, float]:
    """``top``/``bottom`` within each round: median, min, max over rounds."""
    ratios = [t / b for t, b in zip(rates[top], rates[bottom], strict=True)]
    return float(np.median(ratios)), min(ratios), max(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="savs-mini")
    parser.add_argument("--task", default="fashion_mnist")
    parser.add_argument("--n", type=int, default=8, help="examples per measurement")
    parser.add_argument("--naive-n", type=int, default=2, help="examples per measurement of (c), the slow one")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (after one warm-up round)")
    parser.add_argument("--min-cpu", type=float, default=2.0, help="CPU seconds each measurement lasts at least")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    adapter = load_model(args.model, device="cpu")
    examples = load_task(args.task, n_train=args.n, n_test=0).train[: args.n]
    n, bs = len(examples), args.batch_size
    # the layer with heads nearest half depth from below (a hybrid decoder's other layers have none)
    below_half = [layer for layer in adapter.head_layers if layer < adapter.n_layers // 2]
    stop = max(below_half, default=adapter.head_layers[0])

    def ours(**kw):
        return lambda: extract_heads(adapter, examples, batch_size=bs, progress=False, **kw)

    variants = {
        "a": (lambda: bare_forward(adapter, examples, bs), n),
        "b": (ours(), n),
        "c": (lambda: naive(adapter, examples[: args.naive_n]), min(args.naive_n, n)),
        "d": (ours(layers=[stop]), n),
        "e": (ours(prefix_cache=False), n),
    }
    titles = {
        "a": f"(a) bare forward pass, batch {bs}",
        "b": f"(b) extract_heads, batch {bs}",
        "c": "(c) naive: 3 passes/example, batch 1, full o_proj I/O kept",
        "d": f"(d) extract_heads, early stop at layer {stop + 1} of {adapter.n_layers}",
        "e": "(e) extract_heads, prefix cache off",
    }
    rates, wall = interleaved_rates(variants, args.rounds, args.min_cpu)
    print(
        f"\n{adapter!r}, task {args.task}, {n} examples ((c): {variants['c'][1]}), {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.rounds} interleaved rounds "
        "after a warm-up\n"
    )
    print("| measurement | examples per CPU second, median | IQR | examples/s wall clock, median | IQR |")
    print("|---|---|---|---|---|")
    for key, title in titles.items():
        (med, q1, q3), (wmed, wq1, wq3) = spread(rates[key]), spread(wall[key])
        print(f"| {title} | {med:.2f} | {q1:.2f}-{q3:.2f} | {wmed:.2f} | {wq1:.2f}-{wq3:.2f} |")
    print("\nRatios of CPU-time rates within each round (median over rounds, min-max):\n")
    print("| ratio | median | min-max | goal |\n|---|---|---|---|")
    for top, bottom, what, goal in (
        ("b", "a", "(b)/(a): extraction vs a bare forward pass", ">= 0.9"),
        ("b", "c", "(b)/(c): vs the naive pipeline", ">= 3"),
        ("d", "b", "full/early-stop time: (d)/(b)", f"depth ratio {adapter.n_layers / (stop + 1):.2f}"),
        ("b", "e", "(b)/(e): prefix cache speed-up", ">= 3"),
    ):
        med, lo, hi = round_ratio(rates, top, bottom)
        print(f"| {what} | {med:.2f} | {lo:.2f}-{hi:.2f} | {goal} |")


if __name__ == "__main__":
    main()
