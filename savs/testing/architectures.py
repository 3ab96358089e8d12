"""Coverage table: SAVs on every image-text-to-text model type of transformers (``make architectures``).

For each type of ``MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES`` a tiny random-weight model is built
(``savs.testing.random_types``); a type ``savs.models.refusal`` rules out, or that cannot be built offline, gets its
one-line reason. A supported one is loaded with ``savs.load_model`` and checked two ways:

- extraction (``savs.extract_heads``: batched, with whatever prefix cache / early stop the adapter's evidence
  allowed) against an independent reference: a plain full forward per example (batch 1, no cache, eager attention
  where the model has it) with forward pre-hooks on the text decoder's attention output projections, found by
  module name only (not by the adapter's discovery), on the adapter's encoding of each prompt (what is checked is
  the head capture, not the prompt); the table gives the largest difference relative to the
  reference's largest value, and a type passes at <= ``TOLERANCE``;
- ``fit_sav`` end to end on a small planted task (the image's colour decides the class), scored on held-out images:
  the number proves the path runs, not quality (the weights are random).

Writes ``results/architectures.csv`` and ``results/architectures.md`` (the same rows with a summary), both
deterministic (sorted, fixed formatting, no timings: a rerun writes the same bytes); the seconds each type took are
printed, not written.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from savs.outputs import atomic_write

TOLERANCE = 1e-5  # largest relative difference between extraction and the hook reference for a type to pass
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}  # the planted task: class = the square's colour
QUESTION = "What color is the square?"
# Text-decoder attention output projections, by module name: ``<decoder>.layers.<i>.<attention>.<projection>``.
_O_PROJ = re.compile(
    r"^(?P<decoder>.*?)\.?(?:layers|h|blocks|layer)\.(?P<layer>\d+)\."
    r"(?:self_attn|attention|attn|self_attention|cross_attn|mixer)\.(?:output\.)?(?:o_proj|out_proj|dense|wo|c_proj|o)$"
)  # BERT-style decoders (BLIP, GIT): ``encoder.layer.<i>.attention.output.dense``
_NOT_TEXT = re.compile(r"vision|visual|image|video|vit|qformer|perceiver|audio|resampler|projector|connector|vq")


@dataclass
class Row:
    """One model type's line of the table."""

    model_type: str
    status: str  # "pass", "fail", "refused", "not built"
    reason: str = ""
    head_layers: str = ""  # "layers with heads/all layers"
    heads: str = ""
    head_dim: str = ""
    max_rel_diff: str = ""
    prefix_cache: str = ""
    early_stop: str = ""
    fit_accuracy: str = ""
    seconds: float = 0.0


