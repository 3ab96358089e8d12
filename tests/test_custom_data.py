"""Tests of the builders of users' own tasks (savs.data.custom): image folders, datasets tables, CSV / JSONL files.

Images are written here with known pixels, so every test can check what an example decodes to against the file
it came from; splits are checked for being disjoint, complete, stratified and seeded.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from savs.data import from_dataset, from_folder, from_path, from_table
from savs.data.custom import (
    DEFAULT_QUESTION,
    FASHION_PRODUCT_GROUPS,
    check_shots,
    render_prompt,
    stratified_split,
    write_fashion_products,
)
from savs.data.prompts import classification_prompt
from savs.examples import LazyImage

datasets.disable_progress_bars()


def colour(k: int) -> tuple[int, int, int]:
    return (k * 37 % 256, k * 91 % 256, k * 13 % 256)


def write_image(path: Path, k: int, size: tuple[int, int] = (9, 7)) -> Path:
    """A small PNG whose pixels depend on ``k``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour(k)).save(path)
    return path


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/<i>.png`` for each class and count, every image distinct."""
    k = 0
    for label, n in counts.items():
        for i in range(n):
            write_image(root / label / f"{i:03d}.png", k)
            k += 1
    return root


def pixel(example) -> tuple[int, int, int]:
    return example.pil_images()[0].getpixel((0, 0))


# --- prompts ---------------------------------------------------------------------------------------------------------


def test_prompt_rules():
    labels = ("bags", "shoes")
    assert render_prompt(labels) == classification_prompt(DEFAULT_QUESTION, labels)
    assert render_prompt(labels, "Which product is this?") == classification_prompt("Which product is this?", labels)
    assert render_prompt(labels, "Is it one of {labels}?") == "Is it one of bags, shoes?"
    assert render_prompt(labels, question="What colour?") == classification_prompt("What colour?", labels)
    assert render_prompt(labels, "Q: {question} A ({labels}):", "Why?") == "Q: Why? A (bags, shoes):"
    with pytest.raises(ValueError, match="empty"):
        render_prompt(labels, "  ")
    with pytest.raises(ValueError, match="no question"):
        render_prompt(labels, "{question}?")
    with pytest.raises(ValueError, match=r"put \{question\}"):
        render_prompt(labels, "Which?", "Why?")
    with pytest.raises(ValueError, match=r"put \{question\}"):  # the template would drop the row's question
        render_prompt(labels, "Which of {labels}?", "Why?")


# --- folders -------------------------------------------------------------------------------------------------------


def test_folder_split_is_stratified_seeded_complete_and_lazy(tmp_path):
    root = make_folder(tmp_path / "shop", {"shoes": 10, "bags": 6, "hats": 2})
    task = from_folder(root, test_fraction=0.3, split_seed=4)
    assert task.labels == ("bags", "hats", "shoes") and task.name == "shop"
    assert "split seed 4" in task.description and "30% of each class" in task.description
    test_counts = Counter(e.label for e in task.test)
    assert test_counts == {"shoes": 3, "bags": 2, "hats": 1}  # round(0.3 n), at least one, never all
    uids = [e.uid for e in task.train + task.test]
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert sorted(uids) == files  # every image once, uid = path relative to root
    for e in task.train + task.test:
        assert isinstance(e.images[0], LazyImage) and e.text == classification_prompt(DEFAULT_QUESTION, task.labels)
        k = int(e.uid.split("/")[1][:3]) + {"shoes": 0, "bags": 10, "hats": 16}[e.label]
        assert pixel(e) == colour(k)  # the example decodes to its own file
    again = from_folder(root, test_fraction=0.3, split_seed=4)
    assert [e.uid for e in again.test] == [e.uid for e in task.test]
    other = {tuple(e.uid for e in from_folder(root, test_fraction=0.3, split_seed=s).test) for s in range(5)}
    assert len(other) > 1  # the seed matters


def test_folder_with_train_and_test_keeps_its_split(tmp_path):
    make_folder(tmp_path / "d" / "train", {"a": 3, "b": 2})
    make_folder(tmp_path / "d" / "test", {"a": 1, "b": 1})
    task = from_folder(tmp_path / "d", "Which letter?")
    assert [e.uid for e in task.train] == ["train/a/000.png", "train/a/001.png", "train/a/002.png", "train/b/000.png",
                                          "train/b/001.png"]  # fmt: skip
    assert [e.uid for e in task.test] == ["test/a/000.png", "test/b/000.png"]
    assert task.train[0].text == classification_prompt("Which letter?", ("a", "b"))
    assert "split as given" in task.description


def test_folder_skips_hidden_and_non_images_finds_nested_and_any_case(tmp_path):
    root = make_folder(tmp_path / "r", {"x": 2, "y": 2})
    write_image(root / "x" / "deeper" / "IMG.PNG", 50)
    write_image(root / "y" / ".hidden.png", 51)
    write_image(root / ".ipynb_checkpoints" / "z.png", 52)
    (root / "x" / "notes.txt").write_text("not an image")
    task = from_folder(root)
    assert sorted(e.uid for e in task.train + task.test) == [
        "x/000.png", "x/001.png", "x/deeper/IMG.PNG", "y/000.png", "y/001.png",
    ]  # fmt: skip


def test_labels_fix_the_label_set_and_order(tmp_path):
    root = make_folder(tmp_path / "r", {"b": 2, "a": 2})
    task = from_folder(root, labels=["b", "a", "c"])
    assert task.labels == ("b", "a", "c") and "Options: b, a, c." in task.train[0].text
    with pytest.raises(ValueError, match=r"classes \['b'\] outside"):
        from_folder(root, labels=["a", "c"])


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"a": 2, "empty": 0}, r"class folder .*empty holds no images"),
        ({"only": 3}, r"1 class\(es\) \('only'\); a classifier needs 2"),
        ({"a": 3, "b": 1}, r"class 'b' has 1 image\(s\): a split needs at least 2"),
    ],
)
def test_folder_errors(tmp_path, layout, message):
    root = tmp_path / "r"
    for label, n in layout.items():
        (root / label).mkdir(parents=True)
        make_folder(root, {label: n})
    with pytest.raises(ValueError, match=message):
        from_folder(root)


def test_folder_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_folder(tmp_path / "nowhere")
    write_image(tmp_path / "file.png", 1)
    with pytest.raises(NotADirectoryError):
        from_folder(tmp_path / "file.png")
    (tmp_path / "bare").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        from_folder(tmp_path / "bare")
    loose = make_folder(tmp_path / "loose", {"a": 2, "b": 2})
    write_image(loose / "stray.jpg", 9)
    with pytest.raises(ValueError, match=r"1 image\(s\) outside class folders \(e.g. stray.jpg\)"):
        from_folder(loose)
    make_folder(tmp_path / "half" / "train", {"a": 2, "b": 2})
    with pytest.raises(ValueError, match="has a train/ folder but no test/ folder"):
        from_folder(tmp_path / "half")
    make_folder(tmp_path / "extra" / "train", {"a": 2, "b": 2})
    make_folder(tmp_path / "extra" / "test", {"a": 1, "c": 1})
    with pytest.raises(ValueError, match=r"classes \['c'\] that .*train lacks"):
        from_folder(tmp_path / "extra")
    with pytest.raises(ValueError, match="test_fraction"):
        from_folder(make_folder(tmp_path / "ok", {"a": 2, "b": 2}), test_fraction=1.0)


def test_unreadable_image_is_named(tmp_path):
    root = make_folder(tmp_path / "r", {"a": 2, "b": 2})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    with pytest.raises(ValueError, match=r"cannot read image .*b/broken\.jpg"):
        from_folder(root)
    assert len(from_folder(root, check_images=False).train + from_folder(root, check_images=False).test) == 5


def test_truncated_jpeg_is_named(tmp_path):
    root = make_folder(tmp_path / "r", {"a": 2, "b": 2})
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "b" / "cut.jpg", quality=90)
    data = (root / "b" / "cut.jpg").read_bytes()
    (root / "b" / "cut.jpg").write_bytes(data[: len(data) // 2])  # header intact: verify() passes it
    with pytest.raises(ValueError, match=r"cannot read image .*b/cut\.jpg: OSError: image file is truncated"):
        from_folder(root)


def test_fewer_images_than_shots(tmp_path):
    task = from_folder(make_folder(tmp_path / "r", {"a": 6, "b": 3}))
    check_shots(task, 2)
    with pytest.raises(ValueError, match=r"3 shots per class asked.* 1 class\(es\) \('b': 2\)"):
        check_shots(task, 3)
    with pytest.raises(ValueError, match="label 'b' has 2 examples"):
        task.few_shot(3)


def test_stratified_split_keeps_other_classes_when_one_is_added():
    base = {"a": list(range(10)), "b": list(range(20))}
    _, test = stratified_split(base, 0.2, seed=1)
    _, test_more = stratified_split({**base, "c": list(range(5))}, 0.2, seed=1)
    assert test_more["a"] == test["a"] and test_more["b"] == test["b"] and len(test_more["c"]) == 1


# --- datasets tables -----------------------------------------------------------------------------------------------


def image_table(n_per_class: int, names=("cat", "dog")) -> datasets.Dataset:
    rows = [
        {"img": Image.new("RGB", (6, 5), colour(10 * c + i)), "y": c, "q": f"question {c}-{i}"}
        for c in range(len(names))
        for i in range(n_per_class)
    ]
    features = datasets.Features(
        {"img": datasets.Image(), "y": datasets.ClassLabel(names=list(names)), "q": datasets.Value("string")}
    )
    return datasets.Dataset.from_list(rows, features=features)


def test_from_dataset_reads_rows_lazily_and_splits(tmp_path):
    table = image_table(5, names=("zebra", "ant"))
    task = from_dataset(table, image="img", label="y", test_fraction=0.4, name="animals")
    assert task.labels == ("zebra", "ant")  # the ClassLabel's order, not sorted
    assert Counter(e.label for e in task.test) == {"zebra": 2, "ant": 2}
    for e in task.train + task.test:
        assert isinstance(e.images[0], LazyImage)
        row = int(e.uid.rsplit("/", 1)[1])
        assert pixel(e) == colour(10 * (row // 5) + row % 5)
        assert e.label == ("zebra", "ant")[row // 5]
    with_q = from_dataset(table, image="img", label="y", text="q")
    e = with_q.train[0]
    row = int(e.uid.rsplit("/", 1)[1])
    assert e.text == classification_prompt(f"question {row // 5}-{row % 5}", ("zebra", "ant"))


def test_from_dataset_keeps_a_datasetdict_split_and_reads_paths(tmp_path):
    for i in range(6):
        write_image(tmp_path / "imgs" / f"{i}.png", i)
    rows = [{"path": f"imgs/{i}.png", "kind": "odd" if i % 2 else "even"} for i in range(6)]
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:4]), "validation": datasets.Dataset.from_list(rows[4:])}
    )
    with pytest.raises(ValueError, match=r"splits \['train', 'validation'\], not 'train' and 'test'"):
        from_dataset(dd, image="path", label="kind", image_root=tmp_path)
    task = from_dataset(dd, image="path", label="kind", test_split="validation", image_root=tmp_path)
    assert task.labels == ("even", "odd") and len(task.train) == 4 and len(task.test) == 2
    assert [pixel(e) for e in task.test] == [colour(4), colour(5)]
    assert "split as given" in task.description


def test_from_dataset_errors(tmp_path):
    table = image_table(3)
    with pytest.raises(
        ValueError, match=r"label column 'label' is not in dataset; its columns are \['img', 'y', 'q'\]"
    ):
        from_dataset(table, image="img")
    with pytest.raises(ValueError, match="image column 'image' is not in"):
        from_dataset(table, label="y")
    with pytest.raises(ValueError, match=r"image column 'y' of dataset holds ClassLabel.*not images or image paths"):
        from_dataset(table, image="y", label="y")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    bad = datasets.Dataset.from_list([{"image": {"bytes": b"nope", "path": None}, "label": "a"}] * 2, features=features)
    with pytest.raises(ValueError, match="cannot read image dataset row 1"):
        from_dataset(bad)
    with pytest.raises(TypeError):
        from_dataset([1, 2])


# --- CSV / JSONL -----------------------------------------------------------------------------------------------------


def test_csv_table_with_relative_paths_and_seeded_split(tmp_path):
    for i in range(8):
        write_image(tmp_path / "pics" / f"{i}.png", i)
    lines = ["file,kind"] + [f"pics/{i}.png,{'odd' if i % 2 else 'even'}" for i in range(8)]
    (tmp_path / "items.csv").write_text("\n".join(lines) + "\n")
    task = from_table(tmp_path / "items.csv", image="file", label="kind")
    assert task.labels == ("even", "odd") and len(task.test) == 2 and len(task.train) == 6
    for e in task.train + task.test:
        row = int(e.uid.split(":")[1]) - 1
        assert e.uid.startswith("items.csv:") and pixel(e) == colour(row)
    with pytest.raises(
        ValueError, match=r"label column 'label' is not in .*items.csv; its columns are \['file', 'kind'\]"
    ):
        from_table(tmp_path / "items.csv", image="file")


def test_table_labels_lose_surrounding_spaces(tmp_path):
    write_image(tmp_path / "a.png", 1)
    (tmp_path / "t.csv").write_text("image,label\na.png,cat\na.png, dog\na.png,cat \na.png, dog\n")
    task = from_table(tmp_path / "t.csv")
    assert task.labels == ("cat", "dog") and {e.label for e in task.train + task.test} == {"cat", "dog"}
    assert from_table(tmp_path / "t.csv", labels=("dog", "cat")).labels == ("dog", "cat")


def test_jsonl_vqa_rows_with_questions_and_a_split_column(tmp_path):
    write_image(tmp_path / "a.png", 1)
    rows = [
        {"image": "a.png", "label": "yes", "question": "Is it red?", "split": "train"},
        {"image": "a.png", "label": "no", "question": "Is it blue?", "split": "train"},
        {"image": str(tmp_path / "a.png"), "label": "no", "question": "Is it green?", "split": "test"},
    ]
    path = tmp_path / "vqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    task = from_table(path)
    assert task.labels == ("no", "yes")
    assert [e.text for e in task.train] == [
        classification_prompt(q, ("no", "yes")) for q in ("Is it red?", "Is it blue?")
    ]
    assert [e.uid for e in task.test] == ["vqa.jsonl:3"] and "its 'split' column" in task.description
    templated = from_table(path, "{question} Say {labels}.")
    assert templated.test[0].text == "Is it green? Say no, yes."
    with pytest.raises(ValueError, match=r"put \{question\}"):
        from_table(path, "Which?")
    with pytest.raises(ValueError, match=r"put \{question\}"):
        from_table(path, "Which of {labels}?")


def test_table_errors(tmp_path):
    write_image(tmp_path / "a.png", 1)
    (tmp_path / "t.csv").write_text("image,label,split\na.png,x,train\nmissing.png,y,test\n")
    with pytest.raises(FileNotFoundError, match=r"t.csv row 2: image .*missing.png does not exist"):
        from_table(tmp_path / "t.csv")
    (tmp_path / "s.csv").write_text("image,label,split\na.png,x,train\na.png,y,val\n")
    with pytest.raises(ValueError, match="row 2: split is 'val', neither 'train' nor 'test'"):
        from_table(tmp_path / "s.csv")
    (tmp_path / "n.csv").write_text("image,label\na.png,x\na.png,\n")
    with pytest.raises(ValueError, match="row 2 has no label"):
        from_table(tmp_path / "n.csv")
    (tmp_path / "plain.csv").write_text("image,label\na.png,x\na.png,x\na.png,y\na.png,y\n")
    with pytest.raises(ValueError, match=r"split column 'folds' is not in .*plain.csv; its columns are \['image'"):
        from_table(tmp_path / "plain.csv", split="folds")
    assert "seeded stratified split" in from_table(tmp_path / "plain.csv").description  # the default is optional
    (tmp_path / "j.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSONL"):
        from_table(tmp_path / "j.jsonl")
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(ValueError, match="a table must be one of"):
        from_table(tmp_path / "t.xlsx")


# --- from_path: what the command line's DATA means -------------------------------------------------------------------


def test_from_path_dispatches(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "folder", {"a": 2, "b": 2})
    assert from_path(folder).labels == ("a", "b")
    with pytest.raises(ValueError, match="apply to tables only"):
        from_path(folder, label="kind")
    image_table(2).save_to_disk(str(tmp_path / "saved"))
    saved = from_path(tmp_path / "saved", image="img", label="y")
    assert saved.labels == ("cat", "dog") and saved.name == "saved"
    rows = [f"folder/{c}/00{i}.png,{c}" for c in "ab" for i in range(2)]
    (tmp_path / "t.csv").write_text("\n".join(["image,label", *rows]) + "\n")
    assert len(from_path(tmp_path / "t.csv", test_fraction=0.5).test) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_path(tmp_path / "nothing")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="could not load 'no-such/dataset' from the Hugging Face Hub"):
        from_path("hf:no-such/dataset")


# --- the notebook's example data -------------------------------------------------------------------------------------


def test_fashion_products_are_the_right_fashion_mnist_images(tmp_path):
    from savs.data.offline import FASHION_MNIST_LABELS, _fashion_mnist_file, _read_idx

    root = write_fashion_products(tmp_path / "p", per_class=3, size=28)
    labels = _read_idx(_fashion_mnist_file("t10k-labels-idx1-ubyte.gz"))
    images = _read_idx(_fashion_mnist_file("t10k-images-idx3-ubyte.gz"))
    task = from_folder(root)
    assert task.labels == tuple(sorted(FASHION_PRODUCT_GROUPS))
    for e in task.train + task.test:
        index = int(Path(e.uid).stem.removeprefix("t10k-"))
        assert FASHION_MNIST_LABELS[labels[index]] in FASHION_PRODUCT_GROUPS[e.label]
        decoded = np.asarray(e.pil_images()[0].convert("L"), dtype=float)
        assert np.abs(decoded - images[index]).mean() < 8  # JPEG, not bit-exact
    with pytest.raises(FileExistsError):
        write_fashion_products(root)
