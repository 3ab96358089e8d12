"""Every notebook runs end to end under papermill on the smoke profile and writes the tables and figures it should.

The smoke profile (``savs/profiles/smoke.yaml``) builds a random-weight LLaVA-OneVision (``random:llava_onevision``,
and, for the ablation rows, Qwen2-VL) into a temporary cache and runs every method of the main table once at the
smallest size. Outputs go to temporary directories, never to the committed ``results/`` and ``figures/``.

First ``savs.distributed`` fills the activation cache with 2 processes (as ``accelerate launch`` would); then the
notebooks run, two at a time, with ``SAVS_CACHE_ONLY=1``: any extraction pass they still needed would fail them. So
every notebook test also proves that ``savs.plan`` lists exactly what the notebooks read.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest

from savs import paper, paths, report
from savs.experiments import CONTRASTIVE, load_adapter
from savs.methods import ABLATION_METHODS, HEAD_METHODS, METHODS
from savs.profiles import load_profile

TINY = load_profile("smoke")
N_HEADS_TINY = 2 * 4  # savs.testing.random_models: 2 layers x 4 heads
NOTEBOOKS = (  # the profile's experiments: everything they read is in savs.plan
    "01_main_results",
    "00_quickstart",
    "02_shot_scaling",
    "03_head_sparsity",
    "04_cross_task",
    "05_where_heads",
    "06_beyond_savs",
)
OWN_DATA = ("07_your_own_task",)  # reads the user's own folders, not the profile's tasks


@dataclass
class Outputs:
    """Where the notebooks wrote (temporary directories) and how each run ended (None: it ran through)."""

    dirs: dict[str, Path]
    errors: dict[str, BaseException | None]

    def executed(self, name: str) -> None:
        """Re-raise the notebook's failure (papermill's error names the failing cell) in its own test."""
        if self.errors[name] is not None:
            raise self.errors[name]


def execute(name: str, dirs: dict[str, Path]) -> None:
    """Run ``notebooks/<name>.ipynb`` on the smoke profile (its outputs go where ``$SAVS_RESULTS`` etc. point)."""
    pm.execute_notebook(
        paths.NOTEBOOKS / f"{name}.ipynb",
        dirs["executed"] / f"{name}.ipynb",
        parameters={"profile": "smoke"},
        kernel_name="python3",
        progress_bar=False,
    )


def distributed_extraction(cache: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """``savs.distributed`` on the smoke profile with ``nproc`` CPU processes (gloo), into ``cache``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port),
           "-m", "savs.distributed", "--profile", "smoke", "--cache-dir", str(cache)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Outputs:
    """The cache filled by 2 processes, then all notebooks cache-only, two at a time, longest first."""
    root = tmp_path_factory.mktemp("notebooks")
    dirs = {name: root / name for name in ("results", "figures", "cache", "executed")}
    for d in dirs.values():
        d.mkdir()
    for model in (*TINY.models, *TINY.ablation_models):  # build each tiny model once, before the processes race to
        load_adapter(model, TINY, dirs["cache"])
    done = distributed_extraction(dirs["cache"])
    assert done.returncode == 0, done.stderr[-3000:]
    futures = {}
    for names, cache_only in ((NOTEBOOKS, "1"), (OWN_DATA, "0")):
        with pytest.MonkeyPatch.context() as env, ThreadPoolExecutor(max_workers=2) as pool:
            env.setenv("OMP_NUM_THREADS", "1")  # two kernels, one thread each: no torch threads spinning on 2 cores
            env.setenv("SAVS_CACHE_ONLY", cache_only)  # the profile's notebooks: an extraction the plan missed fails
            for k in ("results", "figures", "cache"):  # where the kernels write, as make's $SAVS_* say
                env.setenv(f"SAVS_{k.upper()}", str(dirs[k]))
            futures |= {name: pool.submit(execute, name, dirs) for name in names}
    return Outputs(dirs, {name: future.exception() for name, future in futures.items()})


def table(out: Outputs, name: str) -> pd.DataFrame:
    """A written table: its CSV, after checking its Markdown twin carries the caption naming the profile."""
    md = (out.dirs["results"] / f"{name}.md").read_text()
    assert "Profile: smoke" in md and md.count("|") > 10
    return pd.read_csv(out.dirs["results"] / f"{name}.csv")


def assert_figure(out: Outputs, name: str) -> None:
    """Both formats written, and not empty."""
    for suffix in (".png", ".pdf"):
        path = out.dirs["figures"] / f"{name}{suffix}"
        assert path.is_file() and path.stat().st_size > 5_000, path


