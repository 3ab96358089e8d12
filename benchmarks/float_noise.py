"""How far float noise moves the vectors and the tables, measured (not a test): where ``savs.compare``'s tolerance
comes from.

1. **The vectors.** A sample of the mini profile's plan, extracted on the code paths a CPU can take: the reference
   (1 thread, oneDNN on, the plan's batches of 8), oneDNN off (``torch.backends.mkldnn``: the vision encoder's
   convolutions through ATen's own kernels), 2 threads, and another batch composition (batches of 3: other rows,
   other padding). Prints the largest difference from the reference, absolute and relative to the largest value.
2. **The tables.** Notebook 01's main table and notebook 02's shot scaling recomputed from the warm activation cache
   (``SAVS_CACHE_ONLY``: nothing is extracted or written), then again with every cached vector (head vectors, hidden
   states, vision features) perturbed by Gaussian noise of the measured size, times 1 and 10, several draws (each
   example's noise seeded by its fingerprint, so an example has the same vectors wherever it appears). Prints, per
   noise level, the cells that moved and the most test examples any accuracy cell moved by.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/float_noise.py [--n 48] [--draws 3] [--cache ~/.cache/savs]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from savs import compare
from savs import experiments as ex
from savs.baselines import vision_features
from savs.extract import extract_features
from savs.plan import profile_plan
from savs.profiles import load_profile


def sample(session: ex.Session, n: int) -> list:
    """``n`` examples of the plan, as many from each of savs-mini's tasks (prompts of every shape)."""
    needs = [need for (model, _), need in profile_plan(session).needs.items() if model == "savs-mini"]
    per = -(-n // len(needs))
    return [e for need in needs for e in list(need.features.values())[:per]][:n]


def computed(adapter, examples: list, batch_size: int) -> dict[str, np.ndarray]:
    """Head vectors, hidden states (in ``plan_batches``' batches of ``batch_size``) and vision features, computed now
    (no cache)."""
    got = extract_features(adapter, examples, heads=range(adapter.n_layers), hidden=-1, batch_size=batch_size,
                           progress=False)  # fmt: skip
    got["vision"] = vision_features(adapter, examples, progress=False)
    return got


def vector_noise(session: ex.Session, n: int) -> dict[str, dict[str, float]]:
    """Per setting and kind of vector, the largest absolute difference from the reference and that over the largest
    value."""
    adapter = session.adapter("savs-mini")
    examples = sample(session, n)
    torch.set_num_threads(1)
    reference = computed(adapter, examples, 8)
    settings = {}
    with torch.backends.mkldnn.flags(enabled=False):
        settings["oneDNN off"] = computed(adapter, examples, 8)
    torch.set_num_threads(2)
    settings["2 threads"] = computed(adapter, examples, 8)
    torch.set_num_threads(1)
    settings["batches of 3"] = computed(adapter, examples, 3)
    out = {}
    for name, got in settings.items():
        out[name] = {}
        for kind in KINDS:
            delta = float(np.abs(got[kind] - reference[kind]).max())
            out[name][f"{kind}: max abs diff"] = delta
            out[name][f"{kind}: diff / max abs value"] = delta / float(np.abs(reference[kind]).max())
    return out


KINDS = ("heads", "hidden", "vision")


def _noisy(array: np.ndarray, examples, sigma: float, draw: int) -> np.ndarray:
    """``array`` (one row per example) plus Gaussian noise of std ``sigma``, seeded by each example's fingerprint."""
    out = array.copy()
    for i, e in enumerate(examples):
        seed = int.from_bytes(hashlib.sha256(f"{e.fingerprint()}:{draw}".encode()).digest()[:8], "little")
        out[i] += np.random.default_rng(seed).normal(0.0, sigma, size=array.shape[1:]).astype(array.dtype)
    return out


@contextlib.contextmanager
def perturbed(sigma: dict[str, float], draw: int) -> Iterator[None]:
    """Every vector a ``Run`` reads, perturbed (``_noisy``) with ``sigma[kind]``."""
    features, vision = ex.Run._features, ex.Run.vision

    def noisy_features(self, examples):
        return {k: _noisy(v, examples, sigma[k], draw) for k, v in features(self, examples).items()}

    def noisy_vision(self, examples):
        return _noisy(vision(self, examples), examples, sigma["vision"], draw)

    ex.Run._features, ex.Run.vision = noisy_features, noisy_vision
    try:
        yield
    finally:
        ex.Run._features, ex.Run.vision = features, vision


def tables(session: ex.Session, methods: list[str] | None) -> dict[str, pd.DataFrame]:
    """The main table's rows and the shot-scaling table, by notebook 01's and 02's loops (their log lines silenced;
    no CLIP / SigLIP rows: the mini profile has none); with ``methods``, only those rows of the main table (a quicker
    measurement)."""
    p, rows, curve = session.profile, [], []
    with contextlib.redirect_stdout(io.StringIO()):
        for model, task, planned, seeds in ex.main_plan(p):
            run = session.run(model, task)
            for method in (m for m in planned if methods is None or m in methods):
                rows += ex.evaluate(run, method, p.shots, seeds)
        if methods is not None:
            return {"main_results": pd.DataFrame(rows)}
        for model, task, shots, planned in ex.shot_scaling_plan(p):
            run = session.run(model, task)
            curve += [row for m in planned for row in ex.evaluate(run, m, shots, p.seeds)]
    scored = pd.DataFrame(curve)
    shot_scaling = scored[scored["metric"] == "accuracy"].rename(columns={"value": "accuracy"}).drop(columns="metric")
    return {"main_results": pd.DataFrame(rows), "shot_scaling": shot_scaling}


def table_noise(cache: Path, sigma: dict[str, float], draws: int, methods: list[str] | None) -> tuple[int, float]:
    """Over ``draws`` noise draws: the most cells that moved in one draw, the most test examples an accuracy cell
    moved by."""
    profile = load_profile("mini")
    base = tables(ex.Session(profile, cache), methods)
    cells, worst = 0, 0.0
    for draw in range(draws):
        with perturbed(sigma, draw):
            noisy = tables(ex.Session(profile, cache), methods)
        diffs = [compare.compare_tables(name, base[name], noisy[name]) for name in base]
        if any(d.problem for d in diffs):
            raise RuntimeError(f"noise changed a table's shape: {[d.problem for d in diffs]}")
        cells = max(cells, sum(len(d.cells) for d in diffs))
        worst = max(worst, *(d.max_examples for d in diffs))
    return cells, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="examples extracted per setting")
    parser.add_argument("--draws", type=int, default=3, help="noise draws per level")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "savs")
    parser.add_argument("--methods", help="re-score only these main-table methods (comma-separated; default: all)")
    parser.add_argument("--skip-vectors", action="store_true", help="use --sigma instead of measuring the vectors")
    parser.add_argument("--sigma", default="heads=1.5e-5,hidden=5.9e-5,vision=0", help="noise std per kind")
    args = parser.parse_args()
    methods = args.methods.split(",") if args.methods else None
    os.environ["SAVS_CACHE_ONLY"] = "1"  # read the warm cache, never extract into it
    sigma = {k: float(v) for k, v in (kv.split("=") for kv in args.sigma.split(","))}
    if not args.skip_vectors:
        noise = vector_noise(ex.Session(load_profile("mini"), args.cache), args.n)
        print(f"\nsavs-mini, {args.n} examples of the mini plan, {platform.machine()} {platform.processor()}, "
              f"torch {torch.__version__}\n")  # fmt: skip
        columns = list(next(iter(noise.values())))
        print("| setting vs reference | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
        for name, row in noise.items():
            print(f"| {name} | " + " | ".join(f"{v:.2e}" for v in row.values()) + " |")
        sigma = {kind: max(row[f"{kind}: max abs diff"] for row in noise.values()) for kind in KINDS}
    shown = ", ".join(f"{k} {v:.1e}" for k, v in sigma.items())
    print(f"\ntables re-scored with Gaussian noise of std the largest difference per kind ({shown}), x1 and x10, "
          f"{args.draws} draws:\n")  # fmt: skip
    print("| noise | most cells moved (one draw) | most test examples an accuracy cell moved |\n|---|---|---|")
    for factor in (1, 10):
        cells, worst = table_noise(args.cache, {k: v * factor for k, v in sigma.items()}, args.draws, methods)
        print(f"| x{factor} | {cells} | {worst:g} |")


if __name__ == "__main__":
    main()
