"""The ``savs`` command line's parser: one small function per command, the options that several share as parent
parsers, and the SAV rule's options of ``fit`` in one place (``_add_rule_options``). It knows the commands by name
only (``savs.cli.COMMANDS`` runs them)."""

from __future__ import annotations

import argparse
import textwrap

from savs.classifier import SAVClassifier
from savs.data.custom import TEST_FRACTION
from savs.profiles import add_rule_options

FMT = argparse.RawDescriptionHelpFormatter
DATA_HELP = (
    "DATA is an image folder (one subfolder per class; or train/ and test/ folders, each with one subfolder per "
    "class), a CSV / TSV / JSONL / JSON table of image paths (relative to the table) and labels, a datasets "
    "save_to_disk folder, or hf:<dataset>[:<config>] (the Hugging Face Hub). A folder or table without a split of "
    f"its own is split here: {TEST_FRACTION:.0%} of each class held out for test, seeded (--split-seed)."
)
EXIT_HELP = (
    "exit status: 0 done; 2 bad arguments or input (data, a folder that is not a classifier); 1 the run failed "
    "(the model would not load, extraction failed). Errors are one line on stderr; --debug adds the traceback."
)
CLASSIFIER_HELP = "a classifier folder (savs fit --out)"


def _paragraphs(*texts: str) -> str:
    """Help text for the raw formatter: each paragraph wrapped to 88 columns, blank lines between."""
    return "\n\n".join(textwrap.fill(t, 88) if "\n" not in t else t for t in texts)


# --- argument types --------------------------------------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
    return n


def _device(value: str) -> str:
    """A device torch knows (``cpu``, ``cuda``, ``cuda:1``, ``mps``): ``gpu`` failed only once the model loaded."""
    from savs.profiles import DEVICE

    if not DEVICE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:<index> or mps, got {value!r}")
    return value


def _fraction(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value!r}") from None
    if not 0 < x < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {x}")
    return x


# --- options several commands share ----------------------------------------------------------------------------------


