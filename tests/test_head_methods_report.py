"""The head-methods summary: paired bootstrap differences, the rows at the paper's sparsity, the verdict in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from savs import report
from savs.report import bootstrap_resamples


def _results() -> pd.DataFrame:
    """One task, 100 test examples, two seeds: SAVs right on 60, 'CALM voting' on the same 60 plus 20 more,
    'LOO scoring' identical to SAVs, the linear probe right on 55 of CALM's 80 (one seed: probes may run on fewer)."""
    base = np.zeros(100, dtype=bool)
    base[:60] = True
    better = base.copy()
    better[60:80] = True
    probe = np.zeros(100, dtype=bool)
    probe[10:65] = True
    rows = []
    for seed in (0, 1):
        for method, heads, correct in (("SAVs", 20, base), ("CALM voting", 20, better), ("LOO scoring", 20, base),
                                       ("SAVs", 5, better), ("linear probe", None, probe)):  # fmt: skip
            if method == "linear probe" and seed == 1:
                continue
            rows.append({
                "model": "m", "task": "t", "method": method, "heads": heads, "seed": seed, "n_test": 100,
                "accuracy": 100 * correct.mean(), "correct": correct, "log_loss": 1.0, "log_loss_calibrated": 0.5,
            })  # fmt: skip
    return pd.DataFrame(rows).astype({"heads": "Int64"})


def test_summary_pairs_differences_over_the_same_resamples() -> None:
    summary = report.head_methods_summary(_results(), n_heads=20).set_index(["method", "heads"])
    savs, calm, loo = summary.loc[("SAVs", 20)], summary.loc[("CALM voting", 20)], summary.loc[("LOO scoring", 20)]
    assert savs["accuracy"] == 60 and calm["accuracy"] == 80 and savs["n_seeds"] == 2
    # Identical predictions: a zero difference with a zero-width interval (paired, not two independent intervals).
    assert loo["vs_savs"] == loo["vs_savs_low"] == loo["vs_savs_high"] == 0
    # CALM is right wherever SAVs is, plus 20%: every resample shows a gain, between 0 and the full 20 points' range.
    assert calm["vs_savs"] == 20 and 10 < calm["vs_savs_low"] < 20 < calm["vs_savs_high"] < 30
    boot = 100 * base_rate(np.arange(100) < 60)
    assert savs["ci_low"] == np.percentile(boot, 2.5) and savs["ci_high"] == np.percentile(boot, 97.5)
    (probe_seeds,) = summary.reset_index().query("method == 'linear probe'")["n_seeds"]
    assert probe_seeds == 1
    assert savs["vs_probe"] == pytest.approx(5)


def base_rate(correct: np.ndarray) -> np.ndarray:
    """The bootstrap accuracy of one seed's predictions, with the summary's resamples."""
    return correct[bootstrap_resamples(len(correct))].mean(axis=1)


def test_table_keeps_the_paper_sparsity_and_the_probes() -> None:
    summary = report.head_methods_summary(_results(), n_heads=20)
    table = report.head_methods_table(summary, 20)
    assert list(table["method"]) == ["SAVs", "CALM voting", "LOO scoring", "linear probe"]
    assert table.loc[1, "vs SAVs"].startswith("+20.0 [")
    assert table.loc[1, "log loss (raw -> calibrated)"] == "1.00 -> 0.50"
    assert table.loc[3, "heads"] == ""


def test_verdict_names_the_winner_and_the_probe() -> None:
    at_20, every_count = report.head_methods_verdict(report.head_methods_summary(_results(), n_heads=20), 20)
    assert "Better than SAVs: CALM voting (+20.0 [" in at_20
    assert "Above the linear probe (55.0): CALM voting (+25.0 [" in at_20
    assert "every head count" in every_count and "better: CALM voting at 20 (+20.0 [" in every_count
    assert "2 comparisons" in every_count  # CALM and LOO at 20 heads; SAVs at 5 heads has no rule to compare


def test_same_head_count_differences_only_for_rules_on_the_grid() -> None:
    summary = report.head_methods_summary(_results(), n_heads=20).set_index(["method", "heads"])
    assert summary.loc[("SAVs", 5), "vs_savs_same_heads"] == 0
    assert summary.loc[("CALM voting", 20), "vs_savs_same_heads"] == pytest.approx(20)
    assert summary.reset_index().query("method == 'linear probe'")["vs_savs_same_heads"].isna().all()


def test_sparsity_is_the_head_count_savs_had() -> None:
    results = _results()  # SAVs at 5 and 20 heads
    assert report.sparsity(results, 20) == 20 and report.sparsity(results, 5) == 5
    assert report.sparsity(results, "all") == 20 and report.sparsity(results, 1000) == 20


def test_every_head_as_the_sparsity_runs_through_the_experiment(tmp_path) -> None:
    """``N_HEADS=all`` in notebook 06: the rules run on a draw, and the summary compares them at every head."""
    from savs import experiments as ex
    from savs.methods import HEAD_METHODS
    from savs.profiles import load_profile

    profile = load_profile("smoke", n_heads="all", tasks="digits", seeds="0", baselines="linear_probe")
    run = ex.Session(profile, tmp_path).run(profile.models[0], "digits")
    few = run.task.few_shot(profile.shots, 0)
    test = run.session.test("digits", few)
    rows = ex.head_rule_rows(run, few, test, 0, list(HEAD_METHODS))
    rows += ex.probe_rows(run, few, test, 0, ["linear probe"])
    results = pd.DataFrame(rows, columns=ex.HEAD_METHOD_COLUMNS).astype({"heads": "Int64"})
    n_heads = report.sparsity(results, profile.n_heads)
    assert n_heads == 2 * 4  # savs.testing.random_models: 2 layers x 4 heads
    table = report.head_methods_table(report.head_methods_summary(results, n_heads), n_heads)
    assert "SAVs" in set(table["method"]) and results["log_loss"].notna().any()
    assert set(results["method"]) == {*HEAD_METHODS, "linear probe"}
