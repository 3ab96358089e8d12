"""Reruns write the same bytes: figures carry no timestamps or version strings, executed notebooks lose their times,
widget ids and temporary names (``savs.nbclean``), and a wall-time column never reaches a table."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from savs import nbclean, plots, report


def figure() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 3, 2], label="a line")
    ax.set_title("same figure")
    ax.legend()
    return fig


def png_text_keys(data: bytes) -> list[str]:
    """The keywords of a PNG's tEXt/iTXt/zTXt chunks, and 'tIME' if it has a time chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    keys, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            keys.append(body.split(b"\x00")[0].decode())
        elif kind == b"tIME":
            keys.append("tIME")
        pos += 12 + length
    return keys


def test_a_figure_saved_twice_is_byte_identical_and_undated(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)  # matplotlib would use it as the date
    fig = figure()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    paths = plots.save(fig, "fig", first)
    plots.save(fig, "fig", second)
    for path in paths:
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name
    pdf = (first / "fig.pdf").read_bytes()
    assert b"/CreationDate" not in pdf and b"/ModDate" not in pdf
    assert matplotlib.__version__.encode() not in pdf  # no Producer "Matplotlib pdf backend v3.x"
    assert png_text_keys((first / "fig.png").read_bytes()) == []  # no Software, no tIME
    plt.close(fig)


def test_svg_saved_twice_is_byte_identical(tmp_path):
    fig = figure()
    plots.save_figure(fig, tmp_path / "a.svg")
    plots.save_figure(fig, tmp_path / "b.svg")
    a = (tmp_path / "a.svg").read_bytes()
    assert a == (tmp_path / "b.svg").read_bytes()
    assert b"<dc:date>" not in a and matplotlib.__version__.encode() not in a
    plt.close(fig)


def executed(start: str, seconds: float, model_id: str, tmp_name: str) -> dict:
    """A synthetic papermill-executed notebook whose volatile fields are the arguments."""
    cell_times = {"start_time": start, "end_time": start, "duration": seconds, "exception": False,
                  "status": "completed"}  # fmt: skip
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "papermill": {"start_time": start, "end_time": start, "duration": seconds,
                          "parameters": {"profile": "mini"}, "environment_variables": {"HOME": "/home/me"},
                          "exception": None, "version": "2.7.0"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {model_id: {"model_name": "x"}}}},
        },  # fmt: skip
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "execution_count": 1,
                "source": "run()",
                "metadata": {"tags": [], "papermill": dict(cell_times),
                             "execution": {"iopub.status.busy": start, "shell.execute_reply": start}},  # fmt: skip
                "outputs": [
                    {"output_type": "display_data", "metadata": {},
                     "data": {"application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2},
                              "text/plain": "heads: 0ex [00:00, ?ex/s]"}},
                    {"output_type": "stream", "name": "stdout",
                     "text": [f"savs-mini | digits | SAVs | 20 shots | seed 0: {seconds:.1f} s\n",
                              f"notebook ran in {seconds:.0f} s; work in /tmp/{tmp_name}\n", "accuracy 61.5 %\n"]},
                    {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                     "data": {"text/plain": f"PosixPath('/tmp/{tmp_name}/products')"}},
                ],  # fmt: skip
            },
            {"cell_type": "markdown", "id": "m1", "source": "Done in 3 s, 20 shots.",
             "metadata": {"papermill": dict(cell_times)}},  # fmt: skip
        ],
    }


def test_a_progress_bar_keeps_its_description_whatever_the_cache_held():
    """A cold run's bar ("0/100") and a warm run's ("0ex") must not make the executed notebooks differ."""
    cold = executed("2026-12-06T08:00:00Z", 1.23, "aaaa1111", "savs-own-task-my9z6uuz")
    warm = executed("2026-12-06T08:00:00Z", 1.23, "aaaa1111", "savs-own-task-my9z6uuz")
    cold["cells"][0]["outputs"][0]["data"]["text/plain"] = "heads:   0%|          | 0/100 [00:00<?, ?ex/s]"
    assert json.dumps(nbclean.clean(cold), sort_keys=True) == json.dumps(nbclean.clean(warm), sort_keys=True)


