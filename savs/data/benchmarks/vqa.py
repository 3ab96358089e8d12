"""The paper's VQA benchmarks with fixed label sets: BLINK (per-subtask multiple choice), NaturalBench
(question / image / group accuracy over groups of two questions x two images), VizWiz (answerable vs
unanswerable) and MME (yes/no pairs, acc and acc+). VQAv2 and OK-VQA are in ``open_vqa``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from savs.data.benchmarks._common import (
    GroupedTask,
    Row,
    Source,
    build,
    check_protocol,
    present_images,
    rgb,
    tables,
)
from savs.data.benchmarks.open_vqa import SHORT_ANSWER, majority_answer, normalize_answer
from savs.data.prompts import YES_NO_LABELS, image_markers, yes_no_prompt
from savs.examples import Example, Task

# --- BLINK ---------------------------------------------------------------------------------------

BLINK_REPO = "BLINK-Benchmark/BLINK"
BLINK_SUBTASKS = (
    "Art_Style", "Counting", "Forensic_Detection", "Functional_Correspondence", "IQ_Test", "Jigsaw",
    "Multi-view_Reasoning", "Object_Localization", "Relative_Depth", "Relative_Reflectance",
    "Semantic_Correspondence", "Spatial_Relation", "Visual_Correspondence", "Visual_Similarity",
)  # fmt: skip
BLINK_COLUMNS = ("idx", "question", "prompt", "choices", "answer", "image_1", "image_2", "image_3", "image_4")
LETTER_ANSWER = "Answer with the option's letter in parentheses, e.g. (A)."
# The authors' question per subtask (None: the item's own question) and how their prompt introduces the options,
# from the per-subtask prompts listed in their format_blink.
AUTHORS_BLINK: dict[str, tuple[str | None, str]] = {
    "Art_Style": ("Which image shares the same style as the reference image?", "choices"),
    "Counting": (None, "choices"),
    "Forensic_Detection": ("Which image is most likely to be a real photograph?", "choices"),
    "Functional_Correspondence": ("Which point is corresponding to the reference point?", "choices"),
    "IQ_Test": ("Which one picture follows the same pattern or rule established by the previous pictures?", "choices"),
    "Jigsaw": ("Which image is the missing part in the first image?", "choices"),
    "Multi-view_Reasoning": (
        "The first image is from the beginning of the video and the second image is from the end. "
        "Is the camera moving left or right when shooting the video?",
        "options",
    ),
    "Object_Localization": (None, "options"),
    "Relative_Depth": ("Which point is closer to the camera?", "choices"),
    "Relative_Reflectance": ("Which point has darker surface color, or the colors is about the same?", "choices"),
    "Semantic_Correspondence": ("Which point is corresponding to the reference point?", "choices"),
    "Spatial_Relation": (None, "choices"),
    "Visual_Correspondence": (
        "Which point on the second image corresponds to the point in the first image?",
        "options",
    ),
    "Visual_Similarity": ("Which image is most similar to the reference image?", "choices"),
}


def blink_name(subtask: str) -> str:
    """Registry name of a BLINK subtask, e.g. "blink_multi_view_reasoning"."""
    return "blink_" + subtask.lower().replace("-", "_")


def _letter(answer: str) -> str:
    """A BLINK answer as "(X)" whether the data write "(A)" or "A"."""
    return f"({answer.strip().strip('()').upper()})"


def blink_prompt(subtask: str, row: Row, n_images: int, protocol: str) -> str:
    """The question over the row's images: the authors' per-subtask form ("<image>\n" per image, the question,
    "Select from the following choices. (A) .. (B) .."), or ours (BLINK's own ``prompt`` and a letter format)."""
    if protocol == "savs":
        return f"{row['prompt'].strip()}\n{LETTER_ANSWER}"
    question, word = AUTHORS_BLINK[subtask]
    options = " ".join(f"({chr(ord('A') + k)}) {choice}" for k, choice in enumerate(row["choices"]))
    return f"{image_markers(n_images)}{question or row['question'].strip()} Select from the following {word}. {options}"


def _blink_examples(row: Row, prefix: str, subtask: str, protocol: str) -> list[Example]:
    """The row's question over its one to four images."""
    images = present_images(row[f"image_{k}"] for k in (1, 2, 3, 4))
    return [
        Example(
            text=blink_prompt(subtask, row, len(images), protocol),
            label=_letter(row["answer"]),
            images=images,
            uid=prefix,
            meta={"idx": row["idx"], "choices": list(row["choices"])},
        )
    ]


def val_position(e: Example) -> int:
    """An item's place in BLINK's val order: the number ending its ``idx`` ("val_Art_Style_12" -> 12)."""
    return int(e.meta["idx"].rsplit("_", 1)[1])


@dataclass
class AuthorsBlinkTask(Task):
    """BLINK in the authors' split (few-shot items from val, the rest of val tested). Seed 0's few-shot set is the
    one their released file shows: the first ``k`` items of each letter in val order (their Art_Style file holds val
    items 1-38, 40 and 45: 20 per letter); other seeds draw at random, to show the spread one fixed set hides."""

    def few_shot(self, k: int, seed: int = 0) -> list[Example]:
        drawn = super().few_shot(k, seed)  # per-letter counts (a short letter gives all but one), checks, warnings
        if seed != 0:
            return drawn
        want = Counter(e.label for e in drawn)
        ordered = sorted(self.train, key=val_position)
        return [e for lab in self.labels for e in [x for x in ordered if x.label == lab][: want[lab]]]


def load_blink(
    subtask: str,
    split: str = "val",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    protocol: str = "authors",
) -> Task:
    """One BLINK (Fu et al. 2024) subtask, multiple choice; SAVs are extracted per subtask, as in the paper.

    Hub: ``BLINK-Benchmark/BLINK``, config = the subtask (14: Art_Style ... Visual_Similarity, the ones the
    authors' preprocess.py prompts for), splits ``val`` / ``test`` (test answers are hidden, so ``val`` is the
    evaluated split), columns ``idx``, ``question``, ``prompt`` (question with the lettered options),
    ``choices``, ``answer`` ("(A)"), ``image_1``..``image_4`` (None when absent); confirmed from public
    evaluation scripts. Labels are "(A)", "(B)", ... up to the subtask's most options. We take the main table's
    BLINK number as the mean over subtasks (an assumption). ``source``: a DatasetDict with the ``val`` split.

    ``protocol="authors"``: their per-subtask prompts (``AUTHORS_BLINK``) and split: each seed's few-shot set is
    taken from ``val`` (20 per letter in the paper; a letter with too few items gives all but one; seed 0 the first
    ones in val order, as their file, ``AuthorsBlinkTask``) and the rest of ``val`` is that seed's test set
    (``Task.pool_is_test``). ``"savs"``: BLINK's own prompt column plus a letter
    instruction, and a seeded disjoint quarter of ``val`` as the pool.
    """
    check_protocol(protocol)
    if subtask not in BLINK_SUBTASKS:
        raise ValueError(f"unknown BLINK subtask {subtask!r}; known: {', '.join(BLINK_SUBTASKS)}")
    _, table = tables(Source(BLINK_REPO, subtask, BLINK_COLUMNS), split, source)
    n_options = max(len(c) for c in table["choices"])
    return build(
        blink_name(subtask),
        tuple(f"({chr(ord('A') + k)})" for k in range(n_options)),
        None,
        table,
        partial(_blink_examples, subtask=subtask, protocol=protocol),
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"BLINK {subtask} {split} ({BLINK_REPO}, Apache-2.0), multiple choice",
        pool_is_test=protocol == "authors",
        task_type=AuthorsBlinkTask if protocol == "authors" else Task,
    )


# --- NaturalBench --------------------------------------------------------------------------------

NATURALBENCH = Source(
    "BaiqiL/NaturalBench",
    columns=(
        "Image_0", "Image_1", "Question_0", "Question_1", "Image_0_Question_0", "Image_1_Question_0",
        "Image_0_Question_1", "Image_1_Question_1", "Question_Type",
    ),
    renames=(("Question Type", "Question_Type"),),
)  # fmt: skip
NATURALBENCH_LABELS = {"yes_no": YES_NO_LABELS, "multiple_choice": ("A", "B")}
# the official multiple-choice suffix (naturalbench_vqa.py)
NATURALBENCH_MC_SUFFIX = "Please output the letter corresponding to the correct option."
NATURALBENCH_UNITS = {"q_acc": ("group", "question"), "i_acc": ("group", "image"), "g_acc": ("group",)}


def _naturalbench_examples(row: Row, prefix: str) -> list[Example]:
    """The group's four (question, image) examples in the official order q0i0, q0i1, q1i0, q1i1; ``meta["query"]``:
    the question alone; ``meta["answer_set"]``: its type's labels (Yes/No or A/B), which a prediction keeps to."""
    kind = row["Question_Type"]
    out = []
    for q in (0, 1):
        question = row[f"Question_{q}"].strip()
        text = yes_no_prompt(question) if kind == "yes_no" else f"{question} {NATURALBENCH_MC_SUFFIX}"
        for i in (0, 1):
            answer = row[f"Image_{i}_Question_{q}"].strip().rstrip(".")
            out.append(
                Example(
                    text=text,
                    label=answer.capitalize() if kind == "yes_no" else answer.upper(),
                    images=(rgb(row[f"Image_{i}"]),),
                    uid=f"{prefix}/q{q}i{i}",
                    meta={
                        "group": prefix,
                        "group_size": 4,
                        "question": q,
                        "image": i,
                        "question_type": kind,
                        "answer_set": NATURALBENCH_LABELS[kind],  # the classifiers answer from it (a masked vote)
                        "query": question,
                    },
                )
            )
    return out


def load_naturalbench(
    split: str = "train",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    question_types: Sequence[str] = ("yes_no", "multiple_choice"),
    protocol: str = "authors",
) -> Task:
    """NaturalBench (Li et al. 2024) VQA: groups of two questions x two images with different answers.

    Hub: ``BaiqiL/NaturalBench`` (no config), split ``train`` (its only one: 1,900 groups), columns
    ``Image_0``, ``Image_1``, ``Question_0``, ``Question_1``, ``Image_{i}_Question_{q}`` (answers: Yes/No or
    A/B), ``Question_Type`` ("yes_no" / "multiple_choice"; some card revisions spell it ``Question Type``);
    confirmed from the dataset card and the official naturalbench_vqa.py. Prompts: yes/no questions end
    "Answer with Yes or No.", multiple-choice ones with the official letter suffix. Metrics as the paper's
    (``run_natural_ret.py``): ``q_acc`` = % of (group, question) right on both images, ``i_acc`` = % of
    (group, image) right on both questions, ``g_acc`` = % of groups all right. The few-shot pool is a seeded
    disjoint quarter of the groups. ``n_train``/``n_test`` count groups. ``protocol``: the authors released no
    NaturalBench VQA prompt, so both protocols use this one.
    """
    check_protocol(protocol)
    unknown = set(question_types) - set(NATURALBENCH_LABELS)
    if unknown or not question_types:
        raise ValueError(f"question_types must be a non-empty subset of {sorted(NATURALBENCH_LABELS)}")
    _, table = tables(NATURALBENCH, split, source)
    kept = table.filter(lambda kind: kind in question_types, input_columns="Question_Type")
    if not len(kept):
        raise ValueError(
            f"no NaturalBench rows of types {question_types}: {sorted(set(table['Question_Type']))}"
        )
    return build(
        "naturalbench",
        tuple(label for kind in question_types for label in NATURALBENCH_LABELS[kind]),
        None,
        kept,
        _naturalbench_examples,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"NaturalBench VQA ({NATURALBENCH.repo}, Apache-2.0) {'+'.join(question_types)} groups of four",
        task_type=partial(GroupedTask, units=NATURALBENCH_UNITS),
    )


# --- VizWiz --------------------------------------------------------------------------------------

VIZWIZ = Source("lmms-lab/VizWiz-VQA", columns=("question_id", "image", "question", "answers"))
VIZWIZ_LABELS = ("Answerable", "Unanswerable")
VIZWIZ_SUFFIX = "When the provided information is insufficient, respond with Unanswerable."  # the authors'


class VizWizTask(Task):
    """Answerable vs unanswerable; a free answer other than "Unanswerable" counts as "Answerable".

    So zero-shot generations (which answer the question) are scored as the paper scores them.
    """

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
        """Accuracy in %, after mapping each prediction to one of the two labels."""
        unanswerable = normalize_answer(VIZWIZ_LABELS[1])
        mapped = [
            VIZWIZ_LABELS[1] if normalize_answer(p) == unanswerable else VIZWIZ_LABELS[0] for p in predictions
        ]
        return super().evaluate(examples, mapped)


def vizwiz_prompt(question: str, protocol: str) -> str:
    """The question with the authors' instructions: their string verbatim (note the space before the first line
    break), or ours (question stripped)."""
    if protocol == "authors":
        return f"{image_markers(1)}{question} \n{VIZWIZ_SUFFIX}\n{SHORT_ANSWER}"
    return f"{question.strip()}\n{VIZWIZ_SUFFIX}\n{SHORT_ANSWER}"


def _vizwiz_examples(row: Row, prefix: str, protocol: str) -> list[Example]:
    """The question with the authors' instructions; Unanswerable when most of the ten answers say so."""
    unanswerable = majority_answer(row["answers"]) == normalize_answer(VIZWIZ_LABELS[1])
    return [
        Example(
            text=vizwiz_prompt(row["question"], protocol),
            label=VIZWIZ_LABELS[1] if unanswerable else VIZWIZ_LABELS[0],
            images=(rgb(row["image"]),),
            uid=prefix,
            meta={"question_id": row["question_id"], "answers": list(row["answers"])},
        )
    ]


def load_vizwiz(
    split: str = "val",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    protocol: str = "authors",
) -> Task:
    """VizWiz-VQA (Gurari et al. 2018) as the paper uses it: is the question answerable from the image?

    Hub: ``lmms-lab/VizWiz-VQA`` (no config), split ``val`` (``test`` has no answers), columns
    ``question_id``, ``image``, ``question``, ``answers`` (ten strings), ``category``; confirmed from the
    dataset card. A question is "Unanswerable" when its most frequent (normalised) answer is "unanswerable"
    (the ``category`` column's values are unconfirmed, so it is not used). The prompt is the authors': the
    question, "When the provided information is insufficient, respond with Unanswerable.", "Answer the
    question using a single word or phrase." The few-shot pool is a seeded disjoint quarter of ``split`` (the
    authors drew theirs from VizWiz's train split, which this hub copy does not carry). ``protocol="authors"``:
    ``<image>\n{question} \nWhen the provided information is insufficient, respond with Unanswerable.\nAnswer the
    question using a single word or phrase.`` verbatim.
    """
    check_protocol(protocol)
    _, table = tables(VIZWIZ, split, source)
    return build(
        "vizwiz",
        VIZWIZ_LABELS,
        None,
        table,
        partial(_vizwiz_examples, protocol=protocol),
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"VizWiz-VQA {split} ({VIZWIZ.repo}), answerable vs unanswerable",
        task_type=VizWizTask,
    )


# --- MME -----------------------------------------------------------------------------------------

MME = Source("lmms-lab/MME", columns=("question_id", "image", "question", "answer", "category"))
MME_SUFFIX = "Please answer yes or no."  # ends every MME question; replaced by the shared Yes/No prompt


def _mme_examples(row: Row, prefix: str) -> list[Example]:
    """The yes/no question; its group is the image's question pair (shared ``question_id``)."""
    question = row["question"].strip()
    question = question[: -len(MME_SUFFIX)].strip() if question.endswith(MME_SUFFIX) else question
    return [
        Example(
            text=yes_no_prompt(question),
            label=row["answer"].strip().rstrip(".").capitalize(),
            images=(rgb(row["image"]),),
            uid=prefix,
            meta={"group": row["question_id"], "group_size": 2, "category": row["category"]},
        )
    ]


def load_mme(
    split: str = "test",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
) -> Task:
    """MME (Fu et al. 2023): two yes/no questions per image; metrics acc (``accuracy``) and ``acc_plus``.

    ``acc_plus`` (acc+) = % of images with both questions right.

    Hub: ``lmms-lab/MME`` (no config), split ``test`` (its only one), columns ``question_id`` (shared by an
    image's two questions), ``image``, ``question`` (ending "Please answer yes or no."), ``answer`` (Yes/No),
    ``category``; confirmed from lmms-eval's mme task. The few-shot pool is a seeded disjoint quarter of the
    image pairs. ``n_train``/``n_test`` count pairs.
    """
    _, table = tables(MME, split, source)
    return build(
        "mme",
        YES_NO_LABELS,
        None,
        table,
        _mme_examples,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        title=f"MME ({MME.repo}) yes/no pairs",
        key="question_id",
        task_type=partial(GroupedTask, units={"acc_plus": ("group",)}),
    )