def planted_examples(n_per_class: int, seed: int, side: int = 48) -> list:
    """Squares on a grey background whose colour is the class, at seeded random positions and sizes."""
    from savs.examples import Example

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_per_class):
        for label, colour in COLOURS.items():
            image = Image.new("RGB", (side, side), (128, 128, 128))
            size = int(rng.integers(side // 3, side // 2))
            x, y = (int(v) for v in rng.integers(0, side - size, 2))
            image.paste(colour, (x, y, x + size, y + size))
            out.append(Example(text=QUESTION, label=label, images=(image,), uid=f"planted/{seed}/{label}/{i}"))
    return out


def text_o_projs(model: torch.nn.Module) -> dict[int, torch.nn.Module]:
    """The text decoder's attention output projections by layer number, found by module name alone: of the module
    lists named like ``....layers.<i>.self_attn.o_proj``, the one not in a vision/audio/encoder part."""
    groups: dict[str, dict[int, torch.nn.Module]] = {}
    for name, module in model.named_modules():
        m = _O_PROJ.match(name)
        if m and not _NOT_TEXT.search(m["decoder"]):
            groups.setdefault(m["decoder"], {})[int(m["layer"])] = module
    if not groups:
        raise LookupError("no text-decoder attention output projection found by module name")
    return max(groups.values(), key=len)


def reference_heads(model: torch.nn.Module, inputs: Sequence[dict], n_heads: int) -> tuple[list[int], np.ndarray]:
    """Layer numbers and ``(n, layers, n_heads, head_dim)`` inputs of the output projections at the last token, one
    plain forward per example (``inputs`` are batch-1 model inputs)."""
    projs = text_o_projs(model)
    layers = sorted(projs)
    seen: dict[int, torch.Tensor] = {}
    hooks = [
        projs[i].register_forward_pre_hook(lambda _m, args, i=i: seen.__setitem__(i, args[0][0, -1].detach()))
        for i in layers
    ]
    rows = []
    try:
        for batch in inputs:
            seen.clear()
            with torch.no_grad():
                model(**batch, use_cache=False)
            rows.append(torch.stack([seen[i] for i in layers]).reshape(len(layers), n_heads, -1))  # (L, H, d)
    finally:
        for hook in hooks:
            hook.remove()
    return layers, torch.stack(rows).float().numpy()


def _load_reference(path: Path) -> torch.nn.Module:
    """The saved tiny model, freshly loaded, eager attention where the model has it."""
    from transformers import AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(path, attn_implementation="eager").eval()
    except (ValueError, ImportError):
        return AutoModelForImageTextToText.from_pretrained(path).eval()


def check_type(path: Path, model_type: str, seed: int = 0) -> Row:
    """Extraction vs the hook reference and `fit_sav` on the planted task, for the tiny model saved at `path`."""
    import savs
    from savs.extract import extract_heads

    adapter = savs.load_model(str(path))
    train, test = planted_examples(3, seed), planted_examples(2, seed + 1)
    features = extract_heads(adapter, train, progress=False)  # (n, len(head_layers), H, d)
    layers, ref = reference_heads(_load_reference(path), [dict(adapter.encode([e])) for e in train], adapter.n_heads)
    row = Row(
        model_type,
        "fail",
        head_layers=f"{len(adapter.head_layers)}/{adapter.n_layers}",
        heads=str(adapter.n_heads),
        head_dim=str(adapter.head_dim),
        prefix_cache="yes" if adapter.prefix_cache_ok else "no",
        early_stop="yes" if adapter.early_stop_ok else "no",
    )
    if layers != list(adapter.head_layers):
        row.reason = f"the adapter's layers with heads {list(adapter.head_layers)} != the reference's {layers}"
        return row
    diff = float(np.abs(features - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    row.max_rel_diff = f"{diff:.1e}"
    pipeline = savs.fit_sav(adapter, train, n_heads=4)
    row.fit_accuracy = f"{pipeline.score(test):.2f}"
    row.status = "pass" if diff <= TOLERANCE else "fail"
    if diff > TOLERANCE:
        row.reason = f"extraction differs from the hook reference by {diff:.1e} (relative) > {TOLERANCE:g}"
    return row


def survey_type(model_type: str, work: Path, seed: int = 0) -> Row:
    """One type's row: refused (the adapter's reason), not built (the zoo's reason), or checked."""
    from transformers import AutoConfig

    from savs.models.discovery import UnsupportedModelError
    from savs.models.registry import refusal
    from savs.testing.random_types import RandomBuildError, build_random_type

    start = time.perf_counter()
    try:
        path = build_random_type(model_type, work / model_type, seed)
    except RandomBuildError as err:
        path, built_reason = None, err.reason
    try:  # the tiny model's config where it was built (a type's default config may not even build)
        reason = refusal(AutoConfig.from_pretrained(path) if path else AutoConfig.for_model(model_type))
    except Exception as err:  # noqa: BLE001  (a config that does not build is a reason too)
        reason = f"config does not build: {_first_line(err)}"
    if reason:
        row = Row(model_type, "refused", reason_line(reason))
    elif path is None:
        row = Row(model_type, "not built", reason_line(built_reason))
    else:
        try:
            row = check_type(path, model_type, seed)
        except UnsupportedModelError as err:  # refused by `load_model` on what it found in the loaded model
            row = Row(model_type, "refused", _first_line(err).replace(f"{path}: ", ""))
        except Exception as err:  # noqa: BLE001  (one type's failure is a row of the table, not the end of it)
            row = Row(model_type, "fail", f"{type(err).__name__}: {_first_line(err)}")
    row.seconds = time.perf_counter() - start
    return row


def _first_line(err: BaseException) -> str:
    """An exception's message on one line (its first two lines: validators put the cause on the second), at most
    200 characters, with the `|` of a markdown table replaced."""
    return reason_line(str(err))


def reason_line(text: str) -> str:
    """`text` as one table-safe line: its first two non-empty lines joined, whitespace collapsed, cut at 200."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()][:2]
    line = " ".join(" ".join(lines).split())
    return (line if len(line) <= 200 else line[:197] + "...").replace("|", "/")


def survey(types: Sequence[str], seed: int = 0, progress: bool = True) -> list[Row]:
    """Rows for `types` (sorted), each in a scratch directory and with a scratch evidence cache."""
    import transformers

    from savs.testing.random_types import register_no_video_processors

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    register_no_video_processors()
    rows = []
    saved_cache = os.environ.get("SAVS_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SAVS_CACHE"] = str(Path(tmp) / "cache")
        try:
            for model_type in tqdm(sorted(types), desc="architectures", disable=not progress):
                rows.append(survey_type(model_type, Path(tmp), seed))
        finally:
            if saved_cache is None:
                os.environ.pop("SAVS_CACHE", None)
            else:
                os.environ["SAVS_CACHE"] = saved_cache
    return rows


_COLUMNS = [f.name for f in fields(Row) if f.name != "seconds"]


def to_csv(rows: Sequence[Row]) -> str:
    """The table as CSV, without timings (byte-identical across runs)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, _COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v for k, v in asdict(row).items() if k in _COLUMNS})
    return out.getvalue()


def to_markdown(rows: Sequence[Row]) -> str:
    """The table as markdown, with a summary line."""
    counts = {s: sum(r.status == s for r in rows) for s in ("pass", "fail", "refused", "not built")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    head = _COLUMNS
    lines = [
        f"# SAVs on every image-text-to-text model type ({len(rows)} types: {summary})",
        "",
        f"Small random-weight models; pass = extraction equals the hook reference within {TOLERANCE:g} (relative) "
        "and `fit_sav` ran (its accuracy on the planted colour task proves the path, not quality).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        values = [str(v) for k, v in asdict(row).items() if k in _COLUMNS]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m savs.testing.architectures [--out results] [TYPE ...]``."""
    from savs.testing.random_types import MODEL_TYPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("types", nargs="*", default=list(MODEL_TYPES))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("SAVS_RESULTS", "results")))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = survey(args.types, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "architectures.csv", to_csv(rows))
    atomic_write(args.out / "architectures.md", to_markdown(rows))
    print(to_markdown(rows))
    slowest = sorted(rows, key=lambda row: -row.seconds)[:5]
    print(f"{sum(row.seconds for row in rows):.0f} s in all; slowest: "
          + ", ".join(f"{row.model_type} {row.seconds:.1f} s" for row in slowest))  # fmt: skip


if __name__ == "__main__":
    main()
