"""Notebook 06's read-out study: its paired summary against an independent computation, its verdict in words, and
the plan extracting every shot count it reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from savs import readout_study as rs
from savs.profiles import load_profile
from savs.report import bootstrap_resamples

N_TEST, K_MODEL = 40, 270


def _results() -> pd.DataFrame:
    """Two seeds of one task at 20 shots: the vote, logistic at 10 and 20 heads, both probes. The all-heads probe is
    right on a random 80%, the logistic read-out at 10 heads exactly there too; the others on their first p x 40
    examples (so logistic at 20 heads is right only where the vote at 20 is)."""
    rng = np.random.default_rng(0)
    patterns = {
        (rs.VOTE, 10): 0.5, (rs.VOTE, 20): 0.55, (rs.LOGISTIC, 10): None, (rs.LOGISTIC, 20): 0.3,
        (rs.HIDDEN_PROBE, None): 0.6, (rs.HEADS_PROBE, K_MODEL): 0.8,
    }  # fmt: skip
    rows = []
    for seed in (0, 1):
        probe = rng.random(N_TEST) < 0.8
        for (method, heads), p in patterns.items():
            correct = probe.copy() if p is None or method == rs.HEADS_PROBE else np.arange(N_TEST) < p * N_TEST
            rows.append({"model": "m", "task": "t", "method": method, "heads": heads, "n_heads_model": K_MODEL,
                         "features": 64 * (heads or 9), "shots": 20, "seed": seed, "n_few_shot": 200,
                         "n_test": N_TEST, "accuracy": 100 * correct.mean(), "ci_low": 0.0, "ci_high": 100.0,
                         "regularization": np.nan, "seconds": 0.1, "correct": correct})  # fmt: skip
    return pd.DataFrame(rows).astype({"heads": "Int64"})


def test_summary_pairs_every_method_with_the_vote_and_the_better_probe() -> None:
    results = _results()
    summary = rs.readout_summary(results).set_index(["method", "heads"])
    assert (summary["best_probe"] == rs.HEADS_PROBE).all()  # 80% beats 60%
    resamples = bootstrap_resamples(N_TEST)

    def boot(method: str, heads) -> np.ndarray:  # accuracy (%) per resample, seeds averaged
        rows = results[(results["method"] == method) & (results["heads"] == heads).fillna(heads is None)]
        return np.mean([100 * c[resamples].mean(axis=1) for c in rows["correct"]], axis=0)

    diff = boot(rs.LOGISTIC, 20) - boot(rs.VOTE, 20)
    r = summary.loc[(rs.LOGISTIC, 20)]
    assert np.isclose(r["vs_vote_low"], np.percentile(diff, 2.5)) and np.isclose(
        r["vs_vote_high"], np.percentile(diff, 97.5)
    )
    diff = boot(rs.LOGISTIC, 20) - boot(rs.HEADS_PROBE, K_MODEL)
    assert np.isclose(r["vs_probe_low"], np.percentile(diff, 2.5))
    same = summary.loc[(rs.LOGISTIC, 10)]  # right exactly where the probe is: a zero-width difference
    assert same["vs_probe"] == same["vs_probe_low"] == same["vs_probe_high"] == 0
    assert np.isnan(summary.loc[(rs.VOTE, 10), "vs_vote"]) and np.isnan(
        summary.loc[(rs.HEADS_PROBE, K_MODEL), "vs_probe"]
    )
    assert summary.loc[(rs.LOGISTIC, 10), "share_of_heads"] == 10 / K_MODEL
    assert rs.sparse_limit(summary.reset_index()) == 13


def test_verdict_names_the_sparse_readout_and_where_the_vote_wins() -> None:
    (line,) = rs.readout_verdict(rs.readout_summary(_results()))
    assert "logistic read-out @10" in line and "matches it (+0.0 [+0.0, +0.0])" in line
    assert "Read-outs of <= 13 heads within the probe's interval: logistic read-out @10" in line
    assert "The vote beats: logistic read-out @20" in line  # right on a subset of the vote's examples


def test_plan_extracts_every_shot_count_of_the_study(tmp_path) -> None:
    """The smoke profile's read-outs run at 2 and 3 shots; 3 is no other notebook's: the plan must hold those sets."""
    from savs.experiments import Session
    from savs.plan import profile_plan

    tiny = load_profile("smoke")
    assert tiny.readouts.shots == (2, 3) and tiny.shots == 2
    session = Session(tiny, tmp_path)
    need = profile_plan(session).needs[(tiny.models[0], tiny.readouts.tasks[0])]
    for seed in tiny.seeds:
        few = session.task(tiny.readouts.tasks[0]).few_shot(3, seed)
        assert {e.fingerprint() for e in few + session.test(tiny.readouts.tasks[0], few)} <= set(need.features)


def test_profile_readout_is_checked_and_reaches_the_rule(tmp_path) -> None:
    assert load_profile("mini").readout == "vote" and load_profile("mini", readout="lda").rule()["readout"] == "lda"
    with pytest.raises(ValueError, match=r"readout must be one of \('vote', 'logistic', 'lda'\); got 'svm'"):
        load_profile("mini", readout="svm")
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: smoke\nreadouts: {grid: [1], shots: [0]}\n")
    with pytest.raises(ValueError, match=r"a study's shots must be ints >= 1; got \[0\]"):
        load_profile(bad)


def test_the_written_cost_table_holds_no_time_and_the_printed_one_is_elided():
    """A rerun writes the same bytes: fit times (which move from run to run) stay out of readouts.md and are printed in
    a form the notebook cleaner elides."""
    from savs.nbclean import clean_text

    summary = rs.readout_summary(_results())
    fast, slow = summary.assign(seconds=0.01), summary.assign(seconds=0.37)
    assert rs.readout_markdown(fast) == rs.readout_markdown(slow)
    assert rs.cost_lines(fast) != rs.cost_lines(slow)
    assert clean_text(rs.cost_lines(fast)) == clean_text(rs.cost_lines(slow))
