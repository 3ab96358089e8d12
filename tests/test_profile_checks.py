"""A profile or override that cannot run is a ``ProfileError`` naming the field, in milliseconds, before any model
or data set loads (``load_profile``, which preflight, the extraction step and the notebooks all go through), and
exit status 2 from preflight; a misspelt PROFILE stops every make target that reads it."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from savs import paths
from savs.experiments import main_plan
from savs.preflight import main
from savs.profiles import ProfileError, load_profile


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"seeds": "a"}, "seeds must be whole numbers; got 'a'"),
        ({"seeds": "0,0"}, r"seeds lists 0 more than once: \[0, 0\]"),
        ({"seeds": "-1"}, "seeds must be an int >= 0; got -1"),
        ({"n_heads": "abc"}, "n_heads must be an int >= 1 or 'all'; got 'abc'"),
        ({"shots": "x"}, "shots must be whole numbers; got 'x'"),
        ({"shots": 0}, "shots must be an int >= 1; got 0"),
        ({"n_test": 0}, "n_test must be an int >= 1 or null; got 0"),
        ({"tasks": "nope"}, r"unknown tasks \['nope'\]; known tasks: .*digits, .*fashion_mnist"),
        ({"tasks": "digits,digits"}, "tasks lists digits more than once"),
        ({"tasks": " , "}, "tasks is empty"),
        ({"model": "savs-mini,savs-mini"}, "models lists savs-mini more than once"),
        ({"device": "gpu"}, "device must be cpu, cuda, cuda:<index>, mps or null .*got 'gpu'"),
        ({"dtype": "fp16"}, "dtype must be one of"),
    ],
)
def test_bad_overrides_are_named(override, message):
    start = time.perf_counter()
    with pytest.raises(ProfileError, match=message):
        load_profile("mini", **override)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("tasks: []", "tasks is empty"),
        ("models: []", "models is empty"),
        ("seeds: [0, 0]", "seeds lists 0 more than once"),
        ("batch_size: 0", "batch_size must be an int >= 1; got 0"),
        ("dtype: fp16", "dtype must be one of"),
        ("dtype: {savs-mini: fp16}", "dtype must be one of"),
        ("device: gpu", "device must be cpu"),
        ("n_train: 0", "n_train must be an int >= 1 or null"),
        ("head_sparsity: {grid: [0, 10]}", r"head_sparsity.grid \(heads\) must be an int >= 1; got 0"),
        ("head_sparsity: {grid: [abc]}", "a study's grid must be whole numbers; got 'abc'"),
        ("head_sparsity: {grid: [10, 10]}", "head_sparsity.grid lists 10 more than once"),
        ("shot_scaling: {grid: [all]}", r"shot_scaling.grid \(shots\) must be an int >= 1; got 'all'"),
        ("shot_scaling: {methods: [SAV]}", r"shot_scaling.methods: unknown \['SAV'\]"),
        ("cross_task: {tasks: [digitz]}", r"cross_task.tasks: unknown tasks \['digitz'\]"),
        ("baselines: {knn: {n_test: 0}}", "baselines.knn.n_test must be an int >= 1 or null; got 0"),
        ("baselines: {knn: {tasks: [nope]}}", r"baselines.knn.tasks: unknown tasks \['nope'\]"),
        ("task_options: {fashion_mnist: {n_trian: 5}}", r"task_options.fashion_mnist: unknown options \['n_trian'\]"),
        ("task_options: {flowers102: {pool_min_per_clas: 20}}", r"unknown options \['pool_min_per_clas'\]"),
        ("task_options: {nope: {}}", r"task_options: unknown tasks \['nope'\]"),
        ("seeds: [a]", "seeds must be whole numbers; got 'a'"),
        ("baselines: {lora: {epoch: 2}}", r"baselines.lora: unknown options \['epoch'\]; it takes \[.*'epochs'"),
        ("baselines: {mtv: {step: 3}}", r"baselines.mtv: unknown options \['step'\]"),
        ("baselines: {zero_shot: {max_tokens: 8}}", r"baselines.zero_shot: unknown options \['max_tokens'\]"),
        ("baselines: {knn: {k: 5}}", r"baselines.knn takes no options .* got \['k'\]"),
    ],
)
def test_bad_profile_values_are_named(tmp_path, yaml, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: mini\n{yaml}\n")
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_known_task_options_pass():
    path = paths.PROFILES / "paper.yaml"  # flowers102: {pool_min_per_class: 20}, passed on to its family's builder
    assert load_profile(path).task_options["flowers102"] == {"pool_min_per_class": 20}


def test_a_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("extends: mini\ntasks: [digits\n")
    with pytest.raises(ProfileError, match=f"{path} is not valid YAML"):
        load_profile(path)
    path.write_text("- a list\n")
    with pytest.raises(ProfileError, match="must hold a mapping"):
        load_profile(path)


def test_extends_is_read_from_the_profiles_folder(tmp_path, monkeypatch):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "base.yaml").write_text("extends: mini\nshots: 7\n")
    (folder / "child.yaml").write_text("extends: base.yaml\nseeds: [4]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    p = load_profile(folder / "child.yaml")
    assert (p.shots, p.seeds) == (7, (4,))
    (folder / "child.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ProfileError, match=f"{folder / 'child.yaml'}: extends: profile file {folder / 'missing.yaml'}"):
        load_profile(folder / "child.yaml")


def test_ablation_models_without_zero_shot_run_the_rest():
    """Baselines without zero-shot, ablation models set: the ablation rows skip zero-shot (was KeyError 'zero_shot')."""
    profile = load_profile("smoke", baselines="linear_probe")
    ablation = [(m, methods) for m, _, methods, _ in main_plan(profile) if m in profile.ablation_models]
    assert ablation and all(methods == ["all heads vote", "SAVs"] for _, methods in ablation)
    full = load_profile("smoke")
    assert all("zero-shot" in methods for m, _, methods, _ in main_plan(full) if m in full.ablation_models)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["SEEDS=a"], "seeds must be whole numbers"),
        (["N_HEADS=abc"], "n_heads must be an int >= 1 or 'all'; got 'abc'"),
        (["SEEDS=0,0"], "seeds lists 0 more than once"),
        (["TASKS=nope"], "known tasks: blink_art_style"),
        (["SHOTS=x"], "shots must be whole numbers"),
    ],
)
def test_preflight_exits_2_naming_a_bad_override_before_any_hub_check(argv, message, capsys):
    start = time.perf_counter()
    assert main(["--profile", "paper", *argv]) == 2  # paper: a hub check would take seconds and say "reachable"
    err = capsys.readouterr().err
    assert message in err and "reachable" not in err and time.perf_counter() - start < 5


NOTEBOOK_GOALS = ["reproduce", "preflight", "extract", "quickstart", "main-results", "shot-scaling", "head-sparsity",
                  "cross-task", "where-heads", "beyond-savs", "own-task",
                  "notebooks/executed/01_main_results.ipynb"]  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("goal", NOTEBOOK_GOALS)
def test_every_make_target_refuses_a_misspelt_profile(goal):
    proc = subprocess.run(["make", "-n", goal, "PROFILE=mni"], cwd=paths.ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stdout
    assert "unknown PROFILE 'mni': savs/profiles/mni.yaml does not exist; known: mini paper" in proc.stderr
    assert "Nothing to be done" not in proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_and_test_do_not_read_the_profile():
    proc = subprocess.run(["make", "-n", "help", "PROFILE=mni"], cwd=paths.ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "unknown PROFILE" not in proc.stderr, proc.stderr


def test_a_table_over_a_repeated_seed_is_refused():
    """SEEDS=0,0 printed "± 0.0" over two copies of one run; the summary refuses such rows however they came."""
    import pandas as pd

    from savs import report

    rows = [{"model": "m", "task": "t", "method": "SAVs", "shots": 20, "metric": "accuracy", "seed": s, "value": v,
             "n_test": 10} for s, v in ((0, 80.0), (1, 90.0))]  # fmt: skip
    assert report.summarize(pd.DataFrame(rows))["std"].round(3).tolist() == [7.071]
    with pytest.raises(ValueError, match="repeat a seed of their group, e.g. seed 0 of model=m, task=t, method=SAVs"):
        report.summarize(pd.DataFrame([rows[0], rows[0]]))
