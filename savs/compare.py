"""Did this run reproduce the committed one? Per table of ``results/`` (CSV), the cells that differ from the committed
version (git's, ``HEAD`` by default) and how many test examples each difference is, then one verdict line.

An accuracy is a share of ``n_test`` test examples, so a difference converts back to examples: ``|delta| / 100 *
n_test`` for one seed's accuracy (a bootstrap interval's bounds alike), times ``n_seeds`` for a mean over seeds. The
verdict:

- **reproduced exactly**: every cell equal;
- **reproduced within N test examples**: every accuracy cell within ``TOLERANCE`` examples of the committed one; cells
  that follow from the same features or predictions but are not counts of examples (``FOLLOW_ON_COLUMNS``: a
  standard deviation over seeds, a log loss, a head's score and rank, a read-out's fitted regularization; a metric
  other than accuracy) may differ too, and are counted;
- **not reproduced**: an accuracy cell further off, or a table whose rows, columns or labels differ (listed).

``TOLERANCE`` is measured, not guessed: the README's "Reproduced?" section says how.

    python -m savs.compare [--ref HEAD] [--results DIR] [--tolerance N]
"""

from __future__ import annotations

import argparse
import io
import math
import numbers
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from savs import paths
from savs.report import WALL_TIME_COLUMNS

# Test examples an accuracy cell may move by and still count as reproduced (README, "Reproduced?").
TOLERANCE = 12
# Columns holding an accuracy in percent of the row's n_test test examples (per seed, or a mean with n_seeds).
ACCURACY_COLUMNS = ("accuracy", "ci_low", "ci_high", "mean")
# Columns holding an accuracy only where the row's `metric` column says so; under another metric (a group accuracy,
# a VQA score: shares of units other than test examples) a follow-on number.
METRIC_VALUE = "value"
# Numeric columns that follow from the features or the predictions without counting test examples: a spread, a log
# loss, a head's score and place, a read-out's fitted regularization (a Ledoit-Wolf shrinkage, a cross-validated C),
# and the architecture sweep's measured float difference and planted-task accuracy (a share, with no n_test).
FOLLOW_ON_COLUMNS = ("std", "log_loss", "log_loss_calibrated", "score", "rank", "layer", "head", "regularization",
                     "max_rel_diff", "fit_accuracy")  # fmt: skip
MAX_LISTED = 10  # cells the verdict line names
FLOAT_EQUAL = 1e-9  # relative: the same number written through another float path


@dataclass
class Cell:
    """One differing cell: its row (0-based, data rows), column, both values, and the test examples it is (None:
    not an accuracy)."""

    row: int
    column: str
    committed: object
    now: object
    examples: float | None

    def __str__(self) -> str:
        off = f" ({self.examples:g} test examples)" if self.examples is not None else ""
        return f"row {self.row + 2} {self.column}: {self.committed} -> {self.now}{off}"


@dataclass
class TableDiff:
    """How one table compares with its committed version."""

    name: str
    problem: str | None = None  # a structural difference: missing, other columns, rows or labels
    cells: list[Cell] = field(default_factory=list)

    @property
    def max_examples(self) -> float:
        return max((c.examples for c in self.cells if c.examples is not None), default=0.0)

    def line(self) -> str:
        """One line for the table: equal, or how many cells differ and by how much."""
        if self.problem:
            return f"{self.name}: {self.problem}"
        if not self.cells:
            return f"{self.name}: identical"
        accuracy = [c for c in self.cells if c.examples is not None]
        other = len(self.cells) - len(accuracy)
        parts = []
        if accuracy:
            parts.append(f"{len(accuracy)} accuracy cells differ, by at most {self.max_examples:g} test examples")
        if other:
            parts.append(f"{other} other cells differ (follow from the predictions)")
        return f"{self.name}: " + "; ".join(parts)


def _examples(delta: float, row: pd.Series, column: str) -> float | None:
    """A difference of ``delta`` percentage points in ``column`` of ``row`` as test examples; None when the table
    does not say how many test examples the cell is over."""
    n = row.get("n_test")
    if n is None or pd.isna(n):
        return None
    seeds = row.get("n_seeds", 1) if column == "mean" else 1
    seeds = 1 if seeds is None or pd.isna(seeds) else seeds
    return round(abs(delta) / 100 * float(n) * float(seeds), 3)


def _is_accuracy(column: str, row: pd.Series) -> bool:
    if column in ACCURACY_COLUMNS:
        return True
    return column == METRIC_VALUE and row.get("metric") == "accuracy"


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _equal(a: object, b: object) -> bool:
    """Equal cells: the same label, both empty, or the same number (up to ``FLOAT_EQUAL``)."""
    if _number(a) and _number(b):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= FLOAT_EQUAL * max(1.0, abs(a), abs(b))
    return a == b


