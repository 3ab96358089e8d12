"""Extraction of a profile's plan across 2 CPU processes (gloo) equals a single-process run, every rank writes.

That the notebooks then need no extraction pass is proved by ``test_notebooks`` (it fills its cache this way and
runs the notebooks with ``SAVS_CACHE_ONLY=1``).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_notebooks import TINY, distributed_extraction

from savs.experiments import Session
from savs.extract import extract_features
from savs.plan import profile_plan


def test_two_processes_extract_the_whole_plan_as_one_would(tmp_path):
    done = distributed_extraction(tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "profile tiny:" in done.stdout and "over 2 processes" in done.stdout

    session = Session(TINY, tmp_path / "cache")
    plan = profile_plan(session)
    assert {m for m, _ in plan.needs} == {*TINY.models, *TINY.ablation_models}
    need = plan.needs[(TINY.models[0], TINY.tasks[0])]
    examples = list(need.features.values())
    adapter = session.adapter(TINY.models[0])
    kw = {"heads": range(adapter.n_layers), "hidden": -1, "batch_size": 4, "progress": False}
    cached = extract_features(adapter, examples, cache_dir=tmp_path / "cache", cache_only=True, **kw)
    single = extract_features(adapter, examples, **kw)
    for name in ("heads", "hidden"):
        np.testing.assert_allclose(cached[name], single[name], atol=1e-5)
    shards = list((tmp_path / "cache" / "activations").rglob("*.safetensors"))
    assert len(shards) >= 2, "each rank should have written its own shards"


def test_plan_lists_blind_copies_and_vision_features():
    session = Session(TINY, pytest.importorskip("pathlib").Path("/nonexistent"))
    need = profile_plan(session).needs[(TINY.models[0], TINY.tasks[0])]
    assert any(e.uid.endswith("+blank") for e in need.features.values())  # the blind control's blanked copies
    assert need.vision and all(e.images for e in need.vision.values())
