"""On-disk store of per-example head vectors, shared by every notebook and resumable after a crash.

Content-addressed: an example's key hashes its prompt, pixels and the layers kept, under a namespace
per model (``Adapter.identity.namespace``). Each extracted batch is one safetensors shard, written to a
temporary file and renamed into place, so a killed run leaves only whole shards behind and a rerun
extracts just what is missing. Processes may write shards to the same namespace concurrently.

Every array is stored with a checksum of its dtype, shape and bytes (in the shard's metadata) and checked on
every read, along with its values being finite. A shard that cannot be opened, or holds an array that fails
its check, is renamed to a hidden ``.corrupt-*`` name the cache never reads (kept for inspection) with a
``CacheWarning`` naming it; its examples are then missing, so the next extraction recomputes them. Shards of
an earlier version, written without checksums, are set aside the same way (``.unverified-*``).

Texts (generated answers) are stored the same way, each as the uint8 array of its UTF-8 bytes (``cached_texts``),
so they get the same atomic shards, checksums, quarantine and cache-only mode.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from savs.outputs import atomic_dir, atomic_path

# What ``cached_texts``' ``generate`` yields, a batch at a time: positions in its ``todo``, and their texts.
TextBatches = Generator[tuple[list[int], list[str]], None, None]

# Shard metadata key that marks a shard whose other metadata entries are per-array checksums (``checksum``).
CHECKSUMS = "savs.checksums"
CHECKSUMS_VERSION = "sha256-dtype-shape-bytes"


class CacheMissError(LookupError):
    """Arrays asked for are not in the cache, and computing them was not allowed (or not possible)."""


class CacheWarning(UserWarning):
    """A shard was unreadable, failed its check or predates checksums: it was set aside, its examples are missing."""


def default_cache_dir() -> Path:
    """``$SAVS_CACHE``, else ``~/.cache/savs``."""
    return Path(os.environ.get("SAVS_CACHE") or Path.home() / ".cache" / "savs")


def build_once(out: Path, build: Callable[[Path], None]) -> Path:
    """``out``, a model folder kept under the cache, made the first time by ``build(tmp)`` into a temporary sibling,
    then renamed in: processes building it at once never read a half-written folder (one that loses the race keeps
    the winner's, which is the same)."""
    if (out / "config.json").is_file():
        return out
    try:
        with atomic_dir(out) as tmp:
            build(tmp)  # renamed to ``out`` after: fails if another process finished first
    except OSError:
        if not (out / "config.json").is_file():
            raise
    return out


def cache_only_mode(cache_only: bool | None, cache_dir: str | Path | None) -> bool:
    """Whether features may only be read from the cache (no model runs): the keyword when given, else
    ``SAVS_CACHE_ONLY=1`` where there is a cache."""
    if cache_only is None:
        return cache_dir is not None and os.environ.get("SAVS_CACHE_ONLY") == "1"
    if cache_only and cache_dir is None:
        raise ValueError("cache_only=True needs a cache_dir to read the features from")
    return cache_only


def example_key(fingerprint: str, tag: str) -> str:
    """Cache key of one example's features of one kind (``tag``: the layers kept, or another feature's name)."""
    return hashlib.sha256(f"{fingerprint}|{tag}".encode()).hexdigest()


def checksum(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order): what reading it back must reproduce."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}|".encode())
    h.update(a)
    return h.hexdigest()


def _distrust(array: np.ndarray, expected: str | None) -> str | None:
    """Why a stored array cannot be used (no or a wrong checksum, non-finite values), or None when it can."""
    if expected is None:
        return "has no checksum"
    if checksum(array) != expected:
        return "fails its checksum"
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        return "holds NaN or inf"
    return None


