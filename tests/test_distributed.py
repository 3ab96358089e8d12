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
import torch
from PIL import Image
from test_notebooks import TINY, distributed_extraction

from savs import extract
from savs.baselines import vision_features
from savs.examples import Example, LazyImage
from savs.experiments import Session, load_adapter
from savs.extract import extract_features, plan_batches
from savs.plan import Need, planned_session, profile_plan


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[int, Path]:
    """The smoke profile's plan extracted by 1 and by 2 processes, each into its own cache."""
    root = tmp_path_factory.mktemp("distributed")
    out = {}
    for nproc in (1, 2):
        out[nproc] = root / f"cache-{nproc}"
        for model in (*TINY.models, *TINY.ablation_models):  # built once, before the processes race to
            load_adapter(model, TINY, out[nproc])
        done = distributed_extraction(out[nproc], nproc)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "profile smoke:" in done.stdout and f"over {nproc} processes" in done.stdout
    return out


def cached(cache: Path, model: str, examples: list[Example]) -> dict[str, np.ndarray]:
    """Every cached feature of ``examples`` (heads, hidden, vision), read only."""
    adapter = Session(TINY, cache).adapter(model)
    kw = {"heads": range(adapter.n_layers), "hidden": -1, "batch_size": 4, "progress": False, "cache_only": True}
    return extract_features(adapter, examples, cache_dir=cache, **kw)


def test_one_and_two_processes_cache_bit_identical_vectors(caches):
    """Whole batches to each rank: an example's batch, so its vectors, do not depend on the process count."""
    plan = profile_plan(Session(TINY, caches[1]))
    assert {m for m, _ in plan.needs} == {*TINY.models, *TINY.ablation_models}
    for (model, task), need in plan.needs.items():
        one, two = (cached(caches[n], model, list(need.features.values())) for n in (1, 2))
        for name in ("heads", "hidden"):
            np.testing.assert_array_equal(one[name], two[name], err_msg=f"{model} {task} {name}")
        if need.vision:
            adapter = Session(TINY, caches[1]).adapter(model)
            vision = [vision_features(adapter, list(need.vision.values()), cache_dir=caches[n], cache_only=True,
                                      progress=False) for n in (1, 2)]  # fmt: skip
            np.testing.assert_array_equal(*vision)
    shards = list((caches[2] / "activations").rglob("*.safetensors"))
    assert len(shards) >= 2, "each rank should have written its own shards"


def test_one_process_in_memory_forms_the_plans_batches(caches, tmp_path):
    """``extract_features`` on a need's examples, in process and on an empty cache, forms ``plan_batches``'s batches,
    so it gives the distributed run's vectors to the bit; and a notebook's cache miss (``Run.heads``) runs the plan's
    batches that hold what it asks for, so it does too."""
    session = planned_session(Session(TINY, tmp_path / "empty"))
    model, task = TINY.models[0], TINY.tasks[0]
    need = profile_plan(session).needs[(model, task)]
    examples = list(need.features.values())
    adapter = session.adapter(model)
    kw = {"heads": range(adapter.n_layers), "hidden": -1, "batch_size": TINY.batch_size, "progress": False}
    single = extract_features(adapter, examples, **kw)
    reference = cached(caches[2], model, examples)
    for name in ("heads", "hidden"):
        np.testing.assert_array_equal(single[name], reference[name])

    few = session.task(task).few_shot(TINY.shots, TINY.seeds[-1])
    asked = few + session.test(task, few)
    from_notebook = session.run(model, task).heads(asked)  # a miss: the plan's batches run in process
    np.testing.assert_array_equal(from_notebook, cached(caches[2], model, asked)["heads"])


def test_extract_batches_runs_a_partly_cached_batch_whole_and_skips_a_cached_one(caches, tmp_path):
    """A batch missing one example runs whole (its other rows' company, hence the missing one's vectors, are the
    plan's) and writes only what the cache lacks; a batch the cache holds does not run."""
    session = Session(TINY, tmp_path / "cache")
    model, task = TINY.models[0], TINY.tasks[0]
    examples = list(profile_plan(session).needs[(model, task)].features.values())
    adapter = session.adapter(model)
    batches = plan_batches(examples, TINY.batch_size)
    kw = {"heads": range(adapter.n_layers), "hidden": -1, "cache_dir": tmp_path / "cache", "progress": False}
    first = batches[0]
    assert len(first) > 1
    alone = extract_features(adapter, first[:1], batch_size=1, **kw)  # cached from a batch of its own
    assert extract.extract_batches(adapter, batches, **kw) == len(batches)  # the first batch lacked all but one
    assert extract.extract_batches(adapter, batches, **kw) == 0
    now = cached(tmp_path / "cache", model, first)
    np.testing.assert_array_equal(now["heads"][:1], alone["heads"])  # the cache keeps what it held
    np.testing.assert_array_equal(now["heads"][1:], cached(caches[2], model, first)["heads"][1:])


def test_plan_batches_are_the_batches_extract_features_runs(monkeypatch):
    """``plan_batches`` is ``extract_features``'s own batching (one rule, ``_form_batches``): the same groups, in
    order, each distinct example once, split where the image count changes."""
    session = Session(TINY, Path("/nonexistent"))
    need = profile_plan(session).needs[(TINY.models[0], TINY.tasks[0])]
    examples = list(need.features.values())
    examples = examples + examples[:3]  # repeats are extracted once
    ran: list[list[str]] = []

    def record(adapter, capture, prefixes, batch):
        ran.append([e.fingerprint() for e in batch])
        return {"heads": torch.zeros(len(batch), 2, 4, 8), "hidden": torch.zeros(len(batch), 32)}

    monkeypatch.setattr(extract, "_run_batch", record)
    adapter = session.adapter(TINY.models[0])
    extract_features(adapter, examples, heads=range(adapter.n_layers), hidden=-1, batch_size=3, progress=False)
    planned = [[e.fingerprint() for e in b] for b in plan_batches(examples, 3)]
    assert ran == planned
    assert sorted(fp for b in planned for fp in b) == sorted(need.features)
    assert all(len({len(need.features[fp].images) for fp in b}) == 1 and len(b) <= 3 for b in planned)


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
