"""The ``savs`` command's silent wrong answers and unclear failures, each now a one-line refusal with exit status 2
(before any model loads where the input alone shows the problem): an edited classifier folder, two fits on one
folder at once, a question column given to a fixed-prompt classifier, outputs under a regular file, ``.tmp`` files
left by a failed write, and a model-mismatch error that advised an option the command does not have."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from test_cli import CLASSES, FRACTION, HEADS, SHOTS, Fitted, make_shop, run, task_of

from savs.testing.random_models import build_random_model

pytestmark = pytest.mark.usefixtures("one_thread")
FAMILY = "llava_onevision"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_dir) -> Fitted:
    root = tmp_path_factory.mktemp("cli-faults")
    model, data, out, cache = tiny_dir(FAMILY), make_shop(root / "shop"), root / "sav", root / "cache"
    res = run("fit", model, data, "--shots", SHOTS, "--n-heads", HEADS, "--test-fraction", FRACTION, "--out", out,
              "--cache-dir", cache, "-q")  # fmt: skip
    assert res.code == 0, res.err
    return Fitted(model, data, out, cache, res)


@pytest.fixture
def no_model(monkeypatch):
    """Checks that must finish before any model (or the classifier's model) loads."""

    def fail(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("savs.cli.common.load_model", fail)
    monkeypatch.setattr("savs.cli.common.load_pipeline", fail)


def _edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta, indent=1))


EDITED = "sav.json: json_sha256: the fields do not match"


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(classes=m["classes"][::-1]),
        lambda m: m["task"].update(prompt="Which animal is it?"),
        lambda m: m["task"].update(labels=m["task"]["labels"][::-1]),
        lambda m: m["task"]["data_options"].update(split_seed=5),
        lambda m: m["task"]["head_scores"][0].__setitem__(0, -1.0),  # no accuracy is -1
    ],
    ids=["classes", "prompt", "labels", "split seed", "head score"],
)
def test_an_edited_classifier_folder_exits_2(fitted, tmp_path, no_model, change):
    """Permuted classes took evaluate from 1.00 to 0.00, an edited prompt was used: both loaded silently. The task
    record is part of sav.json, under its checksum."""
    edited = Path(shutil.copytree(fitted.dir, tmp_path / "sav"))
    _edit_json(edited / "sav.json", change)
    for argv in (("evaluate", edited, fitted.data), ("predict", edited, next(fitted.data.rglob("*.png"))),
                 ("heads", edited)):  # fmt: skip
        res = run(*argv, *fitted.args()) if argv[0] != "heads" else run(*argv)
        assert res.code == 2 and EDITED in res.error, res.err


def test_a_format_4_folder_exits_2_with_the_line_that_refits_it(fitted, tmp_path, no_model, monkeypatch):
    """An older savs kept the task in a task.json beside sav.json (format 4): refused, not read in half, with the
    ``savs fit`` line that refits it, and that line works."""
    from savs.identity import json_digest

    old = Path(shutil.copytree(fitted.dir, tmp_path / "old"))
    meta = json.loads((old / "sav.json").read_text())
    task = meta.pop("task")
    (old / "task.json").write_text(json.dumps({"format": 1, **task}))
    meta = {**meta, "format": 4, "files_sha256": {}}
    meta["json_sha256"] = json_digest({k: v for k, v in meta.items() if k != "json_sha256"})
    (old / "sav.json").write_text(json.dumps(meta))
    res = run("predict", old, next(fitted.data.rglob("*.png")), *fitted.args())
    assert res.code == 2 and "sav.json: format: format 4, written by an older savs" in res.error, res.err
    refit = f"savs fit {task['model']} {task['data']} --shots {SHOTS} --n-heads {HEADS} --test-fraction {FRACTION} "
    assert res.error.endswith(f"Refit it: {refit}--out {old} --force"), res.error
    monkeypatch.undo()  # the refit loads the model
    assert run(*shlex.split(res.error.split("Refit it: ")[1])[1:], *fitted.args()).code == 0
    assert sorted(p.name for p in old.iterdir()) == ["sav.json", "sav.safetensors"]
    assert task_of(old) == task_of(fitted.dir)  # the same fit again