def test_cleaning_makes_two_runs_identical_and_keeps_the_rest():
    a = nbclean.clean(executed("2026-12-06T08:00:00Z", 1.23, "aaaa1111", "savs-own-task-my9z6uuz"))
    b = nbclean.clean(executed("2026-12-07T09:30:00Z", 7.0, "bbbb2222", "savs-own-task-k_3x0q1a"))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    pm = a["metadata"]["papermill"]
    assert pm["start_time"] is pm["end_time"] is pm["duration"] is None and pm["environment_variables"] == {}
    assert pm["parameters"] == {"profile": "mini"} and "widgets" not in a["metadata"]
    code = a["cells"][0]
    assert "execution" not in code["metadata"] and code["metadata"]["papermill"]["status"] == "completed"
    assert code["execution_count"] == 1
    widget, stream, result = code["outputs"]
    assert widget["data"] == {"text/plain": "heads: (progress bar)"}
    assert stream["text"] == [
        "savs-mini | digits | SAVs | 20 shots | seed 0: … s\n",  # "20 shots" is not a duration
        "notebook ran in … s; work in /tmp/savs-own-task-XXXXXXXX\n",
        "accuracy 61.5 %\n",
    ]
    assert result["data"]["text/plain"] == "PosixPath('/tmp/savs-own-task-XXXXXXXX/products')"
    assert a["cells"][1]["source"] == "Done in 3 s, 20 shots."  # sources are never touched


def test_consecutive_prints_are_merged_however_the_buffer_flushed():
    one_flush = [{"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n", "c"]}]
    two_flushes = [
        {"output_type": "stream", "name": "stdout", "text": ["a\n", "b"]},
        {"output_type": "stream", "name": "stdout", "text": "\nc"},
    ]
    nbs = [{"nbformat": 4, "metadata": {}, "cells": [{"cell_type": "code", "metadata": {}, "outputs": outputs}]}
           for outputs in (one_flush, two_flushes)]  # fmt: skip
    a, b = (nbclean.clean(nb)["cells"][0]["outputs"] for nb in nbs)
    assert a == b == [{"output_type": "stream", "name": "stdout", "text": ["a\n", "b\n", "c"]}]
    mixed = [
        {"output_type": "stream", "name": "stdout", "text": "x\n"},
        {"output_type": "stream", "name": "stderr", "text": "warning\n"},
        {"output_type": "display_data", "metadata": {}, "data": {"text/plain": "d"}},
        {"output_type": "stream", "name": "stdout", "text": "y\n"},
    ]
    nb = {"nbformat": 4, "metadata": {}, "cells": [{"cell_type": "code", "metadata": {}, "outputs": mixed}]}
    assert [o.get("name") for o in nbclean.clean(nb)["cells"][0]["outputs"]] == ["stdout", "stderr", None, "stdout"]


def test_clean_file_is_idempotent_and_refuses_a_non_notebook(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(executed("2026-12-06T08:00:00Z", 2.0, "cc", "savs-x-abcdefgh")))
    nbclean.main([str(path)])
    once = path.read_bytes()
    nbclean.main([str(path)])
    assert path.read_bytes() == once and once.endswith(b"\n")
    other = tmp_path / "other.ipynb"
    other.write_text(json.dumps({"cells": "no"}))
    with pytest.raises(ValueError, match="not an nbformat-4 notebook"):
        nbclean.clean_file(other)
    assert json.loads(other.read_text()) == {"cells": "no"}


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "execution_count": None,
         "outputs": [], "source": "n = 3"},  # fmt: skip
        {"cell_type": "code", "id": "r", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import tempfile, time\nfrom tqdm.auto import tqdm\nt = time.perf_counter()\n"
                   "for _ in tqdm(range(n)): time.sleep(0.01)\nd = tempfile.mkdtemp(prefix='savs-nb-')\n"
                   "print(f'ran in {time.perf_counter() - t:.3f} s in {d}')\nn * 2"},  # fmt: skip
    ],
}


def test_a_notebook_run_twice_by_papermill_cleans_to_the_same_bytes(tmp_path):
    source = tmp_path / "nb.ipynb"
    source.write_text(json.dumps(NOTEBOOK))
    runs, out = [], tmp_path / "executed.ipynb"  # one output path, as make's rule has
    for _ in range(2):
        cmd = [sys.executable, "-m", "papermill", str(source), str(out), "-k", "python3", "--no-progress-bar",
               "-p", "n", "4"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        raw = out.read_text()
        nbclean.clean_file(out)
        runs.append((raw, out.read_text()))
    (raw1, clean1), (raw2, clean2) = runs
    assert raw1 != raw2  # papermill's times differ: the cleaning is what makes them equal
    assert clean1 == clean2
    assert "ran in … s in" in clean1 and '"8"' in clean1  # the result itself is kept


def test_a_wall_time_column_is_not_written(tmp_path):
    df = pd.DataFrame({"method": ["SAVs"], "accuracy": [61.5], "seconds": [0.0333]})
    report.write_table(df, "t", tmp_path, "caption")
    assert list(pd.read_csv(tmp_path / "t.csv").columns) == ["method", "accuracy"]
    assert "seconds" in df  # the caller's frame is left alone
