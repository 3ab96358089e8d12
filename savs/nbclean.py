"""Strip what changes from run to run out of an executed notebook, so a rerun that computes the same numbers writes
the same bytes (and ``git status`` stays clean).

papermill and Jupyter record when each cell ran and for how long, the kernel's widget models (random ids, and a
progress bar's final state holds its elapsed time and rate), and a random id for the parameters cell papermill
injects; a cell's printed text is split into outputs wherever the kernel's buffer flushed; the notebooks print their
own timings and a temporary folder's random name. This keeps everything else: the cells, their outputs (consecutive
prints merged), execution counts (which are deterministic), each cell's papermill status and exception.
``make`` runs it on every notebook papermill executes:

    python -m savs.nbclean notebooks/executed/01_main_results.ipynb [...]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from savs.outputs import atomic_write

# papermill's timing fields, on the notebook and on each cell
PAPERMILL_TIMES = ("start_time", "end_time", "duration")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PROGRESS_BAR = "(progress bar)"  # what is kept of a widget's plain text after its description
# A duration the notebooks print ("seed 0: 1.2 s", "notebook ran in 11 s;"): a number and " s" ending a word.
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)? s\b")
ELIDED_DURATION = "… s"
# A folder from tempfile.mkdtemp(prefix="savs-...-"): the prefix and 8 random characters.
TEMP_NAME = re.compile(r"\b(savs-[a-z0-9-]*-)[a-z0-9_]{8}\b")
ELIDED_TEMP = r"\1XXXXXXXX"


def clean_text(text: str) -> str:
    """``text`` with printed durations and temporary-folder names elided."""
    return TEMP_NAME.sub(ELIDED_TEMP, DURATION.sub(ELIDED_DURATION, text))


def clean(nb: dict[str, Any]) -> dict[str, Any]:
    """Remove the volatile fields of executed notebook ``nb`` (nbformat 4 JSON, changed in place and returned)."""
    meta = nb.get("metadata", {})
    meta.pop("widgets", None)  # widget models: random ids; progress bars' final text holds times
    if "papermill" in meta:
        for key in PAPERMILL_TIMES:
            meta["papermill"][key] = None
        meta["papermill"]["environment_variables"] = {}
    for cell in nb.get("cells", []):
        cell_meta = cell.get("metadata", {})
        if "injected-parameters" in cell_meta.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill draws a random id for the cell it adds
        cell_meta.pop("execution", None)  # Jupyter's per-message timestamps
        for key in PAPERMILL_TIMES:
            if key in cell_meta.get("papermill", {}):
                cell_meta["papermill"][key] = None
        if "outputs" in cell:
            cell["outputs"] = _coalesced(cell["outputs"])
        for output in cell.get("outputs", []):
            _clean_output(output)
    return nb


def _coalesced(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive stream outputs of one stream merged into one, its text split into lines as nbformat writes it:
    where the kernel's output buffer happened to flush, which varies from run to run, no longer shows."""
    merged: list[dict[str, Any]] = []
    for output in outputs:
        if output.get("output_type") == "stream":
            text = output["text"] if isinstance(output["text"], str) else "".join(output["text"])
            last = merged[-1] if merged else None
            if last is not None and last.get("output_type") == "stream" and last.get("name") == output.get("name"):
                last["text"] = "".join(last["text"]) + text
            else:
                merged.append({**output, "text": text})
        else:
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = output["text"].splitlines(keepends=True)
    return merged


def _clean_output(output: dict[str, Any]) -> None:
    """One output: a widget's view (a random model id) is dropped and its plain-text form becomes its description (a
    progress bar's counts and rates depend on what the cache held and how fast the run went); printed text loses its
    durations and temporary names, a displayed object's text its temporary names."""
    if output.get("output_type") == "stream":
        output["text"] = _map_lines(clean_text, output["text"])
    data = output.get("data", {})
    if data.pop(WIDGET_VIEW, None) is not None and "text/plain" in data:
        text = data["text/plain"] if isinstance(data["text/plain"], str) else "".join(data["text/plain"])
        data["text/plain"] = f"{text.split(': ', 1)[0]}: {PROGRESS_BAR}" if ": " in text else PROGRESS_BAR
    for mime in ("text/plain", "text/html", "text/markdown"):
        if mime in data:
            data[mime] = _map_lines(lambda t: TEMP_NAME.sub(ELIDED_TEMP, t), data[mime])


def _map_lines(fn: Callable[[str], str], text: str | list[str]) -> str | list[str]:
    """``fn`` on a notebook string, which is one string or a list of lines."""
    return fn(text) if isinstance(text, str) else [fn(line) for line in text]


def clean_file(path: str | Path) -> None:
    """Clean the executed notebook at ``path`` in place, written as nbformat writes it (1-space indent, a final
    newline); refuses a file that is not a notebook rather than rewriting it."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path} is not an nbformat-4 notebook")
    text = json.dumps(clean(nb), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write(path, text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Strip run-to-run fields (times, widget ids) from executed notebooks.")
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args(argv).notebooks:
        clean_file(path)


if __name__ == "__main__":
    main()
