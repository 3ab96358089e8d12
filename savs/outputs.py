"""Writing outputs safely: checked before anything loads, locked while written, and atomic.

``check_output`` refuses an output path that cannot be written (a folder where a file goes, a regular file among its
parents) before a model loads, not after an extraction; ``lock_output`` keeps two ``savs fit`` runs from writing one
folder at once (each raises an ``OutputError``, a ValueError: the command's exit status 2).

The one atomic writer of the package: ``atomic_path`` yields a hidden temporary name beside a file and renames it
over the file once written, ``atomic_write`` writes bytes or text that way, and ``atomic_dir`` does the same for a
whole folder (built beside it, then renamed in, an old one swapped out). A write that fails or is killed leaves the
old file or folder as it was and no temporary behind (a kill leaves at most a hidden ``.*.tmp``, which no reader
lists). This module imports nothing from ``savs``, so every floor of the package can use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path


class OutputError(ValueError):
    """An output path the command cannot write."""


class OutputBusyError(OutputError):
    """An output another process is writing now."""


def check_output(path: str | Path, option: str, folder: bool = False) -> Path:
    """``path`` as an output to write (a folder where ``folder``): an ``OutputError`` naming ``option`` when it is
    a folder where a file goes (or the reverse) or when one of its parents is a regular file."""
    out = Path(path)
    want, other = ("folder", "file") if folder else ("file", "folder")
    if out.exists() and out.is_dir() != folder:
        raise OutputError(f"{option} {out} is a {other}; name a {want}")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{option} {out}: {parent} is a file, so nothing can be written under it")
            break
    return out


def lock_output(out: Path) -> AbstractContextManager[None]:
    """Take ``out``'s lock now (``.<name>.lock`` beside it, parents made) and hold it until the returned context
    exits: a second process asking for it meanwhile gets an ``OutputBusyError`` at once, instead of both finishing
    and one result silently replacing the other. The lock (``flock``) dies with its process: a killed run never
    leaves the output locked."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.with_name(f".{out.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock).st_ino:  # its holder removed it as we opened it: still in use
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise OutputBusyError(f"another savs process is writing {out} now; wait for it to finish") from None

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            os.close(fd)

    return held()


def _temporary(path: Path) -> Path:
    """A hidden sibling of ``path`` no other process or thread picks: ``.<name>.<pid>-<random>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _fsync(path: Path) -> None:
    """Flush a file's content, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, sync: bool = False) -> Iterator[Path]:
    """Yield a temporary name beside ``path`` to write the file to; when the block ends without an exception, rename
    it onto ``path`` (atomic on POSIX: readers see the old file or the new one, never half of one). If the block or
    the rename raises, the temporary is removed and ``path`` is left as it was. ``sync`` flushes the file and the
    folder's entry to the disk, so a power cut after the rename cannot leave an empty file."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        if sync:
            _fsync(tmp)
        os.replace(tmp, path)
        if sync:
            _fsync(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(path: str | Path, data: bytes | str, *, sync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` at once, through ``atomic_path``."""
    with atomic_path(path, sync=sync) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def set_aside(path: Path) -> list[Path]:
    """What ``atomic_dir`` moved aside from ``path`` and, killed between its two renames, left there (oldest first)."""
    return sorted(path.parent.glob(f".{path.name}.replaced-*"))


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, replace: bool = False, sync: bool = False) -> Iterator[Path]:
    """Yield a new hidden folder beside ``path`` to build the folder in; when the block ends without an exception,
    rename it to ``path``. An existing ``path`` other than an empty folder raises an ``OSError`` (another process
    built it first), unless ``replace``: then it is moved aside, put back if the rename fails, and deleted after, so
    ``path`` holds the old folder or the new one, never a mix (only a kill between the two renames leaves it aside:
    ``set_aside``). If the block raises, the new folder is removed. ``sync`` flushes every file written and the
    folders' entries first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = _temporary(path)
    new.mkdir()
    try:
        yield new
        if sync:
            for file in (p for p in new.rglob("*") if p.is_file()):
                _fsync(file)
            _fsync(new)
        _rename_in(new, path, replace)
        if sync:
            _fsync(path.parent)
    finally:
        shutil.rmtree(new, ignore_errors=True)  # only left when something failed before the rename


def _rename_in(new: Path, path: Path, replace: bool) -> None:
    """Rename the folder ``new`` to ``path``, swapping an existing ``path`` out where ``replace`` (``atomic_dir``)."""
    if not replace or not path.exists():
        os.rename(new, path)  # replaces an empty folder; raises OSError where a full one (or a file) is in the way
        return
    old = path.with_name(f".{path.name}.replaced-{secrets.token_hex(4)}")
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