def compare_tables(name: str, committed: pd.DataFrame, now: pd.DataFrame) -> TableDiff:
    """Cell by cell (rows in order: the notebooks write them deterministically); wall-time columns are left out."""
    diff = TableDiff(name)
    committed, now = (t.drop(columns=list(WALL_TIME_COLUMNS), errors="ignore") for t in (committed, now))
    if list(committed.columns) != list(now.columns):
        diff.problem = f"columns differ: {list(committed.columns)} -> {list(now.columns)}"
        return diff
    if len(committed) != len(now):
        diff.problem = f"{len(committed)} rows committed, {len(now)} now"
        return diff
    for i in range(len(now)):
        old, new = committed.iloc[i], now.iloc[i]
        for column in now.columns:
            a, b = (v.item() if hasattr(v, "item") else v for v in (old[column], new[column]))  # numpy -> Python
            if _equal(a, b):
                continue
            numeric = _number(a) and _number(b)
            if numeric and _is_accuracy(column, new):
                diff.cells.append(Cell(i, column, a, b, _examples(float(b) - float(a), new, column)))
            elif numeric and (column in FOLLOW_ON_COLUMNS or column == METRIC_VALUE):
                diff.cells.append(Cell(i, column, a, b, None))
            else:  # a label, a count or a setting: not the same experiment
                diff.problem = f"row {i + 2} {column}: {a!r} -> {b!r} (not a number that noise can move)"
                return diff
    return diff


def committed_table(name: str, ref: str, root: Path) -> pd.DataFrame | None:
    """``results/<name>`` as committed at ``ref`` (None: not there)."""
    done = subprocess.run(["git", "show", f"{ref}:results/{name}"], cwd=root, capture_output=True, text=True)
    return pd.read_csv(io.StringIO(done.stdout)) if done.returncode == 0 else None


def committed_names(ref: str, root: Path) -> list[str]:
    """The CSV tables under ``results/`` at ``ref``."""
    done = subprocess.run(["git", "ls-tree", "--name-only", f"{ref}:results"], cwd=root, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return sorted(n for n in done.stdout.split() if n.endswith(".csv"))


def verdict(diffs: Sequence[TableDiff], tolerance: float) -> str:
    """The one-line answer."""
    bad = [d for d in diffs if d.problem]
    far = [c for d in diffs for c in d.cells if c.examples is not None and c.examples > tolerance]
    if bad or far:
        listed = [f"{d.name} ({d.problem})" for d in bad]
        listed += [f"{d.name} {c}" for d in diffs for c in d.cells if c in far]
        more = f"; and {len(listed) - MAX_LISTED} more (--verbose)" if len(listed) > MAX_LISTED else ""
        return "not reproduced: " + "; ".join(listed[:MAX_LISTED]) + more
    if not any(d.cells for d in diffs):
        return "reproduced exactly"
    worst = max(d.max_examples for d in diffs)
    return f"reproduced within {worst:g} test examples (tolerance {tolerance:g}, README: Reproduced?)"


def compare(results: Path, ref: str = "HEAD", root: Path | None = None) -> list[TableDiff]:
    """Every table committed at ``ref`` (in the repository at ``root``, default this one) against its file in
    ``results``."""
    root, diffs = root or paths.ROOT, []
    for name in committed_names(ref, root):
        committed, path = committed_table(name, ref, root), results / name
        if not path.exists():
            diffs.append(TableDiff(name, problem="missing from this run"))
            continue
        diffs.append(compare_tables(name, committed, pd.read_csv(path)))
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare results/ with the committed tables; print a verdict.")
    parser.add_argument("--ref", default="HEAD", help="the git revision holding the committed tables (HEAD)")
    parser.add_argument("--results", type=Path, default=None, help="this run's tables ($SAVS_RESULTS, else results/)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="test examples a cell may move by")
    parser.add_argument("--verbose", action="store_true", help="list every differing cell")
    args = parser.parse_args(argv)
    diffs = compare(paths.results_dir(args.results), args.ref)
    for d in diffs:
        print(d.line())
        if args.verbose or d.cells and len(d.cells) <= 5:
            for c in d.cells:
                print(f"    {c}")
    line = verdict(diffs, args.tolerance)
    print(f"compared with {args.ref}: {line}")
    return 0 if not line.startswith("not") else 1


if __name__ == "__main__":
    raise SystemExit(main())
