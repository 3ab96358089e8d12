"""What determines a model's head vectors, as one record: the activation cache's namespace and a saved SAV's check.

Two models share cached vectors (and a saved classifier accepts a model) only when everything that decides the
numbers agrees: the weights (a hub id resolved to its commit, or a content digest of a local directory's files),
the dtype, the attention implementation, the chat template, the image processor's settings, the transformers
version and this package's extraction code. A registry name and the hub id it stands for resolve to the same
source, so they share a cache; a directory rebuilt with other weights does not.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from savs.outputs import atomic_write

# Bump when a change to prompts or extraction changes the vectors: it invalidates cached activations. The identity
# digests chat templates, not the prompts adapters build with them; tests/test_identity.py's BUILT_PROMPTS table
# records those per version, so a change to them fails that test until this is bumped.
EXTRACTION_VERSION = "3"
# Files at least this large have their content digest memoized on disk (keyed by path, size and mtime): a 7B
# checkpoint is hashed once per file version, not on every load.
MEMO_BYTES = 64 * 2**20


def digest(data: str | bytes) -> str:
    """sha256 hex digest of a string (UTF-8) or bytes."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def json_digest(value: Any) -> str:
    """Digest of a JSON-able value with sorted keys (unserialisable leaves are written with ``repr``)."""
    return digest(json.dumps(value, sort_keys=True, default=repr))


def file_digest(path: Path, memo_dir: Path | None = None) -> str:
    """sha256 of a file's content; large files are memoized in ``memo_dir`` by (path, size, mtime)."""
    stat = path.stat()
    memo = None
    if memo_dir is not None and stat.st_size >= MEMO_BYTES:
        key = digest(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        memo = memo_dir / "file-digests" / key
        if memo.is_file():
            return memo.read_text().strip()
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**24), b""):
            h.update(block)
    out = h.hexdigest()
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(memo, out)
    return out


def _hidden(relative: Path) -> bool:
    """Whether a path (relative to a model directory) is hidden: any of its components starts with a dot."""
    return any(part.startswith(".") for part in relative.parts)


def directory_digest(root: Path, memo_dir: Path | None = None) -> str:
    """Digest of every regular file under a model directory (relative name + content): config, weights, tokenizer.

    Hidden files and anything under a hidden folder are left out: tools keep their own state there (``hf download
    --local-dir`` writes timestamped metadata under ``.cache/``), which says nothing about the model.
    """
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root)))
    if not files:
        raise FileNotFoundError(f"{root} holds no files to identify a model by")
    parts = [f"{p.relative_to(root).as_posix()}={file_digest(p, memo_dir)}" for p in files]
    return digest("\n".join(parts))


def hub_revision(repo_id: str, revision: str | None = None) -> str | None:
    """The commit a hub id (at ``revision``) resolves to in the local hub cache, or None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(path, str):
        return None
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def model_source(name_or_path: str, revision: str | None = None, memo_dir: Path | None = None) -> str:
    """``dir:<digest>`` for a local directory, ``hub:<repo>@<commit>`` for a hub id (``@<revision>`` when the
    commit cannot be read from the local cache)."""
    path = Path(name_or_path)
    if path.is_dir():
        return f"dir:{directory_digest(path, memo_dir)}"
    commit = hub_revision(name_or_path, revision)
    return f"hub:{name_or_path}@{commit or revision or 'main'}"


def package_version(name: str) -> str:
    """An installed distribution's version ("absent" when it is not installed)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@dataclass(frozen=True)
class ModelIdentity:
    """Everything that decides a model's head vectors for a given example (see the module docstring)."""

    family: str
    source: str
    dtype: str
    attention: str
    template: str
    processor: str
    transformers: str = package_version("transformers")
    extraction: str = EXTRACTION_VERSION
    extra: str = ""  # family-specific parts (savs-mini's projector, a LoRA fine-tune)

    @property
    def namespace(self) -> str:
        """The short digest that names this identity's directory in the activation cache."""
        return json_digest(asdict(self))[:16]

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ModelIdentity:
        """An identity read back from JSON; a missing or unknown field is an error naming it."""
        names = {f.name for f in fields(cls)}
        missing, unknown = sorted(names - set(raw)), sorted(set(raw) - names)
        if missing or unknown:
            raise ValueError(f"model identity: missing fields {missing}, unknown fields {unknown}")
        return cls(**{k: str(raw[k]) for k in names})

    def differences(self, other: ModelIdentity) -> list[str]:
        """``field: this != other`` for every field that differs."""
        a, b = asdict(self), asdict(other)
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]