def test_a_second_fit_on_the_same_out_at_once_exits_2(fitted, tmp_path, monkeypatch):
    """Two fits on one --out: the second, started while the first loads its model, is refused (both exited 0)."""
    import savs.cli.common

    out, load = tmp_path / "sav", savs.cli.common.load_model
    fit = ("fit", fitted.model, fitted.data, "--shots", SHOTS, "--n-heads", HEADS, "--out", out, *fitted.args())
    second = []

    def load_while_another_fit_starts(name, args):
        second.append(run(*fit[:4], 2, *fit[5:]))  # the same --out, another few-shot size
        return load(name, args)

    monkeypatch.setattr(savs.cli.common, "load_model", load_while_another_fit_starts)
    first = run(*fit)
    assert first.code == 0, first.err
    assert second[0].code == 2 and f"another savs process is writing {out} now" in second[0].error
    assert task_of(out)["shots"] == SHOTS  # the first's result, not replaced
    assert not list(tmp_path.glob(".*"))  # the lock is gone with its fit
    monkeypatch.setattr(savs.cli.common, "load_model", load)
    again = run(*fit)  # once the first is done: the usual refusal, and --force replaces it
    assert again.code == 2 and "already holds a classifier; --force replaces it" in again.error


def test_a_held_lock_refuses_even_with_force(fitted, tmp_path, no_model):
    from savs.outputs import lock_output

    with lock_output(tmp_path / "sav"):
        res = run("fit", fitted.model, fitted.data, "--shots", 2, "--out", tmp_path / "sav", "--force",
                  *fitted.args())  # fmt: skip
    assert res.code == 2 and "another savs process is writing" in res.error


def test_outputs_under_a_regular_file_exit_2_before_the_model_loads(fitted, tmp_path, no_model):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    cases = [
        (("fit", fitted.model, fitted.data, "--shots", 2, "--out", blocker / "sav"), "--out"),
        (("extract", fitted.model, fitted.data, "--out", blocker / "x.safetensors"), "--out"),
        (("evaluate", fitted.dir, fitted.data, "--json", blocker / "sub" / "r.json"), "--json"),
    ]
    for argv, option in cases:
        res = run(*argv, *fitted.args())
        assert res.code == 2 and res.error.endswith(f"{option} {argv[-1]}: {blocker} is a file, so nothing can be "
                                                    "written under it"), res.err  # fmt: skip
    res = run("heads", fitted.dir, "--plot", blocker / "map.png")
    assert res.code == 2 and f"{blocker} is a file" in res.error
    (tmp_path / "folder").mkdir()
    res = run("evaluate", fitted.dir, fitted.data, "--json", tmp_path / "folder", *fitted.args())
    assert res.code == 2 and res.error.endswith(f"--json {tmp_path / 'folder'} is a folder; name a file")
    res = run("fit", fitted.model, fitted.data, "--shots", 2, "--out", blocker, *fitted.args())
    assert res.code == 2 and res.error.endswith(f"--out {blocker} is a file; name a folder")


def test_a_failed_write_leaves_no_tmp_file(fitted, tmp_path, monkeypatch):
    """The final rename fails (a folder appeared at the target while the model ran): exit 2, and neither the report
    nor the heads file leaves its hidden ``.tmp`` behind."""
    import savs.cli.common
    import savs.extract

    def occupy(target: Path, compute):
        def wrapped(*args, **kwargs):
            out = compute(*args, **kwargs)
            (target / "inside").mkdir(parents=True)  # another process's folder, not empty
            return out

        return wrapped

    report = tmp_path / "r" / "report.json"
    report.parent.mkdir()
    monkeypatch.setattr(savs.cli.common, "features", occupy(report, savs.cli.common.features))
    res = run("evaluate", fitted.dir, fitted.data, "--json", report, *fitted.args())
    assert res.code == 2 and "Is a directory" in res.error
    assert [p.name for p in report.parent.iterdir()] == ["report.json"] and report.is_dir()
    out = tmp_path / "x" / "heads.safetensors"
    monkeypatch.setattr(savs.extract, "extract_heads", occupy(out, savs.extract.extract_heads))
    res = run("extract", fitted.model, fitted.data, "--out", out, *fitted.args())
    assert res.code == 2 and res.error.endswith(f"{out} appeared while the model ran; --force replaces it")
    shutil.rmtree(out)
    res = run("extract", fitted.model, fitted.data, "--out", out, "--force", *fitted.args())  # on to the rename
    assert res.code == 2 and "Is a directory" in res.error
    assert [p.name for p in out.parent.iterdir()] == ["heads.safetensors"] and out.is_dir()


