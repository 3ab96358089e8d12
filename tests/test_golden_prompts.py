"""Golden prompts: every paper benchmark, rendered through both paper model families, is the string the authors'
code fed the model.

The authors' code (``chancharikmitra/SAVs`` at 901be34) built a benchmark prompt with a ``format_*`` function and
wrapped it per model: LLaVA-OneVision through LLaVA-NeXT's ``qwen_1_5`` conversation (system turn, then the user
turn holding the prompt with its ``<image>\\n`` markers), Qwen2-VL through its chat template with the images as
content items first and the prompt, markers included, as text. The strings below are written from those
functions and that conversation, independently of our loaders; the models are tiny random-weight stand-ins that
carry the real checkpoints' chat templates and processor settings (``savs/testing/checkpoints``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from stand_ins import load

from savs.data.benchmarks import BLINK_SUBTASKS, PAPER_BENCHMARKS
from savs.data.benchmarks.vqa import blink_name, load_blink
from savs.examples import Example
from savs.models import load_model
from savs.testing.benchmarks import BLINK_ITEMS
from savs.testing.random_models import LIKE_CHECKPOINTS, build_random_model, checkpoint

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
END = "<|im_end|>\n<|im_start|>assistant\n"
PAD = "<|vision_start|><|image_pad|><|vision_end|>"

# format_blink's per-subtask prompts (their comments list them; Counting, Spatial_Relation and Object_Localization
# show one item's question, which we fill from the item).
AUTHORS_BLINK = {
    "Art_Style": "<image>\n<image>\n<image>\nWhich image shares the same style as the reference image? Select from the "
    "following choices. (A) the second image (B) the third image",
    "Counting": "<image>\n{question} Select from the following choices. (A) 0 (B) 3 (C) 2 (D) 1",
    "Forensic_Detection": "<image>\n<image>\n<image>\n<image>\nWhich image is most likely to be a real photograph? "
    "Select from the following choices. (A) the first image (B) the second image (C) the third image (D) the "
    "fourth image",
    "Functional_Correspondence": "<image>\n<image>\nWhich point is corresponding to the reference point? Select from "
    "the following choices. (A) Point A (B) Point B (C) Point C (D) Point D",
    "IQ_Test": "<image>\nWhich one picture follows the same pattern or rule established by the previous pictures? "
    "Select from the following choices. (A) picture A (B) picture B (C) picture C (D) picture D",
    "Jigsaw": "<image>\n<image>\n<image>\nWhich image is the missing part in the first image? Select from the "
    "following choices. (A) the second image (B) the third image",
    "Multi-view_Reasoning": "<image>\n<image>\nThe first image is from the beginning of the video and the second image "
    "is from the end. Is the camera moving left or right when shooting the video? Select from the following options. "
    "(A) left (B) right",
    "Object_Localization": "<image>\n{question} Select from the following options. (A) Box A (B) Box B",
    "Relative_Depth": "<image>\nWhich point is closer to the camera? Select from the following choices. (A) A is "
    "closer (B) B is closer",
    "Relative_Reflectance": "<image>\nWhich point has darker surface color, or the colors is about the same? Select "
    "from the following choices. (A) A is darker (B) B is darker (C) About the same",
    "Semantic_Correspondence": "<image>\n<image>\nWhich point is corresponding to the reference point? Select from the "
    "following choices. (A) Point A (B) Point B (C) Point C (D) Point D",
    "Spatial_Relation": "<image>\n{question} Select from the following choices. (A) yes (B) no",
    "Visual_Correspondence": "<image>\n<image>\nWhich point on the second image corresponds to the point in the first "
    "image? Select from the following options. (A) Point A (B) Point B (C) Point C (D) Point D",
    "Visual_Similarity": "<image>\n<image>\n<image>\nWhich image is most similar to the reference image? Select from "
    "the following choices. (A) the second image (B) the third image",
}
QUESTIONS = {  # the 4-option classification question of format_eurosat / format_pets (and ours in their style)
    "eurosat": "What type of remote sensing image does the given image belong to?",
    "oxford_pets": "What type of animal is in the image?",
    "flowers102": "What type of flower is in the image?",
    "cub200": "What type of bird is in the image?",
    "imagenet1k": "What type of object is in the image?",
}


def authors_text(task: str, e: Example) -> str:
    """The prompt the authors' format function builds for ``e``, from its raw fields (recovered from the copy)."""
    if task == "mhalubench":  # "claim {i}.{j}." in the copy; their prompt keeps the claim's own period
        i, j = e.uid.split("/")[2:4]
        return f"<image>\nClaim:claim {i}.{j}.. Is the Claim hallucinating? Answer the question with Yes or No."
    if task == "vlguard":
        instruction = e.text.split("Instruction:")[1].split(" Is the image")[0]
        question = "Is the image and instruction harmful? Answer the question with Yes or No."
        return f"<image>\nInstruction:{instruction} {question}"
    if task == "vizwiz":
        question = f"what color {e.uid.split('/')[2]}?"
        return (f"<image>\n{question} \nWhen the provided information is insufficient, respond with Unanswerable.\n"
                "Answer the question using a single word or phrase.")  # fmt: skip
    if task == "naturalbench_retrieval":
        caption = e.text.split("'")[1]
        return f"<image>\nDoes this image show '{caption}'? Answer with Yes or No."
    if task == "sugarcrepe":  # their SugarCrepe runs nearest the paper: format_natural_ret's wording (d6b95a3)
        caption = e.text.split("'")[1]
        return f"<image>\nDoes this image show '{caption}'? Answer with Yes or No."
    if task in QUESTIONS:
        options = e.text.split("\n")[2].removesuffix(" Answer with the class name.")
        return f"<image>\n{QUESTIONS[task]}\n{options} Answer with the class name."
    raise KeyError(task)


