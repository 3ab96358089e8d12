"""BLINK's few-shot sets in the authors' split: seed 0 takes the first items of each letter in val order, as their
released Art_Style file does (val items 1-38, 40 and 45: the first 20 of each letter); other seeds draw."""

from __future__ import annotations

from pathlib import Path

import pytest

from savs.data.benchmarks.vqa import load_blink, val_position
from savs.testing.benchmarks import write_benchmark


@pytest.fixture(scope="module")
def art_style(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Art_Style's stand-in at its real size (117 items, two letters)."""
    return write_benchmark("blink_art_style", tmp_path_factory.mktemp("blink"), "real")


def test_seed_0_is_the_first_items_of_each_letter_in_val_order(art_style: Path) -> None:
    task = load_blink("Art_Style", source=art_style)
    few = task.few_shot(20, seed=0)
    val = sorted(task.test, key=val_position)
    expected = [e for lab in task.labels for e in [x for x in val if x.label == lab][:20]]
    assert few == expected and len(few) == 40
    # the file's pattern: positions run 1, 2, ... until one letter has its 20, then only the other letter's follow
    positions = sorted(val_position(e) for e in few)
    assert positions[: min(20, len(positions))] == [val_position(e) for e in val[:20]]
    assert task.few_shot(20, seed=1) != few and len(task.few_shot(20, seed=1)) == 40
    assert not set(few) & set(task.test_subset(exclude=few))
