"""Extraction of a profile's plan across 2 CPU processes (gloo) equals a single-process run, every rank writes.

That the notebooks then need no extraction pass is proved by ``test_notebooks`` (it fills its cache this way and
runs the notebooks with ``SAVS_CACHE_ONLY=1``).
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_notebooks import TINY, distributed_extraction

from savs.examples import Example, LazyImage
from savs.experiments import Session
from savs.extract import extract_features
from savs.plan import Need, profile_plan


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
    session = Session(TINY, Path("/nonexistent"))
    need = profile_plan(session).needs[(TINY.models[0], TINY.tasks[0])]
    assert any(e.uid.endswith("+blank") for e in need.features.values())  # the blind control's blanked copies
    assert need.vision and all(e.images for e in need.vision.values())


def jpeg(seed: int, size: tuple[int, int] = (1000, 1300)) -> bytes:
    """A photo-sized JPEG of a few KB (a smooth gradient): decoded, megabytes."""
    ramp = np.linspace(0, 255, size[0], dtype=np.uint8) + seed
    buffer = io.BytesIO()
    Image.fromarray(np.tile(ramp, (size[1], 1))).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_planned_blind_copies_hold_no_pixels_and_equal_the_eager_blanks(monkeypatch):
    """Planning the blind control of large images decodes none and keeps no pixels; the copies fingerprint and
    decode as the eager ``Image.new`` blanks did (so the cache keys are unchanged)."""
    originals = [Example(f"question {i}", "a", LazyImage(jpeg(i)), uid=f"t/{i}") for i in range(6)]
    with monkeypatch.context() as m:
        m.setattr(LazyImage, "open", lambda self: pytest.fail(f"planning decoded {self!r}"))
        need = Need("model", "task")
        need.add("blind", originals)
    held = [im for e in need.features.values() for im in e.images]
    assert len(held) == 6 and not any(isinstance(im, Image.Image) for im in held)
    eager = [replace(e, images=tuple(Image.new("RGB", im.size, (127, 127, 127)) for im in e.pil_images()),
                     uid=f"{e.uid}+blank") for e in originals]  # fmt: skip
    assert list(need.features) == [e.fingerprint() for e in eager]
    for lazy, old in zip(need.features.values(), eager, strict=True):
        assert lazy.uid == old.uid and lazy.pil_images()[0].tobytes() == old.images[0].tobytes()


def test_plan_lists_the_test_sets_notebook_06_scores_the_probes_on():
    """The head-methods study scores the probes on the head rules' test sets, beyond a probe baseline's own cap."""
    capped = {**TINY.baselines, "vision_probe": replace(TINY.baselines["vision_probe"], n_test=2)}
    session = Session(replace(TINY, baselines=capped), Path("/nonexistent"))
    task = TINY.study_tasks(TINY.head_methods)[0]
    need = profile_plan(session).needs[(TINY.models[0], task)]
    for seed in TINY.seeds_for("vision_probe"):
        few = session.task(task).few_shot(TINY.shots, seed)
        test = session.test(task, few)
        assert len(test) > 2 and {e.fingerprint() for e in few + test} <= set(need.vision)
