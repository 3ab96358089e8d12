"""The run parameters are declared once (``savs.profiles.PARAMETERS``) and every way of setting them reads that
declaration: ``load_profile``'s keywords, a notebook's ``overrides``, the command-line steps' ``NAME=VALUE`` words,
make's variables (to papermill and to preflight / the extraction) and ``make help``."""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess

import pytest
import yaml

from savs import paths
from savs.classifier import SAVClassifier
from savs.profiles import PARAMETERS, ProfileError, add_profile_arguments, load_profile, misspelt, overrides_from

# A value for each parameter that differs from the mini profile's, and the profile field it must land in.
CHANGED = {
    "model": ("savs-mini-untrained", "models", ("savs-mini-untrained",)),
    "tasks": ("digits", "tasks", ("digits",)),
    "shots": ("3", "shots", 3),
    "seeds": ("4,5", "seeds", (4, 5)),
    "n_test": ("7", "n_test", 7),
    "baselines": ("knn", "baselines", None),  # checked apart: a dict of the kept baseline
    "dtype": ("bfloat16", "dtype", "bfloat16"),
    "n_heads": ("all", "n_heads", "all"),
    "metric": ("euclidean", "metric", "euclidean"),
    "scoring": ("cv", "scoring", "cv"),
    "selection": ("pursuit", "selection", "pursuit"),
    "voting": ("reliability", "voting", "reliability"),
    "readout": ("lda", "readout", "lda"),
}


def test_every_declared_parameter_is_exercised_here():
    assert set(CHANGED) == {p.name for p in PARAMETERS}


@pytest.mark.parametrize("name", [p.name for p in PARAMETERS])
def test_each_parameter_lands_in_its_field_the_same_way_from_every_route(name):
    value, field, expected = CHANGED[name]
    base = load_profile("mini")
    by_keyword = load_profile("mini", **{name: value})
    parser = argparse.ArgumentParser()
    add_profile_arguments(parser)
    args = parser.parse_args(["--profile", "mini", f"{name.upper()}={value}"])
    by_words = load_profile(args.profile, **overrides_from(args.overrides))
    by_notebook = load_profile("mini", **overrides_from({name.upper(): value}))
    assert by_keyword == by_words == by_notebook
    got = getattr(by_keyword, field)
    assert got != getattr(base, field)
    assert got == (expected if expected is not None else {"knn": base.baselines["knn"]})


def test_a_misspelt_parameter_is_refused_by_every_route():
    with pytest.raises(ProfileError, match="unknown parameter 'n_head'; known: MODEL, TASKS"):
        load_profile("mini", n_head=3)
    with pytest.raises(ProfileError, match="unknown parameter 'N_HEAD'"):
        overrides_from(["N_HEAD=3"])
    with pytest.raises(ProfileError, match="NAME=VALUE"):
        overrides_from(["N_HEADS"])


def test_an_empty_value_keeps_the_profiles():
    assert load_profile("mini", **overrides_from(["SEEDS=", "N_HEADS="])) == load_profile("mini")


def _parameters_cell(notebook) -> dict[str, object]:
    """The names a notebook's ``parameters`` cell assigns, with their values."""
    cells = json.loads(notebook.read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {t.id: ast.literal_eval(node.value) for node in tree.body for t in node.targets}


@pytest.mark.parametrize("notebook", sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_a_notebooks_parameters_are_a_profile_and_overrides(notebook):
    cell = _parameters_cell(notebook)
    assert cell["profile"] == "mini" and cell["overrides"] == {}
    assert not set(cell) & {p.name for p in PARAMETERS}, "a run parameter spelt out again in the notebook"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_passes_every_declared_parameter_to_papermill_and_the_command_line_steps():
    """Derived from the declaration: a parameter added to ``PARAMETERS`` is checked here without a new line."""
    values = {p.name.upper(): CHANGED[p.name][0] for p in PARAMETERS}
    dry = subprocess.run(["make", "-n", "shot-scaling", *(f"{k}={v}" for k, v in values.items())], cwd=paths.ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.replace("\\\n", " ").splitlines()
    (papermill,) = [line for line in lines if "papermill notebooks/02_shot_scaling.ipynb" in line]
    passed = yaml.safe_load(papermill.split("-y ", 1)[1].split(" 2>&1")[0].strip('"'))
    assert passed == {"overrides": values}
    words = " ".join(f"{k}={v}" for k, v in values.items())
    assert f"savs.preflight --profile mini {words}" in dry.stdout
    assert f"savs.distributed --profile mini {words}" in dry.stdout
    helped = subprocess.run(["make", "help"], cwd=paths.ROOT, capture_output=True, text=True).stdout
    for p in PARAMETERS:
        assert f"\n  {p.name.upper():<10} {p.help}\n" in helped


def test_savs_fit_takes_the_rules_parameters_as_options_checked_as_a_profile_would(capsys):
    from savs.cli import build_parser

    parser = build_parser()
    base = ["fit", "m", "d", "--shots", "2", "--out", "x"]
    defaults = vars(parser.parse_args(base))
    rule = [p for p in PARAMETERS if p.rule]
    changed = vars(parser.parse_args([*base, *(a for p in rule for a in (p.option, CHANGED[p.name][0]))]))
    for p in rule:
        assert defaults[p.name] == SAVClassifier().get_params()[p.name]  # the paper's rule
        assert changed[p.name] == CHANGED[p.name][2]
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--n-heads", "0"])
    assert "n_heads must be an int >= 1 or 'all'; got 0" in capsys.readouterr().err


def test_a_near_miss_of_a_parameter_is_named_and_makes_own_variables_are_not():
    own = re.findall(r"^([A-Za-z_]+) *[?:]?=", (paths.ROOT / "Makefile").read_text(), flags=re.M)  # PROFILE, ...
    assert "PROFILE" in own and "NOTEBOOK_JOBS" in own
    declared = [p.name.upper() for p in PARAMETERS]
    assert misspelt([*own, "SKIP_EXTRACT", "SAVS_CACHE", "OMP_NUM_THREADS", *declared]) == []
    assert misspelt(["N_HEAD", "SEED", "n_heads", "TASK"]) == [
        "N_HEAD (did you mean N_HEADS?)", "SEED (did you mean SEEDS?)", "n_heads (did you mean N_HEADS?)",
        "TASK (did you mean TASKS?)",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_stops_on_a_misspelt_parameter_before_anything_runs():
    done = subprocess.run(["make", "preflight", "N_HEAD=10"], cwd=paths.ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "N_HEAD (did you mean N_HEADS?)" in done.stderr
    assert "savs.preflight" not in done.stdout  # stopped before the run's first step
