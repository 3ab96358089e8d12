"""What every notebook does first and last, in one call each: read the profile with the notebook's parameters, open
the session on the shared activation cache, say what this run will do (generated from the profile, so it is true
whatever profile and overrides made the run), and at the end how long it took."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from savs import paths, report
from savs.experiments import Session
from savs.plan import planned_session
from savs.profiles import Profile, load_profile, overrides_from


@dataclass
class Notebook:
    """A notebook's run: its profile (``cfg``), session, and where its tables and figures go."""

    cfg: Profile
    session: Session
    tables: Path
    figures: Path
    started: float = field(default_factory=time.perf_counter)

    def finish(self) -> None:
        """The last cell's line: how long the notebook took, and where its outputs are."""
        seconds = time.perf_counter() - self.started
        print(f"notebook ran in {seconds:.0f} s; outputs in {self.tables} and {self.figures}")


def start(profile: str = "mini", overrides: Mapping[str, object] | None = None, *, describe: bool = True) -> Notebook:
    """Load ``profile`` with the notebook's ``overrides`` (run parameters by name, ``savs.profiles.PARAMETERS``; None or
    "" keeps the profile's value), open its session and show what the run will do (``describe=False``: not, where the
    notebook's task is not the profile's: 07). Tables, figures and the cache go where ``savs.paths`` says
    (``$SAVS_RESULTS``, ``$SAVS_FIGURES``, ``$SAVS_CACHE``)."""
    started = time.perf_counter()
    cfg = load_profile(profile, **overrides_from(overrides or {}))
    nb = Notebook(cfg, planned_session(Session(cfg, paths.cache_dir())), paths.results_dir(), paths.figures_dir(),
                  started)  # fmt: skip
    if describe:
        _show(report.run_markdown(cfg))
    return nb


def _show(markdown: str) -> None:
    """Markdown in a notebook, plain text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(markdown))
    else:
        print(markdown)


@dataclass
class Shell:
    """Notebook 07 shows each step as the ``savs`` command that does the same: called with a command's words
    (``savs_command("fit", ...)``), a ``Shell`` prints the command line, then runs it in ``work`` through
    ``savs.cli.main`` (what the console script calls), so paths read as they would in a shell. ``options``: what
    points a command at the run's activation cache, batch size, device and dtype, where they differ from the
    command's defaults (``shell``)."""

    work: Path
    options: list[str]

    def __call__(self, *words: object) -> None:
        from savs import cli

        args = [str(w) for w in words]
        print(f"{self.work.name}$ savs " + " ".join(shlex.quote(w) for w in args))
        here = os.getcwd()
        os.chdir(self.work)
        try:
            status = cli.main(args)
        finally:
            os.chdir(here)
        if status != 0:
            raise RuntimeError(f"savs {args[0]} exited with status {status}")


def shell(work: Path, cfg: Profile) -> Shell:
    """A ``Shell`` in ``work`` whose ``options`` repeat ``cfg``'s run settings (the cache is ``$SAVS_CACHE``'s, as the
    notebook's)."""
    options = ["--quiet"]
    options += ["--batch-size", str(cfg.batch_size)] if cfg.batch_size != 8 else []
    dtype = cfg.dtype_for(cfg.models[0])
    if (cfg.device or "cpu", dtype or "float32") != ("cpu", "float32"):
        options += [*(["--device", cfg.device] if cfg.device else []), *(["--dtype", dtype] if dtype else [])]
    return Shell(Path(work), options)