class ActivationCache:
    """Arrays by key under ``root/namespace``; ``put`` writes one atomic, checksummed shard per call."""

    def __init__(self, root: str | Path, namespace: str) -> None:
        self.dir = Path(root) / "activations" / namespace
        self.dir.mkdir(parents=True, exist_ok=True)
        self._where: dict[str, Path] = {}
        unverified = []
        for shard in sorted(self.dir.glob("[!.]*.safetensors")):
            try:
                with safe_open(shard, framework="numpy") as f:
                    keys, metadata = list(f.keys()), f.metadata() or {}
            except FileNotFoundError:  # set aside by another process since the listing
                continue
            except (SafetensorError, OSError) as e:
                self._set_aside(shard, f"cannot be read ({e})")
                continue
            if CHECKSUMS in metadata:
                self._where.update(dict.fromkeys(keys, shard))
            else:
                unverified.append(shard)
        if unverified:
            self._set_aside_unverified(unverified)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def read(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The verified arrays of those ``keys`` the cache holds, reading each shard once. A shard failing its
        check is set aside and its keys forgotten: they are absent from the answer, for the caller to recompute."""
        by_shard: dict[Path, list[str]] = {}
        for key in dict.fromkeys(keys):
            if key in self._where:
                by_shard.setdefault(self._where[key], []).append(key)
        found: dict[str, np.ndarray] = {}
        for shard, shard_keys in by_shard.items():
            found.update(self._read_shard(shard, shard_keys))
        return found

    def get(self, keys: Sequence[str]) -> list[np.ndarray]:
        """The arrays of ``keys``, all of which must be present and pass their check (else ``CacheMissError``)."""
        found = self.read(keys)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            raise CacheMissError(f"{len(missing)} of the keys asked for are not in {self.dir}, e.g. {missing[:3]}")
        return [found[k] for k in keys]

    def put(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Write ``arrays`` as one shard, each with its checksum: to a temporary name first, then renamed (atomic
        on POSIX). Non-finite arrays are refused: they would only be set aside on the next read."""
        if not arrays:
            return
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        bad = [k for k, v in arrays.items() if v.dtype.kind in "fc" and not np.isfinite(v).all()]
        if bad:
            raise ValueError(f"refusing to cache {len(bad)} arrays holding NaN or inf (keys {bad[:3]})")
        metadata = {CHECKSUMS: CHECKSUMS_VERSION, **{k: checksum(v) for k, v in arrays.items()}}
        name = hashlib.sha256("".join(sorted(arrays)).encode()).hexdigest()[:20]
        final = self.dir / f"{name}.safetensors"
        with atomic_path(final) as tmp:
            save_file(arrays, str(tmp), metadata=metadata)
        self._where.update(dict.fromkeys(arrays, final))

    def _read_shard(self, shard: Path, keys: list[str]) -> dict[str, np.ndarray]:
        """``keys``' arrays from one shard when every one passes its check; else nothing (the shard is set aside)."""
        try:
            with safe_open(shard, framework="numpy") as f:
                metadata = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in keys}
        except FileNotFoundError:  # set aside by another process, which warned
            self._forget(shard)
            return {}
        except (SafetensorError, OSError) as e:
            self._set_aside(shard, f"cannot be read ({e})")
            return {}
        for key, array in arrays.items():
            why = _distrust(array, metadata.get(key))
            if why is not None:
                self._set_aside(shard, f"has an array that {why} (key {key[:16]}...)")
                return {}
        return arrays

    def _forget(self, shard: Path) -> None:
        """Drop every key that points at ``shard``."""
        self._where = {k: s for k, s in self._where.items() if s != shard}

    def _move_aside(self, shard: Path, kind: str) -> Path | None:
        """Rename ``shard`` to a hidden ``.<kind>-<name>-<time>`` the cache never reads; None if it is already gone."""
        target = shard.with_name(f".{kind}-{shard.name}-{time.strftime('%Y%m%dT%H%M%S')}")
        self._forget(shard)
        try:
            os.replace(shard, target)
        except FileNotFoundError:
            return None
        return target

    def _set_aside(self, shard: Path, why: str) -> None:
        """Move a bad shard aside and warn, naming it: its examples are now missing and will be recomputed."""
        target = self._move_aside(shard, "corrupt")
        if target is not None:
            warnings.warn(
                f"activation cache shard {shard} {why}; moved aside to {target.name}, and the examples it held "
                "will be recomputed",
                CacheWarning,
                stacklevel=3,
            )

    def _set_aside_unverified(self, shards: list[Path]) -> None:
        """Move shards written without checksums (by an earlier savs) aside, with one warning for them all."""
        moved = [s for s in shards if self._move_aside(s, "unverified") is not None]
        if moved:
            warnings.warn(
                f"{len(moved)} activation cache shards in {self.dir} (e.g. {moved[0].name}) were written by an "
                "earlier savs without checksums and cannot be verified; moved aside as .unverified-*, and the "
                "examples they held will be recomputed",
                CacheWarning,
                stacklevel=3,
            )


def text_array(text: str) -> np.ndarray:
    """A text as the cache stores it: its UTF-8 bytes, uint8 ``(n_bytes,)`` (empty for "")."""
    return np.frombuffer(text.encode(), dtype=np.uint8).copy()


def array_text(array: np.ndarray) -> str:
    """The text ``text_array`` stored."""
    return array.tobytes().decode()


def cached_texts(
    store: ActivationCache | None,
    keys: Sequence[str],
    generate: Callable[[list[int]], TextBatches],
    *,
    cache_only: bool = False,
    what: str = "answers",
) -> list[str]:
    """The text of every key: what ``store`` holds read back verified, the rest made by ``generate`` and stored.

    ``generate(todo)`` makes the texts of ``keys[i]`` for ``i`` in ``todo`` (each distinct key once) and yields them a
    batch at a time as ``(positions in todo, texts)``; each batch is stored as one shard as it comes, so a killed run
    keeps every batch it finished. The generator is closed when done, so its own ``with`` blocks (a LoRA adapter's)
    exit even when storing fails. ``cache_only`` (see ``cache_only_mode``): raise ``CacheMissError`` instead.
    """
    found = {k: array_text(a) for k, a in store.read(keys).items()} if store is not None else {}
    first = dict(zip(reversed(keys), reversed(range(len(keys))), strict=True))  # each key's first index
    todo = sorted(i for k, i in first.items() if k not in found)
    if todo and cache_only:
        where = store.dir if store is not None else "no cache"
        raise CacheMissError(
            f"{len(todo)} of {len(keys)} {what} are not in the cache ({where}); cache-only mode (SAVS_CACHE_ONLY=1) "
            "runs no model: fill the cache with a run without it"
        )
    if todo:
        with closing(generate(todo)) as batches:
            for positions, texts in batches:
                fresh = {keys[todo[j]]: text for j, text in zip(positions, texts, strict=True)}
                if store is not None:
                    store.put({k: text_array(t) for k, t in fresh.items()})
                found.update(fresh)
    return [found[k] for k in keys]
