"""Extraction past one GPU: every process extracts its shard into the shared activation cache.

The cache is content-addressed and written one atomic shard per batch, so merging is free: after all
ranks finish, any process reads the full array back from it, identical to a single-process run.

    accelerate launch --num_processes 8 -m savs.distributed --model llava-ov-7b --task eurosat \
        --shots 20 --seeds 0 1 2 --n-test 1000 --cache-dir /data/savs-cache

(``torchrun --nproc_per_node N -m savs.distributed ...`` works the same.) Notebooks pointed at the same
cache directory then find every activation already there.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from accelerate import PartialState

from savs.examples import Example
from savs.extract import extract_heads


def extract_heads_distributed(
    adapter, examples: Sequence[Example], *, cache_dir: str | Path, state: PartialState | None = None, **kwargs
) -> np.ndarray:
    """``extract_heads`` with the examples split over the processes of ``state``; every rank gets the whole array."""
    state = state or PartialState()
    with state.split_between_processes(list(examples)) as mine:
        if mine:
            extract_heads(adapter, mine, cache_dir=cache_dir, progress=state.is_local_main_process, **kwargs)
    state.wait_for_everyone()
    return extract_heads(adapter, examples, cache_dir=cache_dir, progress=False, **kwargs)


def examples_for(task_name: str, shots: int, seeds: Sequence[int], n_test: int | None) -> list[Example]:
    """The few-shot sets of every seed plus each seed's test subset: what the notebooks will ask for."""
    from savs.data import load_task

    task = load_task(task_name)
    out: list[Example] = []
    for seed in seeds:
        out += task.few_shot(shots, seed) + task.test_subset(n_test, seed)
    return list({e.fingerprint(): e for e in out}.values())


def main(argv: Sequence[str] | None = None) -> None:
    from savs.models import load_model

    parser = argparse.ArgumentParser(description="Extract head activations of a task on every process.")
    parser.add_argument("--model", required=True, help="registry name, hub id or local directory")
    parser.add_argument("--task", required=True)
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--out", help="also save the merged array here (.npy), from rank 0")
    args = parser.parse_args(argv)

    state = PartialState()
    adapter = load_model(args.model, device=state.device)
    examples = examples_for(args.task, args.shots, args.seeds, args.n_test)
    X = extract_heads_distributed(adapter, examples, cache_dir=args.cache_dir, state=state, batch_size=args.batch_size)
    if state.is_main_process:
        print(f"{len(examples)} examples of {args.task}: activations {X.shape} in {args.cache_dir}")
        if args.out:
            np.save(args.out, X)


if __name__ == "__main__":
    main()
