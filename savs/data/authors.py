"""Files the paper's authors released with their code (``chancharikmitra/SAVs`` at the paper-time commit), read at
run time, never shipped here.

The authors evaluated NaturalBench-Retrieval on a fixed file of 950 groups. The ``authors`` protocol uses the same
groups: the file is fetched once from GitHub at the pinned commit, checked against its sha256, and kept in the
cache directory. Offline, put a copy at ``$SAVS_DATA/authors/<file>`` (or pass the path to the loader).
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
import warnings
from pathlib import Path

from savs.cache import default_cache_dir
from savs.outputs import atomic_write

REPO = "chancharikmitra/SAVs"
COMMIT = "901be34491d5f92918b2671b457fd1a84df3c78b"  # "Fixed NaturalBench and BLINK", 2025-01-13: the paper's runs
FILES = {  # file under data/ -> sha256 of its content at COMMIT
    "naturalbench_ret_test.jsonl": "d40aefd50d2a3d269bcb2f910cb04414fe196287d74583633ae21bb00338a903",
}


class AuthorsFileError(RuntimeError):
    """An authors' file could not be fetched or does not match its pinned checksum; says what to do."""


def url(name: str) -> str:
    """Where ``name`` lives on GitHub at the pinned commit."""
    return f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/data/{name}"


def local_copy(name: str) -> Path | None:
    """``$SAVS_DATA/authors/<name>`` when it exists (the offline route)."""
    root = os.environ.get("SAVS_DATA")
    path = Path(root) / "authors" / name if root else None
    return path if path is not None and path.is_file() else None


def authors_file(name: str, path: str | Path | None = None, verify: bool = True) -> Path:
    """A local path to the authors' released ``data/<name>``: ``path`` if given, else ``$SAVS_DATA/authors/<name>``,
    else the cached download (fetched now if missing). Every copy is checked against the pinned sha256: a fetched
    one must match; a local one that does not (e.g. the dry run's stand-in) is used with a warning."""
    if name not in FILES:
        raise KeyError(f"unknown authors' file {name!r}; known: {', '.join(FILES)}")
    given = Path(path) if path is not None else local_copy(name)
    if given is not None:
        if not given.is_file():
            raise FileNotFoundError(f"{given} does not exist (the authors' {name})")
        if verify and _sha256(given) != FILES[name]:
            warnings.warn(f"{given} is not the authors' {name} (its sha256 differs): not their test set", stacklevel=2)
        return given
    cached = default_cache_dir() / "authors" / COMMIT[:12] / name
    if not cached.is_file():
        _download(name, cached)
    if verify and _sha256(cached) != FILES[name]:
        raise AuthorsFileError(f"{cached} does not match the sha256 pinned for {url(name)}; delete it to refetch")
    return cached


def _download(name: str, out: Path) -> None:
    """Fetch ``name`` to ``out`` (written at once, once its checksum holds), or an error saying how to provide it
    offline."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url(name), timeout=20) as response:
            data = response.read()
    except OSError as e:
        raise AuthorsFileError(
            f"could not fetch the authors' {name} from {url(name)} ({type(e).__name__}: {e}). Download it on a "
            f"networked machine and put it at $SAVS_DATA/authors/{name}, or pass its path to the loader."
        ) from e
    if hashlib.sha256(data).hexdigest() != FILES[name]:
        raise AuthorsFileError(f"{url(name)} does not match its pinned sha256: the file changed upstream")
    atomic_write(out, data)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