def _parents() -> dict[str, argparse.ArgumentParser]:
    """Parent parsers: ``common`` (--debug, --quiet), ``run`` (the model and its cache), ``data`` (reading DATA) and
    ``loaded`` (--model of a saved classifier)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes on stderr")
    run = argparse.ArgumentParser(add_help=False)
    g = run.add_argument_group("running the model")
    g.add_argument(
        "--cache-dir", help="activation cache (default: $SAVS_CACHE, else ~/.cache/savs; shared with the notebooks)"
    )
    g.add_argument("--no-cache", action="store_true", help="keep no activations on disk")
    g.add_argument("--batch-size", type=_positive, default=8, help="examples per forward pass (default 8)")
    g.add_argument("--device", type=_device, help="cpu, cuda, cuda:1, mps... (default: a GPU if there is one)")
    g.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"), help="default: bfloat16 on a GPU, else float32"
    )
    data = argparse.ArgumentParser(add_help=False)
    g = data.add_argument_group("reading DATA (tables only, except the split options)")
    g.add_argument("--image-column", help="column of images or image paths (default: image)")
    g.add_argument("--label-column", help="column of labels (default: label)")
    g.add_argument("--text-column", help="column of per-row questions (default: question, where present)")
    g.add_argument("--train-split", help="datasets split to draw the few-shot set from (default: train)")
    g.add_argument("--test-split", help="datasets split to test on (default: test)")
    g.add_argument("--test-fraction", type=_fraction, help=f"share of each class held out (default {TEST_FRACTION})")
    g.add_argument("--split-seed", type=int, help="seed of that split (default 0; evaluate reuses fit's)")
    loaded = argparse.ArgumentParser(add_help=False)
    loaded.add_argument("--model", help="load this model instead of the one the classifier names (e.g. moved folder)")
    return {"common": common, "run": run, "data": data, "loaded": loaded}


# --- one function per command ------------------------------------------------------------------------------------


def _add_rule_options(p: argparse.ArgumentParser) -> None:
    """The SAV rule of ``fit`` (the rule's run parameters, ``savs.profiles.PARAMETERS``: ``--n-heads``, ``--metric``,
    ...), defaulting to ``SAVClassifier``'s, which are the paper's."""
    add_rule_options(p, SAVClassifier().get_params())


def _add_fit(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fit",
        parents=[parents["common"], parents["run"], parents["data"]],
        formatter_class=FMT,
        help="select heads on a few-shot set of DATA's training part; save the classifier",
        description=_paragraphs(
            "Draw --shots examples per class from DATA's training part (seeded), run each through MODEL once, "
            "score every attention head by its nearest-class-mean accuracy on them, keep the best --n-heads, and "
            "save the classifier to --out (with the prompt, the label set and how DATA was split, so evaluate and "
            "predict repeat them).",
            DATA_HELP,
            EXIT_HELP,
        ),
    )
    p.add_argument("model", metavar="MODEL", help="registry name (savs-mini, llava-ov-7b, ...), hub id or model folder")
    p.add_argument("data", metavar="DATA", help="your labelled data (see below)")
    p.add_argument("--shots", type=_positive, required=True, help="few-shot examples per class")
    p.add_argument("--seed", type=int, default=0, help="seed of the few-shot draw (default 0)")
    _add_rule_options(p)
    p.add_argument(
        "--prompt",
        help="the question asked about each image (default: 'What is shown in this image?'); the classes and "
        "the answer format are appended, unless the text holds {labels} (and/or {question}): then it is the whole "
        "prompt",
    )
    p.add_argument("--out", required=True, help="folder to save the classifier to")
    p.add_argument("--force", action="store_true", help="replace a classifier already in --out")


def _add_evaluate(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate",
        parents=[parents["common"], parents["run"], parents["data"], parents["loaded"]],
        formatter_class=FMT,
        help="accuracy and confusion matrix on DATA's test part",
        description=_paragraphs(
            "Classify DATA's test part (read and split as at fit time, unless the options say otherwise) and print "
            "'accuracy: X' on a line of its own, the count, and a confusion matrix (rows: true class).",
            DATA_HELP,
            EXIT_HELP,
        ),
    )
    p.add_argument("dir", metavar="DIR", help=CLASSIFIER_HELP)
    p.add_argument("data", metavar="DATA", nargs="?", help="labelled data (default: the data it was fit on)")
    p.add_argument("--limit", type=_positive, help="test on this many examples (a seeded draw) instead of all")
    p.add_argument("--json", metavar="FILE", help="also write a JSON report (confusion, per-class, each prediction)")


def _add_predict(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict",
        parents=[parents["common"], parents["run"], parents["loaded"]],
        formatter_class=FMT,
        help="classify images: path<TAB>label<TAB>vote share",
        description=_paragraphs(
            "Classify images with the prompt the classifier was fit with. One line per image: path, label and its "
            "vote share (the share of the voting heads that chose it; under --voting reliability, the label's "
            "reliability-weighted score; under --readout logistic or lda, its probability), tab-separated; --json "
            "gives every class's.",
            EXIT_HELP,
        ),
    )
    p.add_argument("dir", metavar="DIR", help=CLASSIFIER_HELP)
    p.add_argument("paths", metavar="PATH", nargs="+", help="images, or folders searched for images")
    p.add_argument("--question", help="the question, for a classifier fit on per-row questions")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")


def _add_heads(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "heads",
        parents=[parents["common"]],
        formatter_class=FMT,
        help="the selected heads and their scores",
        description=_paragraphs(
            "List the voting heads (layer, head, few-shot nearest-class-mean accuracy), best first; --all lists "
            "every head. --plot draws the layer x head score map with the voting heads circled."
        ),
    )
    p.add_argument("dir", metavar="DIR", help=CLASSIFIER_HELP)
    p.add_argument("--all", action="store_true", help="every head, best first, marking the voting ones")
    p.add_argument("--plot", metavar="FILE", help="save the head-score map (.png, .pdf, .svg)")


def _add_extract(sub, parents: dict[str, argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "extract",
        parents=[parents["common"], parents["run"], parents["data"]],
        formatter_class=FMT,
        help="every head's vectors of DATA, as safetensors",
        description=_paragraphs(
            "Run every example of DATA through MODEL once and save every attention head's output at the last "
            "prompt token: 'heads' (examples, layers, heads, head_dim) float32, 'labels' (index into the "
            "metadata's label list), 'split' (0 train, 1 test); uids, labels and model in the file's metadata. "
            "Read it with safetensors.numpy.load_file (arrays) and safe_open(...).metadata() (the rest).",
            DATA_HELP,
            EXIT_HELP,
        ),
    )
    p.add_argument("model", metavar="MODEL", help="registry name, hub id or model folder")
    p.add_argument("data", metavar="DATA", help="your data (see below)")
    p.add_argument("--out", required=True, metavar="FILE", help="the .safetensors file to write")
    p.add_argument("--part", choices=("train", "test", "all"), default="all", help="which part (default all)")
    p.add_argument("--prompt", help="as for fit")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")


def build_parser() -> argparse.ArgumentParser:
    """The ``savs`` parser; ``args.command`` names the command to run."""
    from savs import __version__

    parser = argparse.ArgumentParser(
        prog="savs",
        description=_paragraphs(
            "Few-shot classifiers from the attention heads of a generative multimodal model (Sparse Attention "
            "Vectors, Mitra et al., arXiv 2412.00142): no training, one forward pass per example."
        ),
        epilog=_paragraphs(
            "examples:\n"
            "  savs fit savs-mini photos/ --shots 20 --out my-sav\n"
            "  savs evaluate my-sav photos/ --json report.json\n"
            "  savs predict my-sav new-photos/ img.jpg\n"
            "  savs heads my-sav --plot heads.png\n"
            "  savs extract savs-mini photos/ --out heads.safetensors",
            DATA_HELP,
            EXIT_HELP,
            "`savs COMMAND --help` tells more about each command.",
        ),
        formatter_class=FMT,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"savs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parents = _parents()
    for add in (_add_fit, _add_evaluate, _add_predict, _add_heads, _add_extract):
        add(sub, parents)
    return parser
