"""`make reproduce PROFILE=paper` must fail fast, naming what it cannot reach, on a machine without the hub."""

from __future__ import annotations

import time

from savs.preflight import main


def test_paper_profile_without_the_hub_fails_fast_and_names_everything(capsys):
    start = time.perf_counter()
    assert main(["--profile", "paper"]) == 1
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 30
    for name in ("llava-ov-7b", "qwen2-vl-7b", "mhalubench", "vlguard", "eurosat", "imagenet1k"):
        assert name in err
    assert "hub" in err


def test_offline_profile_passes(capsys):
    assert main(["--profile", "mini"]) == 0
    assert "reachable" in capsys.readouterr().out


def test_a_local_model_directory_needs_no_hub(tiny_dir, capsys):
    assert main(["--profile", "mini", "--model", tiny_dir("llama")]) == 0
