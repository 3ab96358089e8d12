"""LLaVA-OneVision's multi-image prompts as the paper's authors ran them: anyres crops for every image.

transformers' LLaVA-OneVision processor and model give an image its anyres crops (a 384 px base view plus up to 9
crops, ~2,900 tokens for a 640 x 480 image) only when it is its prompt's only image; in a prompt with several, each
gets its base view alone (729 + 1 tokens), which is how the model was trained on multi-image data. The authors' code
(``chancharikmitra/SAVs`` 901be34, ``LlavaHelper.insert_image``) ran LLaVA-NeXT's ``process_images`` over a prompt's
images, which gives every image its anyres crops, and ``prepare_inputs_labels_for_multimodal`` unpads and packs each
image's crops whatever the image count. The BLINK subtasks with 2-4 images per prompt see that difference.

``anyres_every_image`` reproduces theirs with the stock classes: handed a flat list of images, the processor and the
model treat each image as a prompt's only one (``batch_num_images`` all 1), so each gets its crops, its placeholder
tokens expanded to match, and the images still fill the prompts' ``<image>`` tokens in order. It is a load option of
``LlavaAdapter`` (``load_model(..., options={"anyres_every_image": True})``; the paper profile's ``model_options``)
and part of the model identity, so caches of the two behaviours never mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from savs.examples import Example

if TYPE_CHECKING:
    from savs.models.base import Adapter

ANYRES_MODEL_TYPES = ("llava_onevision",)  # the families whose processor drops the crops of multi-image prompts


def processor_images(examples: Sequence[Example], anyres_every_image: bool) -> list:
    """The ``images`` argument of the processor for a batch: one list per example (transformers' multi-image rule),
    or, with ``anyres_every_image``, every image in one flat list (each processed as a prompt's only image)."""
    if anyres_every_image:
        return [im for e in examples for im in e.pil_images()]
    return [list(e.pil_images()) for e in examples]


def image_token_runs(input_ids: torch.Tensor, image_token_id: int) -> list[int]:
    """Lengths of the runs of consecutive image placeholder tokens in one prompt's ``input_ids`` (one run per image
    where the template separates images by text, as LLaVA's ``<image>\\n`` does)."""
    is_image = (input_ids == image_token_id).int()  # (T,)
    edges = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int), is_image, torch.zeros(1, dtype=torch.int)]))
    starts, ends = (edges == 1).nonzero().flatten(), (edges == -1).nonzero().flatten()
    return (ends - starts).tolist()


def image_tokens_per_image(adapter: Adapter, example: Example) -> list[int]:
    """How many placeholder tokens (the features the LM sees) each image of ``example`` gets from ``adapter``."""
    image_token = adapter.processor.image_token
    ids = adapter.encode([example])["input_ids"][0]
    return image_token_runs(ids.cpu(), adapter.tokenizer.convert_tokens_to_ids(image_token))
