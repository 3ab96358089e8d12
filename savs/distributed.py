"""Extraction past one GPU: every process extracts its share of what a profile's notebooks will read into the shared
activation cache, so the notebooks then run no extraction pass.

What is extracted is ``savs.plan.profile_plan``: for every model and task of the profile (with the same overrides the
notebooks take), the head vectors and last hidden state of every few-shot and test example any notebook scores, the
blind control's blanked copies and the vision probe's features. The cache is content-addressed and written one
atomic shard per batch, so merging is free. The batches are formed from the plan before it is split
(``savs.extract.plan_batches``) and each process runs whole batches: an example's vectors depend by ~1e-5 on the
other rows of its batch, so this is what makes 1, 2 or 8 processes cache the same vectors, to the bit.

    accelerate launch --num_processes 8 -m savs.distributed --profile paper --cache-dir /data/savs-cache
    make reproduce PROFILE=paper SAVS_CACHE=/data/savs-cache   # then: the notebooks read everything from the cache

(``torchrun --nproc_per_node N -m savs.distributed ...`` works the same.)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate import PartialState

from savs.extract import extract_batches, plan_batches

VISION_CHUNK = 32  # examples per vision_features call (its default image batch)


def extract_plan(session, state: PartialState) -> dict[str, int]:
    """Extract this rank's share of every need of ``session``'s profile; returns counts per kind (all ranks')."""
    from savs import baselines
    from savs.plan import profile_plan

    plan, counts = profile_plan(session), {"features": 0, "vision": 0}
    plan.check()
    for model in dict.fromkeys(m for m, _ in plan.needs):
        with state.main_process_first():  # a random: model is built once, then every rank loads it
            adapter = session.adapter(model)
        for (m, task), need in plan.needs.items():
            if m != model:
                continue
            counts["features"] += len(need.features)
            counts["vision"] += len(need.vision)
            # Whole batches to each rank, formed before the split: an example's batch (and so its vectors, to the
            # bit) is the plan's whatever the process count.
            batches = plan_batches(list(need.features.values()), session.profile.batch_size) if need.features else []
            with state.split_between_processes(batches) as mine:
                if mine:
                    extract_batches(
                        adapter, mine, heads=adapter.head_layers, hidden=-1, cache_dir=session.cache,
                        progress=state.is_local_main_process,
                    )  # fmt: skip
            # vision features likewise: fixed chunks of the plan's order, each one call (its own encoder batches)
            vision = list(need.vision.values())
            chunks = [vision[i : i + VISION_CHUNK] for i in range(0, len(vision), VISION_CHUNK)]
            with state.split_between_processes(chunks) as mine:
                for chunk in mine:
                    baselines.vision_features(adapter, chunk, cache_dir=session.cache, progress=False)
            if state.is_main_process:
                print(f"{model} | {task}: {len(need.features)} examples' features, {len(need.vision)} vision features")
        state.wait_for_everyone()
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    from savs.experiments import Session
    from savs.profiles import add_profile_arguments, load_profile, overrides_from

    parser = argparse.ArgumentParser(description="Extract what a profile's notebooks read, on every process.")
    add_profile_arguments(parser)  # the SAV rule among them: checked, though the plan does not depend on it
    parser.add_argument("--cache-dir", required=True, help="the activation cache the notebooks will read ($SAVS_CACHE)")
    args = parser.parse_args(argv)

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo across CPU processes where there is no GPU
    device = str(state.device) if state.device.type == "cuda" else None
    profile = load_profile(args.profile, **overrides_from(args.overrides), device=device)
    counts = extract_plan(Session(profile, Path(args.cache_dir)), state)
    if state.is_main_process:
        print(f"profile {profile.name}: {counts['features']} examples' features, {counts['vision']} vision features "
              f"in {args.cache_dir}, over {state.num_processes} processes")  # fmt: skip


if __name__ == "__main__":
    main()
