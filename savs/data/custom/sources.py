"""Any of the builders, picked from a string: the ``savs`` command's DATA argument (``from_path``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from savs.data.custom.folders import from_folder
from savs.data.custom.tables import from_dataset, from_table
from savs.examples import Task

if TYPE_CHECKING:
    import datasets


def from_path(
    source: str | Path,
    prompt: str | None = None,
    *,
    image: str | None = None,
    label: str | None = None,
    text: str | None = None,
    train_split: str | None = None,
    test_split: str | None = None,
    **options: Any,
) -> Task:
    """The task ``source`` names: ``hf:<repo>[:<config>]`` (a Hub dataset), a CSV / TSV / JSONL / JSON file, a
    ``datasets`` ``save_to_disk`` folder, or an image folder (the ``savs`` command's DATA argument).

    The column and split options apply to tables only (None: the builder's default); ``options`` (``labels``,
    ``test_fraction``, ``split_seed``, ``check_images``, ``progress``) go to every builder.
    """
    columns = {k: v for k, v in {"image": image, "label": label, "text": text}.items() if v is not None}
    splits = {k: v for k, v in {"train_split": train_split, "test_split": test_split}.items() if v is not None}
    spec = str(source)
    if spec.startswith("hf:"):
        return from_dataset(_hub_dataset(spec), prompt, name=spec.removeprefix("hf:"), **columns, **splits, **options)
    path = Path(source)
    if path.is_file():
        if splits:
            raise ValueError(f"{path} is a table file: --train-split / --test-split apply to datasets only")
        return from_table(path, prompt, **columns, **options)
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        import datasets

        table = datasets.load_from_disk(str(path))
        return from_dataset(table, prompt, name=path.resolve().name, **columns, **splits, **options)
    if path.is_dir():
        if columns or splits:
            given = ", ".join(sorted({**columns, **splits}))
            raise ValueError(f"{path} is an image folder: the column / split options ({given}) apply to tables only")
        return from_folder(path, prompt, **options)
    raise FileNotFoundError(f"{source} does not exist (expected an image folder, a table file or hf:<dataset>)")


def _hub_dataset(spec: str) -> datasets.DatasetDict:
    """``hf:<repo>[:<config>]`` loaded with ``datasets.load_dataset``; a failure says what was asked."""
    import datasets

    repo, _, config = spec.removeprefix("hf:").partition(":")
    try:
        return datasets.load_dataset(repo, config or None)
    except Exception as e:  # offline, gated, unknown: one clear error
        raise FileNotFoundError(f"could not load {repo!r} from the Hugging Face Hub: {type(e).__name__}: {e}") from e
