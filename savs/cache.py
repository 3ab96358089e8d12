"""On-disk store of per-example head vectors, shared by every notebook and resumable after a crash.

Content-addressed: an example's key hashes its prompt, pixels and the layers kept, under a namespace
per model (``Adapter.fingerprint``). Each extracted batch is one safetensors shard, written to a
temporary file and renamed into place, so a killed run leaves only whole shards behind and a rerun
extracts just what is missing. Processes may write shards to the same namespace concurrently.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def default_cache_dir() -> Path:
    """``$SAVS_CACHE``, else ``~/.cache/savs``."""
    return Path(os.environ.get("SAVS_CACHE") or Path.home() / ".cache" / "savs")


def example_key(fingerprint: str, tag: str) -> str:
    """Cache key of one example's features of one kind (``tag``: the layers kept, or another feature's name)."""
    return hashlib.sha256(f"{fingerprint}|{tag}".encode()).hexdigest()


class ActivationCache:
    """Arrays by key under ``root/namespace``; ``put`` writes one atomic shard per call."""

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.dir = Path(root) / "activations" / namespace
        self.dir.mkdir(parents=True, exist_ok=True)
        self._where: dict[str, Path] = {}
        for shard in sorted(self.dir.glob("[!.]*.safetensors")):
            with safe_open(shard, framework="numpy") as f:
                self._where.update(dict.fromkeys(f.keys(), shard))

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def get(self, keys: Sequence[str]) -> list[np.ndarray]:
        """The arrays of ``keys`` (all must be present), reading each shard once."""
        by_shard: dict[Path, list[str]] = {}
        for key in keys:
            by_shard.setdefault(self._where[key], []).append(key)
        found: dict[str, np.ndarray] = {}
        for shard, shard_keys in by_shard.items():
            with safe_open(shard, framework="numpy") as f:
                found.update({k: f.get_tensor(k) for k in shard_keys})
        return [found[k] for k in keys]

    def put(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Write ``arrays`` as one shard: to a temporary name first, then renamed (atomic on POSIX)."""
        if not arrays:
            return
        name = hashlib.sha256("".join(sorted(arrays)).encode()).hexdigest()[:20]
        final = self.dir / f"{name}.safetensors"
        tmp = self.dir / f".{name}.{uuid.uuid4().hex}.tmp"
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
        os.replace(tmp, final)
        self._where.update(dict.fromkeys(arrays, final))
