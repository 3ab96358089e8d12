"""``savs extract``: every head's vectors of DATA as one safetensors file (arrays, with uids, labels and the model in
its metadata), for analysis outside savs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from savs.cli import common
from savs.cli.common import CommandError, bad_input
from savs.outputs import atomic_path, check_output, lock_output


def cmd_extract(args: argparse.Namespace) -> int:
    with bad_input():
        out = check_output(args.out, "--out")
        lock = lock_output(out)
    with lock:  # a second extract to this file exits 2 until this one ends
        return _extract(args, out)


def _extract(args: argparse.Namespace, out: Path) -> int:
    """``savs extract`` once ``out`` is checked and locked."""
    from safetensors.numpy import save_file

    from savs.extract import extract_heads

    if out.exists() and not args.force:
        raise CommandError(f"{out} exists; --force replaces it")
    task = common.read_data(args.data, args, common.data_options(args), prompt=args.prompt)
    parts = {"train": [(0, task.train)], "test": [(1, task.test)], "all": [(0, task.train), (1, task.test)]}[args.part]
    examples = [e for _, part in parts for e in part]
    split = [code for code, part in parts for _ in part]
    if not examples:
        raise CommandError(f"the {args.part} part of {args.data} is empty")
    adapter = common.load_model(args.model, args)
    X = extract_heads(
        adapter, examples, batch_size=args.batch_size, cache_dir=common.cache_dir(args), progress=common.progress(args)
    )  # (n, L, H, d)
    labels = list(task.labels)
    tensors = {
        "heads": np.ascontiguousarray(X, dtype=np.float32),
        "labels": np.array([labels.index(e.label) for e in examples], dtype=np.int64),
        "split": np.array(split, dtype=np.int64),
    }
    metadata = {
        "model": adapter.name,
        "data": common.data_name(args.data),
        "description": task.description,
        "heads": "(n_examples, n_layers, n_heads, head_dim): each head's output at the last prompt token",
        "head_layers": json.dumps(list(adapter.head_layers)),  # the decoder layer of each heads row
        "labels": json.dumps(labels),
        "split": "0: train, 1: test",
        "uids": json.dumps([e.uid for e in examples]),
        "prompt": json.dumps(args.prompt),
    }
    if out.exists() and not args.force:  # again: something other than savs may have written it meanwhile
        raise CommandError(f"{out} appeared while the model ran; --force replaces it")
    with bad_input(), atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    n, L, H, d = X.shape
    print(f"wrote {out}: heads {n} x {L} x {H} x {d} float32 (examples, layers, heads, head_dim), labels, split")
    return 0
