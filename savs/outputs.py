"""Writing the ``savs`` command's outputs safely: checked before anything loads, locked while written, atomic.

``check_output`` refuses an output path that cannot be written (a folder where a file goes, a regular file among its
parents) before a model loads, not after an extraction; ``lock_output`` keeps two ``savs fit`` runs from writing one
folder at once; ``write_atomic`` writes a file beside its target and renames it over, leaving nothing behind if
either step fails. Each raises an ``OutputError`` (a ValueError: the command's exit status 2).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
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


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` into a hidden file beside ``path``, then rename it onto ``path``; the hidden file is removed if
    either step fails, so a failed write leaves neither half a file nor a ``.tmp``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