def test_a_question_column_on_a_fixed_prompt_classifier_exits_2(fitted, tmp_path, no_model):
    """``predict --question`` is refused for such a classifier; evaluate on a table with questions replaced the
    prompt row by row."""
    rows = [{"image": str(p), "label": label, "question": "Which product is this?"}
            for label in CLASSES for p in sorted((fitted.data / label).glob("*.png"))]  # fmt: skip
    table = tmp_path / "vqa.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows))
    res = run("evaluate", fitted.dir, table, *fitted.args())
    assert res.code == 2 and "this classifier was fit on one fixed prompt, but" in res.error
    assert "Which product is this?" in res.error


def test_per_row_question_classifier_on_data_without_questions_exits_2(fitted, tmp_path):
    rows = [{"image": str(p), "label": label, "question": q}
            for label in CLASSES for p in sorted((fitted.data / label).glob("*.png"))[:4]
            for q in ("What is it?", "Name the product.")]  # fmt: skip
    table = tmp_path / "vqa.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows))
    fit = run("fit", fitted.model, table, "--shots", 2, "--n-heads", 2, "--out", tmp_path / "q", *fitted.args())
    assert fit.code == 0, fit.err
    res = run("evaluate", tmp_path / "q", fitted.data, *fitted.args())
    assert res.code == 2 and "fit on per-row questions, but" in res.error and "has none" in res.error


def test_a_model_mismatch_names_what_the_command_offers(fitted, tmp_path):
    """The API's advice, allow_model_mismatch=True, is no option of the command."""
    other = build_random_model(FAMILY, tmp_path / "other", seed=1)  # same geometry, other weights
    res = run("predict", fitted.dir, next(fitted.data.rglob("*.png")), "--model", other, *fitted.args())
    assert res.code == 2 and "differs in" in res.error
    assert "allow_model_mismatch" not in res.error
    assert "Fit a classifier on this model (savs fit)" in res.error and "leave out --model" in res.error


def test_a_second_extract_to_the_same_file_at_once_exits_2(fitted, tmp_path, monkeypatch):
    import savs.cli.common

    out, load = tmp_path / "heads.safetensors", savs.cli.common.load_model
    argv = ("extract", fitted.model, fitted.data, "--out", out, *fitted.args())
    second = []

    def load_while_another_extract_starts(name, args):
        second.append(run(*argv))
        return load(name, args)

    monkeypatch.setattr(savs.cli.common, "load_model", load_while_another_extract_starts)
    assert run(*argv).code == 0
    assert second[0].code == 2 and f"another savs process is writing {out} now" in second[0].error
    assert [p.name for p in tmp_path.iterdir()] == ["heads.safetensors"]


def test_an_unknown_device_is_a_usage_error(fitted, tmp_path, no_model):
    """``--device gpu`` failed as "cannot load model" (exit 1) once loading began."""
    argv = ("fit", fitted.model, fitted.data, "--shots", 2, "--out", tmp_path / "s", "--device", "gpu")
    res = run(*argv, *fitted.args())
    assert res.code == 2 and "argument --device: expected cpu, cuda, cuda:<index> or mps, got 'gpu'" in res.err


def test_a_sav_saved_from_python_without_a_task_exits_2(fitted, tmp_path, tiny_adapter):
    """``SAVPipeline.save`` with no task writes a valid SAV, but not one the command can evaluate (no label set,
    prompt or split): a one-line refusal, not a KeyError."""
    from savs import SAVPipeline

    pipe = SAVPipeline.load(fitted.dir, adapter=tiny_adapter(FAMILY))
    pipe.task = None
    pipe.save(tmp_path / "plain")
    for argv in (("evaluate", tmp_path / "plain", fitted.data, *fitted.args()), ("heads", tmp_path / "plain")):
        res = run(*argv)
        assert res.code == 2 and "saved without the command line's task record" in res.error, res.err