def n_seeds(method: str) -> int:
    """Seeds the smoke profile runs ``method`` on: zero-shot once, ICL and LoRA on their ``n_seeds``."""
    baseline = METHODS[method].baseline
    if METHODS[method].seedless:
        return 1
    return len(TINY.seeds_for(baseline)) if baseline else len(TINY.seeds)


def test_smoke_profile_switches_every_method_on():
    assert {METHODS[m].baseline for m in METHODS} - {None} | set(CONTRASTIVE) == set(TINY.baselines)
    assert TINY.zero_shot_models


def test_profile_overrides():
    p = load_profile("mini", model="savs-mini", tasks="digits, fashion_mnist", seeds="0,1", shots=5, baselines="knn")
    assert p.models == ("savs-mini",) and p.ablation_models == ()
    assert p.tasks == ("digits", "fashion_mnist") and p.study_tasks(p.shot_scaling) == p.tasks
    assert p.seeds == (0, 1) and p.shots == 5 and list(p.baselines) == ["knn"]
    assert load_profile("mini", seeds=3).seeds == (3,)
    with pytest.raises(ValueError, match="unknown baselines"):
        load_profile("mini", baselines="mtvx")
    with pytest.raises(ValueError, match="does not set up baselines"):
        load_profile("mini", baselines="knn,clip")  # no CLIP weights offline: not in the mini profile


def test_overrides_are_checked_and_dtype_replaces_every_models():
    assert load_profile("paper", dtype="bfloat16").dtype_for("llava-ov-7b") == "bfloat16"
    assert load_profile("paper").dtype_for("llava-ov-7b") == "float16"
    for bad, message in ({"dtype": "fp16"}, "dtype must be one of"), ({"metric": "cosin"}, "metric must be one of"), (
        {"n_heads": "0"}, "n_heads must be"
    ):
        with pytest.raises(ValueError, match=message):
            load_profile("mini", **bad)


def test_paper_numbers_ship_with_the_package():
    main = paper.main_table()
    assert main.set_index(["model", "method"]).loc[("LLaVA-OV-7B", "SAVs"), "MHalu"] == 80.8
    assert len(paper.shot_scaling()) == 10 and len(paper.head_sparsity()) == 12 and len(paper.cross_task()) == 3


def test_quickstart(out):
    out.executed("00_quickstart")
    assert_figure(out, paths.QUICKSTART_HEADS)


def test_main_results(out):
    out.executed("01_main_results")
    results = table(out, paths.MAIN_RESULTS)
    assert list(results.columns) == [
        "model", "task", "method", "shots", "seed", "n_few_shot", "n_test", "metric", "value",
    ]  # fmt: skip
    main, ablation = TINY.models[0], TINY.ablation_models[0]
    assert set(results.loc[results["model"] == main, "method"]) == set(METHODS)
    assert set(results.loc[results["model"] == ablation, "method"]) == set(ABLATION_METHODS)
    per_task = sum(n_seeds(m) for m in METHODS) + sum(n_seeds(m) for m in ABLATION_METHODS)
    others = results[~results["model"].isin([main, ablation])]  # the zero-shot LMMs, then CLIP / SigLIP
    assert len(results) == per_task * len(TINY.tasks) + len(others)
    assert (others["method"] == "zero-shot").all()
    other_runs = sorted(zip(others["model"], others["task"], strict=True))
    contrastive = [(f"{CONTRASTIVE[b]} ({TINY.baselines[b].options['model']})", t)
                   for b in CONTRASTIVE for t in TINY.baselines[b].tasks]  # fmt: skip
    assert other_runs == sorted([(m, t) for m in TINY.zero_shot_models for t in TINY.tasks] + contrastive)
    assert set(results.loc[results["method"] == "ICL", "n_test"]) == {TINY.n_test_for("icl")}
    assert results["value"].between(0, 100).all()

    summary = table(out, paths.MAIN_SUMMARY)
    assert list(summary.columns) == ["model", "task", "method", "shots", "metric", "mean", "std", "n_seeds", "n_test"]
    assert len(summary) == (len(METHODS) + len(ABLATION_METHODS)) * len(TINY.tasks) + len(other_runs)
    summary_md = (out.dirs["results"] / f"{paths.MAIN_SUMMARY}.md").read_text()
    assert "### Paper" in summary_md and "not run by profile `smoke`: GPT-4o" in summary_md
    interleaved = (out.dirs["results"] / f"{paths.INTERLEAVED}.md").read_text()
    assert "runs neither MHaluBench nor NaturalBench" in interleaved and "### Paper: interleaved" in interleaved
    comparison = pd.read_csv(out.dirs["results"] / f"{paths.MAIN_PAPER}.csv")
    assert comparison["source"].str.startswith("paper, ").all() and len(comparison) == 2 * len(report.PAPER_METHODS)


