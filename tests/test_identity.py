"""A model's identity (the activation cache's namespace) follows what decides its vectors, not how it is named."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_examples
from PIL import Image
from transformers import AutoTokenizer, LlamaForCausalLM

from savs.examples import Example
from savs.extract import extract_heads
from savs.identity import EXTRACTION_VERSION, ModelIdentity, directory_digest, hub_revision, json_digest, model_source
from savs.mini.adapter import MiniAdapter
from savs.mini.model import MiniLMM, Projector, add_image_token
from savs.mini.vision import FEATURE_DIM, VisionEncoder
from savs.models import load_model
from savs.models.base import Adapter
from savs.models.instructblip import InstructBlipAdapter
from savs.models.registry import resolve
from savs.models.text import TextAdapter
from savs.testing.random_models import FAMILIES, GENERATION_FAMILIES, LIKE_CHECKPOINTS, build_random_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rebuilt_directory_with_other_weights_gives_fresh_vectors(tmp_path):
    model_dir, cache = tmp_path / "model", tmp_path / "cache"
    examples = make_examples(3, with_images=True)
    build_random_model("llava", model_dir, seed=0)
    first = load_model(str(model_dir), device="cpu")
    X0 = extract_heads(first, examples, cache_dir=cache, progress=False)

    shutil.rmtree(model_dir)
    build_random_model("llava", model_dir, seed=1)  # same path, same geometry, other weights
    second = load_model(str(model_dir), device="cpu")
    assert second.identity.source != first.identity.source
    assert second.identity.namespace != first.identity.namespace
    X1 = extract_heads(second, examples, cache_dir=cache, progress=False)
    X1_uncached = extract_heads(second, examples, progress=False)
    np.testing.assert_array_equal(X1, X1_uncached)  # the new weights' vectors, not the old ones from the cache
    assert not np.allclose(X0, X1)


def test_same_directory_loaded_twice_shares_a_namespace(tiny_dir):
    a = load_model(tiny_dir("qwen2_vl"), device="cpu")
    b = load_model(tiny_dir("qwen2_vl"), device="cpu")
    assert a.identity == b.identity


def test_dtype_attention_and_template_change_the_namespace(tiny_dir):
    base = load_model(tiny_dir("llava"), device="cpu")
    half = load_model(tiny_dir("llava"), device="cpu", dtype=torch.bfloat16)
    eager = load_model(tiny_dir("llava"), device="cpu", attn_implementation="eager")
    assert len({base.identity.namespace, half.identity.namespace, eager.identity.namespace}) == 3
    other_template = load_model(tiny_dir("llava"), device="cpu")
    other_template.processor.chat_template = base.processor.chat_template + " "
    assert other_template.identity.namespace != base.identity.namespace


def test_directory_digest_sees_content_not_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.safetensors").write_bytes(b"weights-1")
    (tmp_path / "a" / "config.json").write_text("{}")
    d1 = directory_digest(tmp_path / "a")
    (tmp_path / "a" / "model.safetensors").write_bytes(b"weights-2")
    assert directory_digest(tmp_path / "a") != d1
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert directory_digest(tmp_path / "b") == directory_digest(tmp_path / "a")


def test_directory_digest_ignores_hidden_files_and_folders(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = directory_digest(tmp_path)
    meta = tmp_path / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text("commit\netag\n1764500000.1")  # what `hf download --local-dir` leaves
    (tmp_path / ".gitattributes").write_text("*.safetensors filter=lfs")
    assert directory_digest(tmp_path) == before


def test_large_file_digests_are_memoized_by_size_and_mtime(tmp_path, monkeypatch):
    import savs.identity as identity

    monkeypatch.setattr(identity, "MEMO_BYTES", 4)
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"0123456789")
    memo = tmp_path / "memo"
    first = directory_digest(model, memo)
    assert len(list((memo / "file-digests").iterdir())) == 1
    (model / "w.bin").write_bytes(b"9876543210")  # same size, new mtime: a new memo entry and a new digest
    assert directory_digest(model, memo) != first


def hub_snapshot(hub_cache: Path, repo_id: str, commit: str, monkeypatch) -> Path:
    """The snapshot folder of ``repo_id`` at ``commit`` (its ``main``) in a local hub cache at ``hub_cache``, made the
    hub client's cache: fill it with the repository's files."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub_cache))
    return repo / "snapshots" / commit


