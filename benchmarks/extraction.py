"""Extraction speed, measured (not a test): prints a Markdown table of examples/s.

(a) a bare forward pass (full model, LM head included), (b) ``extract_heads``, (c) a naive pipeline as
the authors' released code does it (three forward passes per example, batch 1, the full-sequence input
and output of every o_proj kept), (d) early stop at half depth vs a full pass, (e) shared-prefix cache
on vs off. Usage: ``python benchmarks/extraction.py [--model savs-mini] [--task fashion_mnist] [--n 32]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from savs.data import load_task
from savs.extract import extract_heads
from savs.models import load_model


def rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Examples per second of ``fn`` (which handles ``n`` examples), best of ``repeats`` after a warm-up."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="savs-mini")
    parser.add_argument("--task", default="fashion_mnist")
    parser.add_argument("--n", type=int, default=32, help="examples per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)

    adapter = load_model(args.model, device="cpu")
    examples = load_task(args.task, n_train=args.n, n_test=0).train[: args.n]
    n, bs, r = len(examples), args.batch_size, args.repeats
    # the layer with heads nearest half depth from below (a hybrid decoder's other layers have none)
    below_half = [layer for layer in adapter.head_layers if layer < adapter.n_layers // 2]
    stop = max(below_half, default=adapter.head_layers[0])

    def ours(**kw):
        return lambda: extract_heads(adapter, examples, batch_size=bs, progress=False, **kw)

    rows = {
        f"(a) bare forward pass, batch {bs}": rate(lambda: bare_forward(adapter, examples, bs), n, r),
        f"(b) extract_heads, batch {bs}": rate(ours(), n, r),
        "(c) naive: 3 passes/example, batch 1, full o_proj I/O kept": rate(lambda: naive(adapter, examples), n, 1),
        f"(d) extract_heads, early stop at layer {stop + 1} of {adapter.n_layers}": rate(ours(layers=[stop]), n, r),
        "(e) extract_heads, prefix cache off": rate(ours(prefix_cache=False), n, r),
    }
    a, b, c, d, e = rows.values()
    print(
        f"\n{adapter!r}, task {args.task}, {n} examples, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}\n"
    )
    print("| measurement | examples/s |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} |")
    print(
        f"\n(b)/(a) = {b / a:.2f} (goal >= 0.9); (b)/(c) = {b / c:.1f} (goal >= 3); "
        f"full/early time = {d / b:.2f} vs depth ratio {adapter.n_layers / (stop + 1):.2f}; "
        f"prefix cache speed-up (b)/(e) = {b / e:.2f}"
    )


if __name__ == "__main__":
    main()