def test_shot_scaling(out):
    out.executed("02_shot_scaling")
    curve = table(out, paths.SHOT_SCALING)
    study = TINY.shot_scaling
    assert len(curve) == len(study.tasks) * len(study.grid) * len(study.methods) * len(TINY.seeds)
    assert sorted(curve["shots"].unique()) == list(study.grid) and set(curve["method"]) == set(study.methods)
    assert_figure(out, paths.SHOT_SCALING)


def test_head_sparsity(out):
    out.executed("03_head_sparsity")
    sparsity = table(out, paths.HEAD_SPARSITY)
    assert len(sparsity) == len(TINY.tasks) * len(TINY.seeds) * 2 * len(TINY.head_sparsity.grid)
    assert set(sparsity["scoring"]) == {"in_sample", "leave_one_out"}
    assert sparsity["heads"].max() == N_HEADS_TINY  # "all"
    assert_figure(out, paths.HEAD_SPARSITY)


def test_cross_task(out):
    out.executed("04_cross_task")
    cross = table(out, paths.CROSS_TASK)
    tasks = TINY.tasks  # different label sets: "heads + means from source" only on the diagonal
    per_target = len(tasks) + 1 + 1  # every source's heads, its own classifier, random heads
    assert len(cross) == len(tasks) * per_target * len(TINY.seeds)
    assert set(cross["variant"]) == {"heads from source", "heads + means from source", "random heads"}
    assert_figure(out, paths.CROSS_TASK)


def test_where_heads(out):
    out.executed("05_where_heads")
    heads = table(out, paths.HEAD_LOCATIONS)
    assert len(heads) == len(TINY.tasks) * len(TINY.seeds) * TINY.n_heads
    assert heads["layer"].between(0, 1).all() and heads["head"].between(0, 3).all()
    for name in (paths.HEAD_MAPS, paths.HEAD_PCA):
        assert_figure(out, name)


def test_your_own_task(out):
    out.executed("07_your_own_task")
    accuracy = table(out, paths.OWN_TASK)
    assert list(accuracy.columns) == ["class", "n_test", "accuracy"]
    assert list(accuracy["class"]) == ["bags", "dresses", "footwear", "tops", "trousers", "all"]
    n_test = accuracy.set_index("class")["n_test"]
    assert n_test["all"] == n_test.drop("all").sum() > 0 and accuracy["accuracy"].between(0, 100).all()
    assert "Confusion matrix" in (out.dirs["results"] / f"{paths.OWN_TASK}.md").read_text()
    assert_figure(out, paths.OWN_TASK_HEADS)


def test_beyond_savs(out):
    out.executed("06_beyond_savs")
    results = table(out, paths.HEAD_METHODS)
    assert "method" in results.columns and "correct" not in results.columns
    grid = list(dict.fromkeys([*TINY.head_methods.grid, TINY.n_heads]))
    free = [m for m, options in HEAD_METHODS.items() if "n_heads" not in options]
    probes = ("linear probe", "vision-encoder probe")
    per_task = len(TINY.seeds) * (len(free) * len(grid) + len(HEAD_METHODS) - len(free))
    per_task += sum(len(TINY.seeds_for(METHODS[m].baseline)) for m in probes)
    assert len(results) == per_task * len(TINY.tasks)
    assert set(results["method"]) == {*HEAD_METHODS, *probes}
    assert results["accuracy"].between(0, 100).all()
    assert (results["ci_low"] <= results["accuracy"]).all() and (results["accuracy"] <= results["ci_high"]).all()
    assert results.loc[results["method"] == "all heads vote", "heads"].eq(N_HEADS_TINY).all()
    assert "### Reading" in (out.dirs["results"] / f"{paths.HEAD_METHODS}.md").read_text()
    assert_figure(out, paths.HEAD_METHODS)
    readouts = table(out, paths.READOUTS)  # the read-out study: every method at each shot count, seed, head count
    study = TINY.readouts
    per_draw = 3 * len(study.grid) + 2  # vote, logistic, LDA at each head count; the two probes
    assert len(readouts) == len(study.tasks) * len(study.shots) * len(TINY.seeds) * per_draw
    assert sorted(readouts["shots"].unique()) == list(study.shots) and "correct" not in readouts.columns
    assert (readouts["ci_low"] <= readouts["accuracy"]).all() and (readouts["accuracy"] <= readouts["ci_high"]).all()
    assert "### Cost" in (out.dirs["results"] / f"{paths.READOUTS}.md").read_text()
    assert_figure(out, paths.READOUTS)
