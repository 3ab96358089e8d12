"""Sharded extraction across 2 CPU processes (gloo) equals a single-process run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np

from savs.distributed import examples_for
from savs.extract import extract_heads


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tiny_dir, tiny_adapter, tmp_path):
    model = tiny_dir("llava")
    out = tmp_path / "merged.npy"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "savs.distributed", "--model", model, "--task", "digits", "--shots", "2", "--seeds", "0", "1",
        "--n-test", "5", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    merged = np.load(out)

    examples = examples_for("digits", shots=2, seeds=[0, 1], n_test=5)
    adapter = tiny_adapter("llava")
    single = extract_heads(adapter, examples, batch_size=4, progress=False)
    assert merged.shape == single.shape == (len(examples), adapter.n_layers, adapter.n_heads, adapter.head_dim)
    np.testing.assert_allclose(merged, single, atol=1e-5)
    shards = list((tmp_path / "cache" / "activations").rglob("*.safetensors"))
    assert len(shards) >= 2, "each rank should have written its own shards"
