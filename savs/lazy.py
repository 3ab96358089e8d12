"""Package attributes that import their module on first use (PEP 562): importing a package, or any module inside
it, then runs only the package's own few lines, not every module its public names come from; and ``load_object``,
code named by a ``"module:attribute"`` string and imported when first needed."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public ``name`` is defined in module ``exports[name]``.

    A name is imported when first read and then kept on the package, so later reads are plain attribute reads.
    Any other name raises ``AttributeError``, which lets ``from package import submodule`` import the submodule.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__


def load_object(reference: str) -> Any:
    """The object a ``"module:attribute"`` string names (``"savs.mini.adapter:MiniAdapter"``), its module imported
    now: how a lower floor of the package names code above it without importing it."""
    module, sep, attribute = reference.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"expected 'module:attribute', got {reference!r}")
    try:
        return getattr(importlib.import_module(module), attribute)
    except AttributeError as err:
        raise ImportError(f"module {module!r} has no attribute {attribute!r} (named by {reference!r})") from err
