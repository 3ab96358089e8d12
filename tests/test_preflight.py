"""`make reproduce PROFILE=paper` must fail fast, naming what it cannot reach, on a machine without the hub."""

from __future__ import annotations

import time

import pytest

from savs.preflight import checkpoints, main
from savs.profiles import load_profile


def test_paper_profile_without_the_hub_fails_fast_and_names_everything(capsys):
    start = time.perf_counter()
    assert main(["--profile", "paper"]) == 1
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 30
    for name in ("llava-ov-7b", "qwen2-vl-7b", "mhalubench", "vlguard", "eurosat", "imagenet1k"):
        assert name in err
    for name in ("llava-1.5-7b", "instructblip-7b", "openai/clip-vit-large-patch14-336", "google/siglip-so400m"):
        assert f"- model {name}" in err, f"{name} (zero-shot rows, CLIP / SigLIP) is loaded by the run, not checked"
    assert "hub" in err


def test_checkpoints_are_those_the_run_loads():
    assert checkpoints(load_profile("paper", baselines="knn")) == ["llava-ov-7b", "qwen2-vl-7b"]
    assert checkpoints(load_profile("paper", baselines="zero_shot,siglip")) == [
        "llava-ov-7b", "qwen2-vl-7b", "llava-1.5-7b", "instructblip-7b", "google/siglip-so400m-patch14-384"
    ]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), [(["METRIC=cosin"], "metric must be one of"),
                                                    (["N_HEADS=0"], "n_heads must be")])  # fmt: skip
def test_a_bad_sav_rule_stops_preflight_before_anything_loads(override, message, capsys):
    start = time.perf_counter()
    assert main(["--profile", "paper", *override]) == 2  # the paper profile: a hub check would take seconds
    err = capsys.readouterr().err
    assert message in err and "reachable" not in err and time.perf_counter() - start < 5


def test_offline_profile_passes(capsys):
    assert main(["--profile", "mini"]) == 0
    assert "reachable" in capsys.readouterr().out


def test_a_local_model_directory_needs_no_hub(tiny_dir, capsys):
    assert main(["--profile", "mini", f"MODEL={tiny_dir('llama')}"]) == 0


def test_preflight_names_every_task_that_cannot_give_its_sets(copies, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for task in ("blink_art_style", "eurosat"):
        (data / task).symlink_to(copies(task))
    monkeypatch.setenv("SAVS_DATA", str(data))
    monkeypatch.setenv("SAVS_CACHE", str(tmp_path / "cache"))
    profile = tmp_path / "p.yaml"
    # today's quarter-of-val BLINK pools and 2 train images per EuroSAT class cannot give 3 shots per class
    profile.write_text("extends: smoke\nmodels: ['random:llava']\nablation_models: []\n"
                       "tasks: [blink_art_style, eurosat]\nprotocol: savs\nshots: 3\n")  # fmt: skip
    start = time.perf_counter()
    assert main(["--profile", str(profile)]) == 1
    err = capsys.readouterr().err
    assert "cannot draw every set" in err and time.perf_counter() - start < 30
    assert "blink_art_style: the 3-shot sets" in err and "eurosat: the 3-shot sets" in err
    # the authors' BLINK draws from val and tests on the rest: feasible, with a note for short letters
    text = profile.read_text().replace("protocol: savs", "protocol: authors")
    profile.write_text(text.replace("shots: 3", "shots: 2"))
    assert main(["--profile", str(profile)]) == 0
    assert "gives its sets" in capsys.readouterr().out
