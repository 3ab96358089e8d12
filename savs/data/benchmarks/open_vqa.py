"""VQAv2 and OK-VQA as classification over their most frequent answers, scored with the standard VQA
accuracy against the ten human answers; and the VQA answer normalisation VizWiz shares."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from savs.data.benchmarks._common import Row, Source, describe, examples, rgb, split_parts, tables, take
from savs.examples import Example, Task

SHORT_ANSWER = "Answer the question using a single word or phrase."  # lmms-eval's VQA post-prompt

# --- answer normalisation and VQA accuracy -------------------------------------------------------

_PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!]")  # the official VQA eval's list
_NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """The VQA evaluation's answer normalisation, compacted: lower case, punctuation, number words, articles.

    (The official contraction table, e.g. "dont" -> "don't", is left out; it rarely changes a match.)
    """
    text = re.sub(r"(?<=\d),(?=\d)", "", text.replace("\n", " ").replace("\t", " ").strip().lower())
    text = re.sub(r"\.(?!\d)", "", _PUNCTUATION.sub(" ", text))  # periods, not decimal points
    words = [_NUMBERS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(words)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Standard VQA accuracy in [0, 1]: min(#humans who gave it / 3, 1), over leave-one-out subsets.

    Averaged over the ten subsets of nine human answers, as the official evaluation does.
    """
    pred = normalize_answer(prediction)
    gold = [normalize_answer(a) for a in answers]
    return sum(
        min(1.0, sum(g == pred for g in gold[:i] + gold[i + 1 :]) / 3) for i in range(len(gold))
    ) / len(gold)


def majority_answer(answers: Sequence[str]) -> str:
    """The most frequent normalised answer (ties: the one given first)."""
    return Counter(normalize_answer(a) for a in answers).most_common(1)[0][0]


class VQATask(Task):
    """Classification over frequent answers, also scored as VQA (predictions are normalised first).

    ``accuracy`` = exact match with the class (the majority answer); ``vqa_accuracy`` = VQA accuracy against
    the ten human answers in ``Example.meta["answers"]``.
    """

    def evaluate(self, examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
        """Both accuracies, in %."""
        predictions = [normalize_answer(p) for p in predictions]
        out = super().evaluate(examples, predictions)
        scores = [vqa_accuracy(p, e.meta["answers"]) for e, p in zip(examples, predictions, strict=True)]
        out["vqa_accuracy"] = 100.0 * sum(scores) / len(scores)
        return out


# --- VQAv2 and OK-VQA ----------------------------------------------------------------------------

VQAV2 = Source(
    "lmms-lab/VQAv2",
    columns=("question_id", "image_id", "image", "question", "answers", "multiple_choice_answer"),
)
OKVQA = Source("lmms-lab/OK-VQA", columns=("question_id", "image", "question", "answers"))
N_ANSWERS = 20  # default answer-set size: the most frequent majority answers of the few-shot pool


def _human_answers(row: Row) -> list[str]:
    """The ten human answers (VQAv2 stores dicts with an ``answer`` field, OK-VQA plain strings)."""
    return [a["answer"] if isinstance(a, dict) else a for a in row["answers"]]


def _vqa_label(row: Row) -> str:
    """The class of a question: VQAv2's ``multiple_choice_answer`` or else the majority answer, normalised."""
    if row.get("multiple_choice_answer"):
        return normalize_answer(row["multiple_choice_answer"])
    return majority_answer(_human_answers(row))


def _vqa_examples(row: Row, prefix: str) -> list[Example]:
    """The question with the short-answer prompt; the ten human answers kept for VQA accuracy."""
    return [
        Example(
            text=f"{row['question'].strip()}\n{SHORT_ANSWER}",
            label=_vqa_label(row),
            images=(rgb(row["image"]),),
            uid=prefix,
            meta={
                "question_id": row["question_id"],
                "image_id": row.get("image_id"),
                "answers": _human_answers(row),
            },
        )
    ]


def _load_vqa(
    name: str,
    src: Source,
    split: str,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    source: str | Path | None,
    n_answers: int,
    key: str | None,
) -> Task:
    """Shared VQAv2 / OK-VQA loader: the classes are the pool's ``n_answers`` most frequent answers.

    Questions with another answer are dropped from both sides before ``n_train``/``n_test`` groups are kept.
    """
    if n_answers < 2:
        raise ValueError(f"n_answers must be >= 2, got {n_answers}")
    _, table = tables(src, split, source)
    labels = [_vqa_label(r) for r in table.select_columns([c for c in src.columns if c != "image"])]
    pool, test = split_parts(None, table, seed, key)
    classes = [a for a, _ in Counter(labels[i] for g in pool.groups for i in g).most_common(n_answers)]
    keep = set(classes)
    for part in (pool, test):
        part.groups = [kept for g in part.groups if (kept := [i for i in g if labels[i] in keep])]
    train_examples = examples(pool, take(pool, n_train), _vqa_examples, f"{name}/train")
    test_examples = examples(test, take(test, n_test), _vqa_examples, f"{name}/test")
    return VQATask(
        name=name,
        labels=tuple(classes),
        train=train_examples,
        test=test_examples,
        description=describe(
            f"{src.repo} {split}, classification over the {len(classes)} most frequent answers",
            train_examples,
            test_examples,
            True,
        ),
    )


def load_vqav2(
    split: str = "validation",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    n_answers: int = N_ANSWERS,
) -> Task:
    """VQAv2 (Goyal et al. 2017) as classification over the ``n_answers`` most frequent answers.

    Hub: ``lmms-lab/VQAv2`` (no config), split ``validation`` (testdev/test have no answers; the 214k rows can
    be sliced, e.g. ``split="validation[:20000]"``), columns ``question_id``, ``image_id``, ``image``,
    ``question``, ``multiple_choice_answer`` (the class, normalised), ``answers`` (ten dicts with ``answer``,
    ``answer_confidence``, ``answer_id``); confirmed from the dataset card. The classes are the most frequent
    answers of the few-shot pool (a seeded disjoint quarter of the images); questions with another answer are
    dropped. Metrics: ``accuracy`` (exact class) and ``vqa_accuracy`` (standard VQA accuracy vs the ten human
    answers, in Example.meta["answers"]). ``n_train``/``n_test`` count images.
    """
    return _load_vqa("vqav2", VQAV2, split, n_train, n_test, seed, source, n_answers, key="image_id")


def load_okvqa(
    split: str = "val2014",
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    source: str | Path | None = None,
    n_answers: int = N_ANSWERS,
) -> Task:
    """OK-VQA (Marino et al. 2019) as classification over the ``n_answers`` most frequent answers.

    Hub: ``lmms-lab/OK-VQA`` (no config), split ``val2014`` (its only one: 5,046 questions), columns
    ``question_id``, ``image``, ``question``, ``answers`` (ten strings), ``question_type``, ``answer_type``;
    confirmed from the dataset card. The class of a question is its majority normalised answer; the classes
    are the most frequent ones in the few-shot pool (a seeded disjoint quarter of the questions); questions
    with another answer are dropped. Metrics: ``accuracy`` and ``vqa_accuracy`` as for VQAv2.
    """
    return _load_vqa("okvqa", OKVQA, split, n_train, n_test, seed, source, n_answers, key=None)
