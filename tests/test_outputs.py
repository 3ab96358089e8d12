"""The one atomic writer (``savs.outputs``): a file or folder is replaced whole or not at all, and a write that fails
midway leaves the old content and no temporary behind."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from savs.outputs import atomic_dir, atomic_path, atomic_write, set_aside


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_writes_bytes_and_text_and_replaces(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, "héllo")
    assert target.read_bytes() == "héllo".encode()
    atomic_write(target, b"\x00\x01", sync=True)
    assert target.read_bytes() == b"\x00\x01" and listing(tmp_path) == ["a.json"]


def test_an_exception_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half of the n")
        assert tmp.parent == tmp_path and tmp.name.startswith(".report.json.") and tmp.name.endswith(".tmp")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and listing(tmp_path) == ["report.json"]


def test_a_failed_rename_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "heads.safetensors"
    (target / "inside").mkdir(parents=True)  # a full folder where the file goes: the rename itself fails
    with pytest.raises(IsADirectoryError):
        atomic_write(target, b"data")
    assert listing(tmp_path) == ["heads.safetensors"] and listing(target) == ["inside"]


def test_a_temporary_never_written_is_no_error_to_clean_up(tmp_path):
    with pytest.raises(ValueError, match="nothing written"), atomic_path(tmp_path / "x") as tmp:
        raise ValueError(f"nothing written to {tmp}")
    assert listing(tmp_path) == []


def test_concurrent_writers_each_use_their_own_temporary(tmp_path):
    """Threads of one process writing one file: each temporary is its own (a pid-only name was shared), and the
    file ends whole, one writer's content."""
    target = tmp_path / "memo"
    contents = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(target, c)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in contents and listing(tmp_path) == ["memo"]


def test_atomic_dir_builds_beside_and_renames_in(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out, sync=True) as new:
        assert new.parent == tmp_path and new.name.startswith(".model.")
        (new / "config.json").write_text("{}")
        assert not out.exists()
    assert listing(out) == ["config.json"] and listing(tmp_path) == ["model"]


def test_atomic_dir_failing_midway_leaves_the_old_folder(tmp_path):
    out = tmp_path / "sav"
    out.mkdir()
    (out / "a").write_text("old")
    with pytest.raises(OSError, match="No space"), atomic_dir(out, replace=True) as new:
        (new / "a").write_text("new")
        raise OSError("No space left on device")
    assert (out / "a").read_text() == "old" and listing(tmp_path) == ["sav"]


def test_atomic_dir_replaces_whole_or_refuses(tmp_path):
    out = tmp_path / "sav"
    out.mkdir()
    (out / "old-only").write_text("old")
    with pytest.raises(OSError, match="not empty"), atomic_dir(out) as new:  # another process built it first
        (new / "a").write_text("new")
    assert listing(out) == ["old-only"] and listing(tmp_path) == ["sav"]
    with atomic_dir(out, replace=True) as new:
        (new / "a").write_text("new")
    assert listing(out) == ["a"] and listing(tmp_path) == ["sav"]
    (tmp_path / "file").write_text("a file where the folder goes")
    with atomic_dir(tmp_path / "file", replace=True) as new:
        (new / "b").write_text("new")
    assert listing(tmp_path / "file") == ["b"] and listing(tmp_path) == ["file", "sav"]


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "sav"
    out.mkdir()
    (out / "a").write_text("old")
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.endswith(".tmp"):  # the new folder's rename onto the place
            raise OSError("Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="Input/output"), atomic_dir(out, replace=True) as new:
        (new / "a").write_text("new")
    monkeypatch.undo()
    assert (out / "a").read_text() == "old" and listing(tmp_path) == ["sav"] and set_aside(out) == []


def test_a_figure_or_table_that_fails_midway_leaves_the_old_one(tmp_path, monkeypatch):
    """The notebooks' outputs go through the one writer too: a figure whose drawing fails halfway, or a table whose
    CSV cannot be made, leaves the committed file as it was and no temporary beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from savs import plots, report

    png, csv = tmp_path / "fig.png", tmp_path / "t.csv"
    png.write_bytes(b"old figure")
    csv.write_text("old table\n")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    original = fig.savefig

    def half_then_fail(path, **kw):
        original(path, **kw)
        raise RuntimeError("disk full")

    fig.savefig = half_then_fail
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(fig, png)
    fig.savefig = original
    plots.save_figure(fig, png)
    assert png.read_bytes().startswith(b"\x89PNG")
    def no_space(self, *args, **kw):
        raise OSError("no space")

    monkeypatch.setattr(pd.DataFrame, "to_csv", no_space)  # a CSV that cannot be made
    with pytest.raises(OSError, match="no space"):
        report.write_table(pd.DataFrame({"a": [1]}), "t", tmp_path, "caption")
    assert csv.read_text() == "old table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "t.csv"]
    plt.close(fig)
