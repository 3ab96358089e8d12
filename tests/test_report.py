"""The tables: seeds summarised honestly, cells that ran on less say so, the paper's rows never pass for ours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from savs import report
from savs.profiles import load_profile


def rows(method: str, task: str, values: list[float], n_test: int = 200, metric: str = "accuracy") -> list[dict]:
    """Per-seed result rows as ``experiments.evaluate`` writes them."""
    return [
        {"model": "m", "task": task, "method": method, "shots": 20, "seed": seed, "n_test": n_test}
        | {"metric": metric, "value": v}
        for seed, v in enumerate(values)
    ]


@pytest.fixture
def results() -> pd.DataFrame:
    return pd.DataFrame(
        rows("SAVs", "a", [60.0, 70.0, 80.0])
        + rows("zero-shot", "a", [40.0], n_test=100)
        + rows("SAVs", "b", [50.0, 50.0, 50.0])
        + rows("zero-shot", "b", [30.0, 32.0, 34.0])
    )


def test_summarize_gives_mean_std_and_what_each_cell_ran_on(results):
    s = report.summarize(results).set_index(["task", "method"])
    assert s.loc[("a", "SAVs"), "mean"] == pytest.approx(70.0)
    assert s.loc[("a", "SAVs"), "std"] == pytest.approx(10.0)  # sample std over seeds
    assert s.loc[("a", "zero-shot"), "n_seeds"] == 1 and np.isnan(s.loc[("a", "zero-shot"), "std"])
    assert s.loc[("a", "zero-shot"), "n_test"] == 100


def test_main_table_orders_methods_and_flags_thinner_cells(results):
    table = report.main_table(report.summarize(results))
    assert table["method"].tolist() == ["zero-shot", "SAVs"]  # METHODS order: baselines first, SAVs last
    cell = table.set_index("method").loc["zero-shot"]
    assert cell["a"] == "40.0 [1 seed, n=100]"
    assert cell["b"] == "32.0 ± 2.0"
    assert table.set_index("method").loc["SAVs", "a"] == "70.0 ± 10.0"


def test_paper_rows_are_labelled_and_only_shared_columns_compared(results):
    offline = report.paper_comparison(report.summarize(results))
    assert offline["source"].str.startswith("paper, ").all(), "no benchmark in common: the paper's rows alone"
    shared = pd.DataFrame(rows("SAVs", "eurosat", [90.0, 92.0]) + rows("SAVs", "a", [1.0]))
    both = report.paper_comparison(report.summarize(shared))
    assert list(both.columns) == ["source", "method", "EuroSAT"]
    ours = both[both["source"] == "ours, m"]
    assert ours["EuroSAT"].tolist() == ["91.0"]
    assert (both["source"].str.startswith("paper, ") | (both["source"] == "ours, m")).all()


def test_markdown_and_written_files(tmp_path):
    df = pd.DataFrame({"x": ["a", "b"], "y": [1.234, float("nan")]})
    assert report.to_markdown(df).splitlines() == ["| x | y |", "|---|---|", "| a | 1.2 |", "| b |  |"]
    written = report.write_table(df, "t", tmp_path, "Caption.", extra="After.")
    assert [p.name for p in written] == ["t.csv", "t.md"]
    assert pd.read_csv(tmp_path / "t.csv").shape == (2, 2)
    assert (tmp_path / "t.md").read_text() == "Caption.\n\n| x | y |\n|---|---|\n| a | 1.2 |\n| b |  |\n\nAfter.\n"
    report.write_table(df.iloc[:0], "empty", tmp_path, "Caption.", extra="Why it is empty.")
    assert (tmp_path / "empty.md").read_text() == "Caption.\n\nWhy it is empty.\n"  # no header without rows


def test_captions_name_model_data_shots_seeds_and_the_stand_in():
    caption = report.describe(load_profile("mini"))
    for part in ("savs-mini", "not a model of the paper", "fashion_mnist", "Shots: 20", "Seeds: 0, 1, 2", "mini"):
        assert part in caption
    assert "stand-in" not in report.describe(load_profile("paper"))


def test_captions_and_the_run_description_say_the_sav_rule():
    paper_rule = report.describe(load_profile("mini"))
    assert "(cosine, in_sample scoring, top_k selection, majority voting: the paper's rule)" in paper_rule
    other = load_profile("mini", n_heads="10", metric="euclidean", voting="reliability", seeds="0,1")
    caption = report.describe(other)
    assert "Heads: 10 (euclidean, in_sample scoring, top_k selection, reliability voting)." in caption
    assert "the paper's rule" not in caption
    text = report.run_markdown(other)
    assert "profile `mini`" in text and "seeds 0, 1" in text and "SAVs with 10 heads" in text
    assert "lora (1 seed(s), 50 test examples)" in text and "savs-mini-untrained" in text
    with pytest.raises(ValueError, match="metric must be one of"):
        load_profile("mini", metric="manhattan")


def test_the_papers_other_rows_join_when_we_ran_those_models():
    """CLIP and LLaVA-1.5 rows of ours bring the paper's CLIP and LLaVA-1.5 rows; the two main models' always come."""
    ours = [r | {"model": "CLIP (openai/clip-vit-large-patch14-336)"} for r in rows("zero-shot", "eurosat", [60.0])]
    ours += [r | {"model": "llava-1.5-7b"} for r in rows("zero-shot", "eurosat", [25.0])]
    table = report.paper_comparison(report.summarize(pd.DataFrame(ours))).set_index("source")
    assert table.loc["paper, CLIP", "EuroSAT"] == "64.0" and table.loc["paper, LLaVA-1.5", "EuroSAT"] == "26.3"
    assert table.loc["ours, llava-1.5-7b", "EuroSAT"] == "25.0"
    assert {"paper, LLaVA-OV-7B", "paper, Qwen2-VL-7B"} <= set(table.index)
    assert not any(s.startswith(("paper, SigLIP", "paper, GPT-4o", "paper, InstructBLIP")) for s in table.index)


def test_interleaved_table_takes_mhalubench_accuracy_and_naturalbench_group_accuracy():
    results = pd.DataFrame(
        rows("SAVs", "mhalubench", [80.0, 82.0])
        + rows("SAVs", "naturalbench", [30.0, 40.0], metric="g_acc")
        + rows("SAVs", "naturalbench", [60.0], metric="q_acc")  # not the paper's column
        + rows("SAVs", "eurosat", [90.0])
    )
    table = report.interleaved(report.summarize(results))
    assert table.to_dict("records") == [
        {"model": "m", "method": "SAVs", "MHaluBench": 81.0, "NaturalBench (group)": 35.0}
    ]
    md = report.interleaved_markdown(table)
    assert md.startswith("### Paper: interleaved tasks") and "| CLIP | zero-shot | 51.9 | 1.2 |" in md
    empty = report.interleaved(report.summarize(pd.DataFrame(rows("SAVs", "eurosat", [90.0]))))
    assert empty.empty and report.interleaved_markdown(empty).startswith("This profile runs neither")


def test_a_note_names_the_papers_rows_a_profile_does_not_run():
    mini = report.rows_not_run(load_profile("mini"))
    assert "CLIP and SigLIP" in mini and "LLaVA-1.5 and InstructBLIP" in mini and "GPT-4o" in mini
    paper_note = report.rows_not_run(load_profile("paper"))
    assert "GPT-4o" in paper_note and "CLIP" not in paper_note and "InstructBLIP" not in paper_note