def test_registry_name_and_hub_id_resolve_to_one_source(tmp_path, monkeypatch):
    # A local hub cache holding Qwen2-VL-7B-Instruct at a known commit (only the layout matters).
    commit = "a" * 40
    (hub_snapshot(tmp_path, "Qwen/Qwen2-VL-7B-Instruct", commit, monkeypatch) / "config.json").write_text("{}")
    assert hub_revision("Qwen/Qwen2-VL-7B-Instruct") == commit
    by_name = model_source(resolve("qwen2-vl-7b"))
    assert by_name == model_source("Qwen/Qwen2-VL-7B-Instruct") == f"hub:Qwen/Qwen2-VL-7B-Instruct@{commit}"


def test_registry_name_and_hub_id_load_alike(tmp_path, monkeypatch):
    """LLaVA-1.5 by hub id is the registry's llava-1.5-7b: single-image (side by side), in the same namespace."""
    build_random_model("llava", hub_snapshot(tmp_path, "llava-hf/llava-1.5-7b-hf", "b" * 40, monkeypatch))
    by_name = load_model("llava-1.5-7b", device="cpu")
    by_hub_id = load_model("llava-hf/llava-1.5-7b-hf", device="cpu")
    assert by_name.single_image and by_hub_id.single_image
    assert by_name.identity == by_hub_id.identity


def test_identity_round_trips_and_names_its_differences():
    a = ModelIdentity("llava", "dir:1", "float32", "sdpa", "t", "p")
    assert ModelIdentity.from_dict(a.to_dict()) == a
    b = replace(a, dtype="bfloat16", source="dir:2")
    assert b.differences(a) == ["source: 'dir:2' != 'dir:1'", "dtype: 'bfloat16' != 'float32'"]
    with pytest.raises(ValueError, match="missing fields \\['template'\\]"):
        ModelIdentity.from_dict({k: v for k, v in a.to_dict().items() if k != "template"})


# ----- the prompts as built guard EXTRACTION_VERSION----------------------------------------------------------------
# The identity digests each model's chat template, not the prompts our adapters build with it (system turns, image
# markers, side-by-side images, token expansion): a change there must bump EXTRACTION_VERSION, or the cache serves
# vectors of the old prompts. Per EXTRACTION_VERSION, the digest of each guarded model's prompts (``built_prompts``).
BUILT_PROMPTS: dict[str, dict[str, str]] = {
    "3": {
        "qwen2_vl": "b1c6eca9bf7f3318",
        "qwen2_5_vl": "b1c6eca9bf7f3318",
        "llava": "2fc701810f170a24",
        "llava_onevision": "23b688756b819ec5",
        "idefics3": "e7cd61fdd87fdd97",
        "smolvlm": "700d6db4edec503e",
        "llama": "ea364bfe2771da2a",
        "instructblip": "607ae62b37756aab",
        "llava-ov-7b": "2c8175951ea31c9c",
        "qwen2-vl-7b": "97def5e226138a0f",
        "llava-1.5 (single image)": "2a44d1e763c8c060",
        "llava-ov-7b (anyres every image)": "ea25b0bf4bb05d25",
        "savs-mini": "76b1db90a0da8306",
    },
}
GUARD_EXAMPLES = (
    Example("Is the sky blue? Answer with Yes or No.", "Yes", uid="guard/text"),
    Example("What shape is this?", "circle", (Image.new("RGB", (48, 32), (200, 30, 30)),), "guard/one"),
    Example(
        "<image>\n<image>\nWhich image is brighter? (A) the first (B) the second",
        "A",
        (Image.new("RGB", (40, 40), (250, 250, 250)), Image.new("RGB", (30, 50), (20, 20, 20))),
        "guard/two",
    ),
)


