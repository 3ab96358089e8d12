"""Your own data as a ``Task``: a folder of class folders, a ``datasets`` table, or a CSV / JSONL file.

``from_folder(root)``, ``from_dataset(ds)`` and ``from_table(path)`` return a ``Task`` whose examples hold their
images as file paths or table rows, read and decoded only when a model needs the pixels (``LazyImage``), so a
folder of 100,000 photos costs no memory up front. Every image is decoded once while the task is built
(``check_images``), so an unreadable or truncated file is named now, not an hour into extraction.
``from_path(source)`` picks the builder from what ``source`` is (the ``savs`` command's DATA argument).

Prompts. Every example's text is the project's own ("savs") multiple-choice prompt
(``savs.data.prompts.classification_prompt``),
``"<question> Options: <class 1>, <class 2>, .... Answer with the class name."``, classes in label order, with the
question ``DEFAULT_QUESTION`` ("What is shown in this image?") unless a table row has its own (VQA-style).
``prompt=`` changes it: a plain sentence replaces the question (options and answer format are still appended);
a text holding ``{labels}`` and/or ``{question}`` is the whole prompt, with the comma-separated classes and the
row's own question filled in. Rows with their own questions need ``{question}`` in a ``prompt=``, which would
otherwise drop them.

Splits. A folder with ``train/`` and ``test/`` subfolders, a ``DatasetDict`` with train and test splits, or a
table with a ``split`` column (``train`` / ``test``) keeps its split. Anything else is split here: a seeded
stratified split that holds out ``test_fraction`` of every class for test (at least one image, and at least one
left to train on). ``split_seed`` fixes it, so the few-shot draw (``Task.few_shot(k, seed)``) can change while the
test part stays put. The task's description says which happened.

The builders live in submodules (``common``: prompt, checks and split; ``folders``; ``tables``: files and
``datasets``; ``sources``: ``from_path``; ``fashion``: notebook 07's example photos); import them from here.
"""

from savs.data.custom.common import (
    DEFAULT_QUESTION,
    IMAGE_SUFFIXES,
    SPLIT_COLUMN,
    SPLITS,
    TABLE_SUFFIXES,
    TEST_FRACTION,
    check_image,
    check_shots,
    render_prompt,
    stratified_split,
)
from savs.data.custom.fashion import FASHION_PRODUCT_GROUPS, write_fashion_products
from savs.data.custom.folders import from_folder
from savs.data.custom.sources import from_path
from savs.data.custom.tables import from_dataset, from_table

__all__ = [
    "DEFAULT_QUESTION",
    "FASHION_PRODUCT_GROUPS",
    "IMAGE_SUFFIXES",
    "SPLITS",
    "SPLIT_COLUMN",
    "TABLE_SUFFIXES",
    "TEST_FRACTION",
    "check_image",
    "check_shots",
    "from_dataset",
    "from_folder",
    "from_path",
    "from_table",
    "render_prompt",
    "stratified_split",
    "write_fashion_products",
]
