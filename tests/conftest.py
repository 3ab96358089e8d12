"""Shared fixtures: random-weight models of every family and the benchmarks' small stand-ins, built once per session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network; set before transformers is imported

import numpy as np
import pytest
import torch
from PIL import Image

from savs.examples import Example
from savs.models import load_model
from savs.testing.random_models import FAMILIES, build_random_model

QUESTIONS = [
    "Is there a red circle? Answer with Yes or No.",
    "What shape is this?",
    "Describe the colour of the biggest object in the picture in one word.",
    "Which class? Options: cat, dog, bird. Answer with the class name.",
    "Count.",
]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-model tests: on a busy 2-core box, threads' spin-waits stall these
    tiny forwards 10-50x. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def count_forwards():
    """``adapter -> list`` that grows by one with every forward pass of the adapter's model from then on."""
    handles = []

    def start(adapter) -> list[int]:
        calls: list[int] = []
        handles.append(adapter.model.register_forward_pre_hook(lambda *a: calls.append(1)))
        return calls

    yield start
    for handle in handles:
        handle.remove()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Build each family's tiny model at most once per session; returns ``family -> saved dir``."""
    built: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in built:
            built[family] = str(build_random_model(family, tmp_path_factory.mktemp(family)))
        return built[family]

    return get


@pytest.fixture(scope="session")
def tiny_adapter(tiny_dir):
    """A loaded adapter per family (the users' path: ``load_model(directory)``), cached per session."""
    loaded = {}

    def get(family: str):
        if family not in loaded:
            torch.manual_seed(0)
            loaded[family] = load_model(tiny_dir(family), device="cpu")
        return loaded[family]

    return get


def make_examples(n: int, with_images: bool, seed: int = 0) -> list[Example]:
    """``n`` examples with prompts of different lengths and (optionally) random images of varied sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        images = ()
        if with_images:
            h, w = int(rng.integers(20, 70)), int(rng.integers(20, 70))
            images = (Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)),)
        out.append(
            Example(text=f"{QUESTIONS[i % len(QUESTIONS)]} ({i})", label=str(i % 2), images=images, uid=f"t/{i}")
        )
    return out


@pytest.fixture(scope="session")
def copies(tmp_path_factory: pytest.TempPathFactory):
    """``name -> folder`` of a benchmark's small stand-in (``savs.testing.benchmarks``), each written once per session
    under one root (the authors' NaturalBench-Retrieval test file in ``root/authors/``)."""
    from savs.testing.benchmarks import ImageIds, write_benchmark

    root, ids = tmp_path_factory.mktemp("benchmarks"), ImageIds()
    return lambda name: write_benchmark(name, root, "small", ids)


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param
