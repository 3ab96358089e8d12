"""Tests of the ``savs`` command, in-process through ``savs.cli.main`` (and once as ``python -m savs``).

Each command's output is checked against the library computing the same thing on its own (``fit_sav``,
``SAVPipeline.score`` / ``predict`` / ``predict_proba``, ``extract_heads``), on a tiny random-weight model and
folders of images written here; every error path the command promises is checked for its exit status and its one
line on stderr.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file

from savs import SAVPipeline, extract_heads, fit_sav, paths
from savs.cli import main
from savs.data import from_folder, from_table
from savs.data.custom import render_prompt
from savs.examples import Example

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILY = "llava_onevision"
SHOTS, HEADS, FRACTION = 3, 4, "0.5"
CLASSES = ("boots", "caps", "mugs")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The error line: the last line on stderr, which must be the only one that is not a progress note."""
        assert "Traceback" not in self.err, self.err
        return self.err.strip().splitlines()[-1]


def task_of(folder: Path) -> dict:
    """The task record ``savs fit`` saved in the classifier's sav.json."""
    return json.loads((folder / "sav.json").read_text())["task"]


def run(*argv: object) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Result(code, out.getvalue(), err.getvalue())


def write_image(path: Path, seed: int, tint: int) -> Path:
    """A noisy image tinted by its class, so the classes differ in more than their names."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (24, 24, 3), dtype=np.uint8)
    pixels[..., tint] += 120
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def make_shop(root: Path, per_class: int = 8) -> Path:
    for c, label in enumerate(CLASSES):
        for i in range(per_class):
            write_image(root / label / f"{i:02d}.png", 100 * c + i, c)
    return root


@dataclass
class Fitted:
    model: str
    data: Path
    dir: Path
    cache: Path
    fit: Result

    def args(self, *extra: object) -> list[str]:
        return [*map(str, extra), "--cache-dir", str(self.cache), "-q"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_dir) -> Fitted:
    root = tmp_path_factory.mktemp("cli")
    model, data, out, cache = tiny_dir(FAMILY), make_shop(root / "shop"), root / "sav", root / "cache"
    res = run("fit", model, data, "--shots", SHOTS, "--n-heads", HEADS, "--test-fraction", FRACTION, "--out", out,
              "--cache-dir", cache, "-q")  # fmt: skip
    assert res.code == 0, res.err
    return Fitted(model, data, out, cache, res)


@pytest.fixture(scope="module")
def task(fitted):
    return from_folder(fitted.data, test_fraction=float(FRACTION))


@pytest.fixture(scope="module")
def pipeline(fitted, tiny_adapter):
    return SAVPipeline.load(fitted.dir, adapter=tiny_adapter(FAMILY))


# --- savs fit ------------------------------------------------------------------------------------------------------


def test_fit_saves_what_fit_sav_selects(fitted, task, pipeline, tiny_adapter):
    few_shot = task.few_shot(SHOTS, seed=0)
    reference = fit_sav(tiny_adapter(FAMILY), few_shot, n_heads=HEADS)
    np.testing.assert_array_equal(pipeline.heads, reference.heads)
    np.testing.assert_allclose(pipeline.classifier.class_means_, reference.classifier.class_means_, rtol=1e-6)
    assert sorted(p.name for p in fitted.dir.iterdir()) == ["sav.json", "sav.safetensors"]  # one json: no task.json
    meta = SAVPipeline.load(fitted.dir, adapter=tiny_adapter(FAMILY)).task
    assert meta == task_of(fitted.dir)
    assert meta["labels"] == list(CLASSES) and meta["shots"] == SHOTS and meta["seed"] == 0
    assert meta["text"] == render_prompt(CLASSES) == few_shot[0].text and meta["prompt"] is None
    assert meta["data"] == str(fitted.data.resolve()) and meta["model"] == str(Path(fitted.model).resolve())
    assert meta["few_shot"] == [e.uid for e in few_shot]
    assert [h[:2] for h in meta["heads"]] == reference.heads.tolist()
    assert f"saved to {fitted.dir}" in fitted.fit.out and f"{SHOTS} per class x 3 classes" in fitted.fit.out


def test_fit_other_seed_and_force(fitted, task, tiny_adapter, tmp_path):
    res = run("fit", fitted.model, fitted.data, "--shots", 2, "--seed", 5, "--n-heads", 2, "--test-fraction", FRACTION,
              "--out", tmp_path / "s", *fitted.args())  # fmt: skip
    assert res.code == 0, res.err
    reference = fit_sav(tiny_adapter(FAMILY), task.few_shot(2, seed=5), n_heads=2)
    np.testing.assert_array_equal(load_file(str(tmp_path / "s" / "sav.safetensors"))["heads"], reference.heads)
    again = run("fit", fitted.model, fitted.data, "--shots", 2, "--out", tmp_path / "s", *fitted.args())
    assert (
        again.code == 2
        and again.error == f"savs fit: error: {tmp_path / 's'} already holds a classifier; --force replaces it"
    )
    forced = run("fit", fitted.model, fitted.data, "--shots", 2, "--out", tmp_path / "s", "--force", *fitted.args())
    assert forced.code == 0


def test_fit_readout_saves_the_linear_model_evaluate_uses(fitted, task, tiny_adapter, tmp_path):
    """--readout logistic: the saved classifier is fit_sav's with readout="logistic", and predict reports its
    probabilities."""
    res = run("fit", fitted.model, fitted.data, "--shots", 4, "--n-heads", 2, "--readout", "logistic",
              "--test-fraction", FRACTION, "--out", tmp_path / "r", *fitted.args())  # fmt: skip
    assert res.code == 0, res.err
    reference = fit_sav(tiny_adapter(FAMILY), task.few_shot(4, seed=0), n_heads=2, readout="logistic")
    loaded = SAVPipeline.load(tmp_path / "r", adapter=tiny_adapter(FAMILY))
    assert task_of(tmp_path / "r")["readout"] == "logistic"
    np.testing.assert_allclose(loaded.classifier.readout_.coef, reference.classifier.readout_.coef, rtol=1e-5)
    one = sorted((fitted.data / CLASSES[0]).iterdir())[0]
    out = run("predict", tmp_path / "r", one, *fitted.args())
    assert out.code == 0, out.err
    assert 0 < float(out.out.strip().split("\t")[2]) <= 1  # the read-out's probability of its label
    bad = run("fit", fitted.model, fitted.data, "--shots", 1, "--readout", "lda", "--out", tmp_path / "b",
              *fitted.args())  # fmt: skip
    assert bad.code == 2 and "readout='lda' need at least 2 examples per class" in bad.err


def test_fit_remembers_the_prompt_for_predict(fitted, tiny_adapter, tmp_path):
    prompt = "Which of {labels} is this product?"
    out = tmp_path / "p"
    res = run("fit", fitted.model, fitted.data, "--shots", 2, "--n-heads", 3, "--prompt", prompt, "--out", out,
              *fitted.args())  # fmt: skip
    assert res.code == 0, res.err
    meta = task_of(out)
    assert meta["prompt"] == prompt and meta["text"] == "Which of boots, caps, mugs is this product?"
    image = fitted.data / "caps" / "00.png"
    line = run("predict", out, image, *fitted.args()).out.strip().split("\t")
    pipe = SAVPipeline.load(out, adapter=tiny_adapter(FAMILY))
    expected = pipe.predict([Example(text=meta["text"], label="", images=(image,))], progress=False)
    assert line[1] == expected[0]


# --- savs evaluate -------------------------------------------------------------------------------------------------


def test_evaluate_matches_pipeline_score(fitted, task, pipeline, tmp_path):
    res = run("evaluate", fitted.dir, fitted.data, "--json", tmp_path / "r.json", *fitted.args())
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    accuracy = float(next(line for line in lines if line.startswith("accuracy: ")).removeprefix("accuracy: "))
    assert accuracy == pytest.approx(pipeline.score(task.test, progress=False), abs=5e-5)
    report = json.loads((tmp_path / "r.json").read_text())
    predictions = pipeline.predict(task.test, progress=False)
    assert report["n"] == len(task.test) == 12 and report["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert [p["predicted"] for p in report["predictions"]] == predictions.tolist()
    assert [p["uid"] for p in report["predictions"]] == [e.uid for e in task.test]
    expected = np.zeros((3, 3), dtype=int)
    for e, p in zip(task.test, predictions, strict=True):
        expected[CLASSES.index(e.label), CLASSES.index(p)] += 1
    assert report["confusion"] == expected.tolist()
    printed = lines[lines.index("confusion matrix (rows: true class, columns: predicted):") + 1 :]
    assert printed[0].split() == list(CLASSES)
    assert [[int(n) for n in row.split()[1:]] for row in printed[1:]] == expected.tolist()
    assert report["few_shot_overlap"] == 0


def test_evaluate_defaults_to_the_fit_data_and_limits(fitted, task, pipeline):
    res = run("evaluate", fitted.dir, "--limit", 5, *fitted.args())
    assert res.code == 0, res.err
    subset = task.test_subset(5, seed=0)
    assert f"accuracy: {pipeline.score(subset, progress=False):.4f}" in res.out.splitlines()
    assert "of 5 test examples right" in res.out


def test_evaluate_warns_when_test_and_few_shot_overlap(fitted, tmp_path):
    overlap = tmp_path / "overlap"
    for label in CLASSES:  # the same images as train/ and test/
        for part in ("train", "test"):
            for src in sorted((fitted.data / label).glob("*.png"))[:3]:
                (overlap / part / label).mkdir(parents=True, exist_ok=True)
                (overlap / part / label / src.name).write_bytes(src.read_bytes())
    run("fit", fitted.model, overlap, "--shots", 2, "--n-heads", 2, "--out", tmp_path / "o", *fitted.args())
    res = run("evaluate", tmp_path / "o", *fitted.args())
    assert res.code == 0 and "warning: 6 test examples are also in the few-shot set" in res.err


# --- savs predict --------------------------------------------------------------------------------------------------


def test_predict_lines_match_pipeline(fitted, pipeline):
    single = fitted.data / "mugs" / "03.png"
    res = run("predict", fitted.dir, fitted.data / "caps", single, *fitted.args())
    assert res.code == 0, res.err
    images = [*sorted((fitted.data / "caps").glob("*.png")), single]
    text = task_of(fitted.dir)["text"]
    examples = [Example(text=text, label="", images=(p,)) for p in images]
    X = pipeline.features(examples, progress=False)
    labels, shares = pipeline.classifier.predict(X), pipeline.classifier.predict_proba(X)
    classes = pipeline.classes_.tolist()
    rows = [line.split("\t") for line in res.out.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in images]
    assert [r[1] for r in rows] == labels.tolist()
    for r, label, share in zip(rows, labels, shares, strict=True):
        assert float(r[2]) == pytest.approx(share[classes.index(label)], abs=5e-4)


def test_predict_json(fitted, pipeline):
    image = fitted.data / "boots" / "01.png"
    res = run("predict", fitted.dir, image, "--json", *fitted.args())
    (row,) = json.loads(res.out)
    text = task_of(fitted.dir)["text"]
    X = pipeline.features([Example(text=text, label="", images=(image,))], progress=False)
    assert row["label"] == pipeline.classifier.predict(X)[0] and row["path"] == str(image)
    assert row["votes"] == pytest.approx(dict(zip(CLASSES, pipeline.classifier.predict_proba(X)[0], strict=True)))
    moved = run("predict", fitted.dir, image, "--json", "--model", fitted.model, *fitted.args())  # --model: its own
    assert moved.code == 0 and json.loads(moved.out) == [row]


def test_predict_with_per_row_questions(fitted, tmp_path):
    rows = [
        {"image": str(p), "label": label, "question": q}
        for label in CLASSES
        for p in sorted((fitted.data / label).glob("*.png"))[:4]
        for q in ("What is it?", "Name the product.")
    ]
    table = tmp_path / "vqa.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows))
    assert from_table(table).train[0].text != from_table(table).train[1].text
    assert (
        run("fit", fitted.model, table, "--shots", 2, "--n-heads", 2, "--out", tmp_path / "q", *fitted.args()).code == 0
    )
    image = fitted.data / "caps" / "00.png"
    missing = run("predict", tmp_path / "q", image, *fitted.args())
    assert missing.code == 2 and "pass the question with --question" in missing.error
    asked = run("predict", tmp_path / "q", image, "--question", "What is it?", *fitted.args())
    assert asked.code == 0 and asked.out.split("\t")[1] in CLASSES
    fixed = run("predict", fitted.dir, image, "--question", "What is it?", *fitted.args())
    assert fixed.code == 2 and "fit on one fixed prompt" in fixed.error


# --- savs heads ------------------------------------------------------------------------------------------------------


def test_heads_lists_the_saved_heads_and_plots(fitted, tmp_path):
    res = run("heads", fitted.dir, "--plot", tmp_path / "h.png", "-q")
    assert res.code == 0, res.err
    meta = task_of(fitted.dir)
    saved = load_file(str(fitted.dir / "sav.safetensors"))["heads"].tolist()
    table = [line.split("\t") for line in res.out.splitlines()[2:]]
    assert [[int(r[1]), int(r[2])] for r in table] == saved
    scores = np.array(meta["head_scores"])
    assert [float(r[3]) for r in table] == pytest.approx([scores[layer, head] for layer, head in saved], abs=5e-5)
    assert (tmp_path / "h.png").stat().st_size > 5_000
    every = run("heads", fitted.dir, "--all").out.splitlines()[2:]
    assert len(every) == scores.size and sum(line.endswith("\tyes") for line in every) == HEADS
    assert [float(line.split("\t")[3]) for line in every] == sorted(scores.ravel().round(4), reverse=True)


# --- savs extract ----------------------------------------------------------------------------------------------------


def test_extract_matches_extract_heads(fitted, task, tiny_adapter, tmp_path):
    out = tmp_path / "x.safetensors"
    res = run("extract", fitted.model, fitted.data, "--test-fraction", FRACTION, "--out", out, *fitted.args())
    assert res.code == 0, res.err
    arrays = load_file(str(out))
    examples = task.train + task.test
    expected = extract_heads(tiny_adapter(FAMILY), examples, progress=False)
    np.testing.assert_allclose(arrays["heads"], expected, rtol=1e-5, atol=1e-6)
    assert arrays["labels"].tolist() == [CLASSES.index(e.label) for e in examples]
    assert arrays["split"].tolist() == [0] * len(task.train) + [1] * len(task.test)
    with safe_open(str(out), framework="numpy") as f:
        meta = f.metadata()
    assert json.loads(meta["uids"]) == [e.uid for e in examples] and json.loads(meta["labels"]) == list(CLASSES)
    test_only = run("extract", fitted.model, fitted.data, "--part", "test", "--out", out, *fitted.args())
    assert test_only.code == 2 and "exists; --force replaces it" in test_only.error
    run("extract", fitted.model, fitted.data, "--part", "test", "--out", out, "--force", *fitted.args())
    assert load_file(str(out))["heads"].shape[0] == 6  # round(0.2 * 8) = 2 per class


# --- exit statuses and error lines -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [[], ["nope"], ["fit"], ["fit", "m", "d", "--out", "x"], ["fit", "m", "d", "--shots", "0", "--out", "x"],
     ["fit", "m", "d", "--shots", "2", "--n-heads", "some", "--out", "x"], ["evaluate"], ["predict", "dir"],
     ["fit", "m", "d", "--shots", "2", "--out", "x", "--test-fraction", "1.5"]],
)  # fmt: skip
def test_usage_errors_exit_2(argv):
    res = run(*argv)
    assert res.code == 2 and "usage: savs" in res.err


def test_help_exits_0():
    for argv in (["--help"], ["fit", "--help"], ["predict", "--help"]):
        res = run(*argv)
        assert res.code == 0 and res.out.startswith("usage: savs")
    assert "exit status: 0 done; 2 bad arguments or input" in run("--help").out


def test_data_errors_exit_2_with_one_line(fitted, tmp_path):
    def fit(data, *extra):
        return run("fit", fitted.model, data, "--shots", 2, "--out", tmp_path / "never", *extra, *fitted.args())

    empty = make_shop(tmp_path / "empty", per_class=3)
    (empty / "plates").mkdir()
    res = fit(empty)
    assert res.code == 2 and res.error == f"savs fit: error: class folder {empty / 'plates'} holds no images " \
        "(looked for .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff)"  # fmt: skip
    broken = make_shop(tmp_path / "broken", per_class=3)
    (broken / "mugs" / "bad.jpg").write_bytes(b"not a jpeg at all")
    res = fit(broken)
    assert res.code == 2 and res.error.startswith(f"savs fit: error: cannot read image {broken / 'mugs' / 'bad.jpg'}")
    res = fit(make_shop(tmp_path / "small", per_class=3), "--shots", 5)
    assert res.code == 2 and "5 shots per class asked" in res.error and "'boots': 2" in res.error
    (tmp_path / "t.csv").write_text("image,kind\nshop/a.png,a\n")
    res = fit(tmp_path / "t.csv")
    assert res.code == 2 and "label column 'label' is not in" in res.error and "['image', 'kind']" in res.error
    res = fit(tmp_path / "nowhere")
    assert res.code == 2 and "does not exist" in res.error
    assert not (tmp_path / "never").exists()


def test_classifier_and_path_errors_exit_2(fitted, tmp_path):
    res = run("evaluate", tmp_path, fitted.data, *fitted.args())
    assert res.code == 2 and res.error == f"savs evaluate: error: {tmp_path} is not a savs classifier folder: it " \
        "lacks sav.json, sav.safetensors (run savs fit)"  # fmt: skip
    assert run("heads", tmp_path / "none").code == 2
    res = run("predict", fitted.dir, tmp_path / "missing.png", *fitted.args())
    assert res.code == 2 and res.error == f"savs predict: error: {tmp_path / 'missing.png'} does not exist"
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    res = run("predict", fitted.dir, tmp_path / "bad.png", *fitted.args())
    assert res.code == 2 and f"cannot read image {tmp_path / 'bad.png'}" in res.error
    (tmp_path / "no-images").mkdir()
    assert run("predict", fitted.dir, tmp_path / "no-images", *fitted.args()).code == 2
    other = make_shop(tmp_path / "other", per_class=2)
    (other / "boots").rename(other / "bowls")
    res = run("evaluate", fitted.dir, other, *fitted.args())
    assert res.code == 2 and "classes ['bowls'] outside the given label set ['boots', 'caps', 'mugs']" in res.error


def test_rules_too_big_for_the_shots_and_a_foreign_out_folder_exit_2_before_the_model_loads(fitted, tmp_path,
                                                                                             monkeypatch):  # fmt: skip
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("savs.cli.common.load_model", no_model)
    fit = ("fit", fitted.model, fitted.data, "--out", tmp_path / "sav")
    res = run(*fit, "--shots", 1, "--scoring", "leave_one_out", *fitted.args())
    assert res.code == 2 and res.error == "savs fit: error: scoring='leave_one_out' need at least 2 examples per " \
        "class; --shots is 1"  # fmt: skip
    assert run(*fit, "--shots", 1, "--voting", "reliability", *fitted.args()).code == 2
    (tmp_path / "sav").mkdir()
    (tmp_path / "sav" / "notes.txt").write_text("mine")
    res = run(*fit, "--shots", 2, "--force", *fitted.args())
    assert res.code == 2 and "holds other files (notes.txt)" in res.error
    assert (tmp_path / "sav" / "notes.txt").read_text() == "mine"


def test_a_corrupt_classifier_folder_exits_2(fitted, tmp_path):
    broken = tmp_path / "sav"
    shutil.copytree(fitted.dir, broken)
    meta = json.loads((broken / "sav.json").read_text())
    (broken / "sav.json").write_text(json.dumps({**meta, "metric": "manhattan"}))
    res = run("predict", broken, next(fitted.data.rglob("*.png")), *fitted.args())
    assert res.code == 2 and "sav.json: json_sha256: the fields do not match" in res.error


def test_fisher_scores_and_pursuit_order_are_named_as_what_they_are(fitted, tmp_path):
    out = tmp_path / "fisher"
    res = run("fit", fitted.model, fitted.data, "--shots", SHOTS, "--n-heads", HEADS, "--test-fraction", FRACTION,
              "--scoring", "fisher", "--selection", "pursuit", "--out", out, *fitted.args())  # fmt: skip
    assert res.code == 0, res.err
    assert "voting heads, in selection order (Fisher ratio, between- over within-class variance):" in res.out
    shown = run("heads", out, "--plot", tmp_path / "map.png")
    assert shown.code == 0 and "vote, in selection order; score: Fisher ratio" in shown.out
    assert "vote, best first; score: few-shot nearest-class-mean accuracy" in run("heads", fitted.dir).out


def test_runtime_failure_exits_1_and_debug_shows_the_traceback(fitted, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    argv = ["fit", tmp_path / "not-a-model", fitted.data, "--shots", 2, "--out", tmp_path / "o", *fitted.args()]
    res = run(*argv)
    assert res.code == 1 and res.error.startswith(f"savs fit: error: cannot load model {tmp_path / 'not-a-model'}")
    debug = run(*argv, "--debug")
    assert debug.code == 1 and "Traceback" in debug.err


def test_python_dash_m_savs(fitted):
    """The real command line once, as a process: exit status and the accuracy line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(paths.ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    argv = [sys.executable, "-m", "savs", "evaluate", str(fitted.dir), str(fitted.data), *fitted.args()]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    in_process = run("evaluate", fitted.dir, fitted.data, *fitted.args())
    assert proc.stdout.splitlines()[0] == in_process.out.splitlines()[0]
    assert proc.stdout.splitlines()[0].startswith("accuracy: ")