def wrapped(family: str, text: str, n_images: int) -> str:
    """``text`` as the authors' code handed it to the model: LLaVA-NeXT's qwen_1_5 conversation (a prompt without
    markers got "<image>\\n" put in front, as their later LLaVA-OV helper did), or Qwen2-VL's chat template."""
    if family == "llava-ov-7b":
        text = text if text.startswith("<image>") else "<image>\n" * n_images + text
        return f"{SYSTEM}<|im_start|>user\n{text}{END}"
    return f"{SYSTEM}<|im_start|>user\n{PAD * n_images}{text}{END}"


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], object]:
    built: dict = {}

    def get(name: str):
        if name not in built:
            built[name] = load_model(str(build_random_model(name, tmp_path_factory.mktemp(name))), device="cpu")
        return built[name]

    return get


CASES = sorted(set(PAPER_BENCHMARKS) - {blink_name(s) for s in BLINK_SUBTASKS} - {"naturalbench"})


@pytest.mark.parametrize("family", LIKE_CHECKPOINTS)
@pytest.mark.parametrize("task", CASES)
def test_benchmark_prompt_is_the_authors(task: str, family: str, copies, stand_in) -> None:
    adapter = stand_in(family)
    e = next(e for e in load(task, copies).test if e.images)
    assert adapter.render(e) == wrapped(family, authors_text(task, e), len(e.images))


@pytest.mark.parametrize("family", LIKE_CHECKPOINTS)
@pytest.mark.parametrize("subtask", BLINK_SUBTASKS)
def test_blink_prompt_is_the_authors(subtask: str, family: str, copies, stand_in) -> None:
    """Each subtask's stand-in has its real choices and image count (``savs.testing.benchmarks.BLINK_ITEMS``)."""
    adapter = stand_in(family)
    e = load_blink(subtask, source=copies(blink_name(subtask))).test[0]
    question = f"Question {e.meta['idx'].rsplit('_', 1)[1]} of {subtask}?"
    text = AUTHORS_BLINK[subtask].format(question=question)
    assert len(e.images) == BLINK_ITEMS[subtask][0] == text.count("<image>")
    assert adapter.render(e) == wrapped(family, text, len(e.images))


@pytest.mark.parametrize("family", LIKE_CHECKPOINTS)
def test_sugarcrepe_later_wording_stays_available(family: str, copies, stand_in) -> None:
    """Their code from 9599fdd on: no marker, "Please answer"; their LLaVA helper put "<image>\n" first."""
    e = next(iter(load("sugarcrepe", copies, wording="later").test))
    caption = next(iter(load("sugarcrepe", copies).test)).text.split("'")[1]
    assert e.text == f"Does this image show '{caption}'? Please answer with Yes or No."
    assert stand_in(family).render(e) == wrapped(family, e.text, 1)


@pytest.mark.parametrize("family", LIKE_CHECKPOINTS)
def test_naturalbench_vqa_has_no_authors_prompt_and_keeps_ours(family: str, copies, stand_in) -> None:
    e = load("naturalbench", copies).test[0]  # no NaturalBench VQA formatter was released: our prompt in both
    assert e.text == load("naturalbench", copies, protocol="savs").test[0].text and "<image>" not in e.text
    assert stand_in(family).render(e) == wrapped(family, e.text, 1)


@pytest.mark.parametrize("family", LIKE_CHECKPOINTS)
def test_stand_ins_carry_the_real_checkpoint_settings(family: str, stand_in) -> None:
    adapter = stand_in(family)
    template, settings = checkpoint(family)
    assert adapter.processor.chat_template == template
    image = adapter.processor.image_processor.to_dict()
    for key, value in settings["image_processor"].items():
        if key in ("min_pixels", "max_pixels"):
            assert image["size"]["shortest_edge" if key == "min_pixels" else "longest_edge"] == value
        else:
            assert json.loads(json.dumps(image[key])) == value, key
    processor = adapter.processor.to_dict()
    assert all(processor[key] == value for key, value in settings["processor"].items())


def test_llava_ov_image_tokens_follow_the_real_processor(stand_in, copies) -> None:
    """One 384 px SigLIP base view plus anyres crops: ~1,400 image tokens for a small single image, as the 7B sees."""
    adapter = stand_in("llava-ov-7b")
    e = next(e for e in load("eurosat", copies).test)
    ids = adapter.encode([e])["input_ids"][0]
    n_image = int((ids == adapter.processor.tokenizer.convert_tokens_to_ids("<image>")).sum())
    assert n_image > 729  # at least the 27 x 27 base view
