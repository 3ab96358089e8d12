"""The ``savs`` command: a few-shot classifier from a multimodal model's attention heads, on your own data.

    savs fit MODEL DATA --shots K --out DIR    select heads on K examples per class of DATA's training part, save
    savs evaluate DIR DATA                      accuracy and confusion matrix on DATA's test part
    savs predict DIR PATH...                    one line per image: path, label, vote share
    savs heads DIR [--plot FILE]                the selected heads and their few-shot scores
    savs extract MODEL DATA --out FILE          every head's vectors, as safetensors

A classifier folder is what ``SAVPipeline.save`` writes (``sav.safetensors``, ``sav.json``), with the command's task
record in sav.json's ``task``: the label set, the prompt, how DATA was read and split, the few-shot draw and every
head's score, so ``evaluate`` rebuilds the same test part and ``predict`` the same prompt; sav.json's checksum covers
it. Exit status: 0 done; 2 the command or its input is wrong (arguments, data, rules the few-shot set is too small
for, a folder that is not a classifier or is corrupt, a model other than the classifier's); 1 the run failed (the
model would not load, extraction failed). An error is one line on stderr (``--debug``: with its traceback).
``main(argv)`` runs it in-process.

The parser (``savs.cli.parser``) is apart from the commands (one module each), which share ``savs.cli.common``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from savs.cli.common import CommandError, one_line, silence_libraries
from savs.cli.evaluate import cmd_evaluate, confusion, format_confusion
from savs.cli.extract import cmd_extract
from savs.cli.fit import cmd_fit
from savs.cli.heads import cmd_heads
from savs.cli.parser import build_parser
from savs.cli.predict import cmd_predict, image_paths

__all__ = ["COMMANDS", "CommandError", "build_parser", "confusion", "format_confusion", "image_paths", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "fit": cmd_fit, "evaluate": cmd_evaluate, "predict": cmd_predict, "heads": cmd_heads, "extract": cmd_extract,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (2): argparse has printed it
        return int(e.code or 0)
    try:
        if getattr(args, "quiet", False):
            silence_libraries()
        return COMMANDS[args.command](args)
    except CommandError as e:
        if args.debug:
            traceback.print_exc()
        print(f"savs {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"savs {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the run failed: one line, unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"savs {args.command}: error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
