"""``savs.compare``: per table, the cells that differ from the committed version in test examples, and one verdict,
checked on a throwaway git repository holding known tables."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from savs import compare, paths

SHOTS = pd.DataFrame({
    "model": ["m", "m", "m"], "task": ["t", "t", "u"], "method": ["SAVs"] * 3, "seed": [0, 1, 0],
    "n_test": [200, 200, 50], "accuracy": [61.5, 63.0, 40.0], "seconds": [0.1, 0.2, 0.3],
})  # fmt: skip
SUMMARY = pd.DataFrame({"model": ["m"], "task": ["t"], "mean": [62.25], "std": [1.06], "n_seeds": [2], "n_test": [200]})


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git repository with results/shots.csv and results/summary.csv committed."""
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    SHOTS.to_csv(root / "results" / "shots.csv", index=False)
    SUMMARY.to_csv(root / "results" / "summary.csv", index=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "results"], check=True)
    subprocess.run([*git, "commit", "-qm", "tables"], check=True)
    return root


def run(repo: Path, shots: pd.DataFrame = SHOTS, summary: pd.DataFrame = SUMMARY) -> tuple[list, str]:
    """This run's tables written to a results dir of their own, compared with the repo's HEAD."""
    out = repo.parent / "run"
    out.mkdir(exist_ok=True)
    shots.to_csv(out / "shots.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    diffs = compare.compare(out, "HEAD", repo)
    return diffs, compare.verdict(diffs, tolerance=1)


def test_identical_tables_are_reproduced_exactly_whatever_the_wall_times(repo):
    diffs, line = run(repo, SHOTS.assign(seconds=[9.0, 9.0, 9.0]))
    assert line == "reproduced exactly"
    assert [d.line() for d in diffs] == ["shots.csv: identical", "summary.csv: identical"]


def test_a_difference_is_counted_in_test_examples_of_its_row(repo):
    moved = SHOTS.copy()
    moved.loc[0, "accuracy"] = 62.0  # +0.5 points of 200 examples: one example
    moved.loc[2, "accuracy"] = 38.0  # -2 points of 50 examples: one example
    diffs, line = run(repo, moved)
    assert [c.examples for c in diffs[0].cells] == [1.0, 1.0]
    assert diffs[0].line() == "shots.csv: 2 accuracy cells differ, by at most 1 test examples"
    assert line.startswith("reproduced within 1 test examples")


def test_a_mean_over_seeds_counts_every_seeds_examples(repo):
    moved = SUMMARY.assign(mean=[62.25 + 0.5], std=[1.5])  # +0.5 points of a mean over 2 x 200: two examples
    diffs, line = run(repo, summary=moved)
    mean, std = diffs[1].cells
    assert (mean.column, mean.examples, std.column, std.examples) == ("mean", 2.0, "std", None)
    assert diffs[1].line() == (
        "summary.csv: 1 accuracy cells differ, by at most 2 test examples; 1 other cells differ (follow from the "
        "predictions)"
    )
    assert line.startswith("not reproduced: summary.csv row 2 mean: 62.25 -> 62.75 (2 test examples)")
    assert compare.verdict(diffs, tolerance=2).startswith("reproduced within 2 test examples")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.assign(method=["SAVs", "SAVs", "ICL"]), "row 4 method: 'SAVs' -> 'ICL'"),
        (lambda t: t.assign(n_test=[200, 200, 60]), "row 4 n_test: 50 -> 60"),
        (lambda t: t.iloc[:2], "3 rows committed, 2 now"),
        (lambda t: t.drop(columns="task"), "columns differ"),
    ],
)
def test_another_experiment_is_not_reproduced(repo, change, problem):
    diffs, line = run(repo, change(SHOTS))
    assert problem in diffs[0].problem and line.startswith("not reproduced: shots.csv (")


def test_a_missing_table_is_not_reproduced_and_main_exits_1(repo, capsys, monkeypatch):
    out = repo.parent / "run"
    out.mkdir()
    SHOTS.to_csv(out / "shots.csv", index=False)
    monkeypatch.setattr(compare.paths, "ROOT", repo)
    assert compare.main(["--results", str(out)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["summary.csv: missing from this run",
                            "compared with HEAD: not reproduced: summary.csv (missing from this run)"]  # fmt: skip


def test_a_fitted_number_moved_by_float_noise_is_counted_not_a_problem():
    # An LDA read-out's Ledoit-Wolf shrinkage as another CPU moved it in the 7th digit (2-core Xeon, 2026-12-08).
    committed = SHOTS.assign(regularization=[0.21634464825705013, 1.0, 0.1])
    now = committed.assign(regularization=[0.2163444344586539, 1.0, 0.1])
    diff = compare.compare_tables("readouts.csv", committed, now)
    assert diff.problem is None and [(c.column, c.examples) for c in diff.cells] == [("regularization", None)]
    assert compare.verdict([diff], tolerance=1).startswith("reproduced within 0 test examples")


def test_a_metric_other_than_accuracy_is_counted_not_a_problem():
    # NaturalBench's group accuracy, a share of question groups rather than of test examples.
    committed = pd.DataFrame({"task": ["t"] * 2, "n_test": [200] * 2, "metric": ["accuracy", "g_acc"],
                              "value": [60.0, 30.0]})  # fmt: skip
    diff = compare.compare_tables("main_results.csv", committed, committed.assign(value=[60.0, 32.5]))
    assert diff.problem is None and [(c.column, c.examples) for c in diff.cells] == [("value", None)]


def test_every_computed_number_of_the_committed_tables_is_one_compare_knows():
    """A computed column with fractional values that is neither an accuracy nor a follow-on column would make any
    rerun on another CPU 'not reproduced' (its float noise read as another experiment)."""
    unknown = {}
    for path in sorted((paths.ROOT / "results").glob("*.csv")):
        if path.stem == paths.MAIN_PAPER:  # the paper's numbers, copied, not computed here
            continue
        table = pd.read_csv(path)
        for column in table.select_dtypes("number").columns:
            values = table[column].dropna()
            known = (*compare.ACCURACY_COLUMNS, *compare.FOLLOW_ON_COLUMNS, compare.METRIC_VALUE)
            if (values != values.round()).any() and column not in known:
                unknown.setdefault(path.name, []).append(column)
    assert unknown == {}