def guard_examples(adapter: Adapter) -> list[Example]:
    """The guard examples ``adapter`` takes: a text-only model none with images, InstructBLIP none without."""
    if isinstance(adapter, TextAdapter):
        return [e for e in GUARD_EXAMPLES if not e.images]
    if isinstance(adapter, InstructBlipAdapter):
        return [e for e in GUARD_EXAMPLES if e.images]
    return list(GUARD_EXAMPLES)


def built_prompts(adapter: Adapter) -> str:
    """Digest of the guard examples as ``adapter`` builds them: each rendered prompt and its token ids."""
    built = [[adapter.render(e), adapter.encode([e])["input_ids"][0].tolist()] for e in guard_examples(adapter)]
    return json_digest(built)[:16]


def tiny_mini(llama_dir: str) -> MiniAdapter:
    """savs-mini's adapter around the tiny Llama (its prompts are built as the real one's are)."""
    lm, tok = LlamaForCausalLM.from_pretrained(llama_dir), AutoTokenizer.from_pretrained(llama_dir)
    model = MiniLMM(VisionEncoder(), Projector(FEATURE_DIM, lm.config.hidden_size), lm, add_image_token(tok))
    return MiniAdapter(model, tok, "savs-mini-tiny", "untrained")


def guarded_adapters(tiny_dir) -> dict[str, Adapter]:
    """Every tiny family, the stand-ins of the paper checkpoints (llava-ov-7b also as the paper profile loads it), a
    single-image LLaVA-1.5 and savs-mini."""
    names = FAMILIES + GENERATION_FAMILIES + LIKE_CHECKPOINTS
    adapters = {name: load_model(tiny_dir(name), device="cpu") for name in names}
    adapters["llava-1.5 (single image)"] = load_model(tiny_dir("llava"), device="cpu")
    adapters["llava-1.5 (single image)"].single_image = True
    adapters["llava-ov-7b (anyres every image)"] = load_model(
        tiny_dir("llava-ov-7b"), device="cpu", options={"anyres_every_image": True}
    )
    adapters["savs-mini"] = tiny_mini(tiny_dir("llama"))
    return adapters


def test_prompts_as_built_are_those_of_this_extraction_version(tiny_dir):
    built = {name: built_prompts(adapter) for name, adapter in guarded_adapters(tiny_dir).items()}
    assert built == BUILT_PROMPTS.get(EXTRACTION_VERSION), (
        f"the prompts built for extraction differ from BUILT_PROMPTS[{EXTRACTION_VERSION!r}]: if a change to prompt "
        "building did it, bump EXTRACTION_VERSION in savs/identity.py (caches of the old prompts must not serve the "
        "new ones) and add its row to BUILT_PROMPTS in tests/test_identity.py; if only a tokenizers or transformers "
        f"upgrade did, update the row (the identity records transformers' version). Now: {json.dumps(built, indent=1)}"
    )


def test_the_prompt_guard_sees_a_system_turn_and_literal_image_markers(tiny_dir, monkeypatch):
    """Both changes that once went into the prompts without a version bump change the guard's digests."""
    from savs.models.llava import LlavaAdapter
    from savs.models.qwen2_vl import Qwen2VLAdapter

    adapters = guarded_adapters(tiny_dir)
    monkeypatch.setattr(LlavaAdapter, "system_prompts", {})
    monkeypatch.setattr(Qwen2VLAdapter, "literal_image_markers", False)
    for name in ("llava-ov-7b", "qwen2_vl", "qwen2-vl-7b"):  # tiny llava_onevision: its template adds it
        assert built_prompts(adapters[name]) != BUILT_PROMPTS[EXTRACTION_VERSION][name], name
