"""The per-run pieces the notebooks' loops call (``savs.experiments``), against direct computations on the same
features: notebook 05's head rows and maps, notebook 06's probe rows on the seeds their baseline runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from savs import experiments as ex
from savs.profiles import load_profile


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> ex.Run:
    """The smoke profile's random-weight model on digits, two seeds, 4 heads of 8, the paper's (in-sample) scoring."""
    profile = load_profile("smoke", tasks="digits", baselines="linear_probe")
    return ex.Session(profile, tmp_path_factory.mktemp("cache")).run(profile.models[0], "digits")


def test_selected_heads_are_the_fit_s_heads_best_first_with_their_scores_in_percent(run) -> None:
    clf = ex.fit_sav(run, seed=1)
    rows = ex.selected_heads(run, clf, seed=1)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and {r["seed"] for r in rows} == {1}
    layers = list(run.adapter.head_layers)
    assert [(r["layer"], r["head"]) for r in rows] == [(layers[i], h) for i, h in clf.heads_.tolist()]
    assert [r["score"] for r in rows] == pytest.approx([100 * clf.head_scores_[i, h] for i, h in clf.heads_])
    assert rows[0]["score"] >= rows[-1]["score"]


def test_head_map_averages_the_seeds_and_reads_the_top_head_on_the_first_seed_s_test_set(run) -> None:
    session = ex.Session(run.session.profile, run.session.cache)
    pool = list(run.task.train)  # the pool is the test split: each seed's test set leaves its few-shot set out
    session.tasks["digits"] = replace(run.task, test=pool, pool_is_test=True)
    run = session.run(run.model, "digits")
    fits = {seed: ex.fit_sav(run, seed) for seed in (1, 0)}  # the first seed is the dict's first, not the smallest
    m = ex.head_map(run, fits)
    assert m["scores"] == pytest.approx(100 * (fits[0].head_scores_ + fits[1].head_scores_) / 2)
    picked = np.zeros_like(m["scores"])
    for clf in fits.values():
        for layer, head in clf.heads_:
            picked[layer, head] += 0.5
    assert m["selected"] == pytest.approx(picked) and m["selected"].sum() == pytest.approx(4)
    row, head = np.unravel_index(m["scores"].argmax(), m["scores"].shape)
    assert m["top_head"].tolist() == [run.adapter.head_layers[row], head]
    test = session.test("digits", run.task.few_shot(session.profile.shots, 1))
    assert {e.uid for e in test} != {e.uid for e in session.test("digits", run.task.few_shot(session.profile.shots, 0))}
    assert np.array_equal(m["top_vectors"], run.heads(test)[:, row, head])
    assert m["labels"].tolist() == [e.label for e in test]


def test_probe_rows_run_only_on_the_seeds_their_baseline_runs(run) -> None:
    profile = run.session.profile
    capped = replace(profile.baselines["linear_probe"], n_seeds=1)  # seed 0 only
    session = ex.Session(replace(profile, baselines={"linear_probe": capped}), run.session.cache)
    run = session.run(run.model, "digits")
    few = run.task.few_shot(session.profile.shots, 1)
    assert ex.probe_rows(run, few, session.test("digits", few), 1, ["linear probe"]) == []
    few = run.task.few_shot(session.profile.shots, 0)
    test = session.test("digits", few)
    (row,) = ex.probe_rows(run, few, test, 0, ["linear probe"])
    assert row["method"] == "linear probe" and row["n_test"] == len(test) == len(row["correct"])
    assert row["accuracy"] == pytest.approx(100 * row["correct"].mean())
    assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
