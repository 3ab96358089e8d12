"""LLaVA-OneVision's multi-image prompts: transformers' base view per image, or the authors' anyres crops for each.

The stand-in carries llava-ov-7b's real processor settings (SigLIP 384 px crops of 27 x 27 = 729 tokens, the
anyres_max_9 grid; ``savs/testing/checkpoints``), so its token counts are the 7B's. Expected counts are worked out by
hand from LLaVA-NeXT's rule (``prepare_inputs_labels_for_multimodal``), not read from the processor.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from savs.examples import Example
from savs.models import load_model
from savs.models.anyres import image_token_runs, image_tokens_per_image
from savs.profiles import load_profile, parse_profile

pytestmark = pytest.mark.usefixtures("one_thread")

BASE_VIEW = 27 * 27 + 1  # the 384 px base view and one newline token: what transformers gives each of several images
# A 640 x 480 image: anyres picks the 768 x 768 grid (2 x 2 crops, 54 x 54 features); unpadding the 4:3 image keeps
# round(480 * 54 / 640) = 40 rows (padding 7 above and below), each ending in a newline feature: 40 x 54 + 40, under
# anyres_max_9's 9 x 729 cap; then the base view's 729 (no newline of its own). LLaVA-NeXT's count for that image.
ANYRES_640x480 = 729 + 40 * 54 + 40


def blink_like(n: int, size: tuple[int, int] = (640, 480)) -> Example:
    """A BLINK-style prompt with ``n`` images of ``size`` (width, height)."""
    images = tuple(Image.new("RGB", size, (40 * k, 90, 200 - 30 * k)) for k in range(n))
    return Example("<image>\n" * n + "Which image is brighter? (A) the first (B) the second", "(A)", images, f"x/{n}")


@pytest.fixture(scope="module")
def stand_ins(tiny_dir) -> dict[str, object]:
    path = tiny_dir("llava-ov-7b")
    return {
        "transformers": load_model(path, device="cpu"),
        "authors": load_model(path, device="cpu", options={"anyres_every_image": True}),
    }


def test_image_tokens_per_image_follow_each_rule(stand_ins) -> None:
    ours, theirs = stand_ins["transformers"], stand_ins["authors"]
    assert image_tokens_per_image(ours, blink_like(1)) == [ANYRES_640x480]  # one image: crops either way
    assert image_tokens_per_image(theirs, blink_like(1)) == [ANYRES_640x480]
    assert image_tokens_per_image(ours, blink_like(3)) == [BASE_VIEW] * 3
    assert image_tokens_per_image(theirs, blink_like(3)) == [ANYRES_640x480] * 3


def test_anyres_every_image_runs_through_the_model_in_a_batch(stand_ins) -> None:
    """The model packs as many features per image as the processor expanded tokens (transformers checks the two
    agree), for a padded batch of prompts with different image sizes and counts."""
    adapter = stand_ins["authors"]
    examples = [blink_like(2, (64, 48)), blink_like(3, (40, 90))]
    batch = adapter.encode(examples)
    runs = [image_token_runs(ids, adapter.processor.image_token_id) for ids in batch["input_ids"]]
    assert [len(r) for r in runs] == [2, 3] and min(min(r) for r in runs) > BASE_VIEW
    with torch.inference_mode():
        logits = adapter.forward(batch).logits  # (2, T, V)
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_the_option_is_part_of_the_identity_and_refused_where_it_does_not_apply(stand_ins, tiny_dir) -> None:
    ours, theirs = stand_ins["transformers"], stand_ins["authors"]
    assert ours.identity.namespace != theirs.identity.namespace
    assert theirs.identity.differences(ours.identity)
    with pytest.raises(ValueError, match="anyres_every_image applies to llava_onevision"):
        load_model(
            tiny_dir("llava"), device="cpu", options={"anyres_every_image": True}
        )  # LLaVA-1.5: no anyres crops


def test_the_paper_profiles_load_llava_ov_with_the_authors_rule() -> None:
    assert load_profile("paper").model_kwargs("llava-ov-7b")["options"] == {"anyres_every_image": True}
    assert "options" not in load_profile("paper").model_kwargs("qwen2-vl-7b")
    assert load_profile("paper-dryrun").model_kwargs("random:llava-ov-7b")["options"] == {"anyres_every_image": True}
    assert "options" not in load_profile("mini").model_kwargs("savs-mini")
    with pytest.raises(ValueError, match="unknown model_options"):
        raw = {"description": "", "models": ["llava-ov-7b"], "tasks": ["digits"]}
        parse_profile({**raw, "model_options": {"llava-ov-7b": {"x": 1}}}, "t")


def test_qwen2_vl_image_tokens_follow_its_resize_rule(tiny_dir) -> None:
    """Qwen2-VL-7B's stand-in: a 640 x 480 image is resized to multiples of 28 (644 x 476), 14 px patches merged 2 x 2:
    23 x 17 = 391 tokens per image, whatever the image count (no anyres here)."""
    adapter = load_model(tiny_dir("qwen2-vl-7b"), device="cpu")
    pad = adapter.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for n in (1, 3):
        ids = adapter.encode([blink_like(n)])["input_ids"][0]
        assert image_token_runs(ids, pad) == [23 * 17] * n
