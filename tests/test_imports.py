"""The package's import graph: no cycles, savs-mini on its side of the models package, and the model-free parts
importable without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH_FREE = ("savs", "savs.classifier", "savs.examples", "savs.profiles", "savs.report", "savs.paper", "savs.plots",
              "savs.methods")  # fmt: skip


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the ``savs`` package under ``root`` -> its file (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted((root / "savs").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package's ``_EXPORTS`` table (``savs.lazy``): public name -> the module that defines it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the ``savs`` modules its import statements run, wherever they sit (top level, functions,
    ``TYPE_CHECKING`` blocks).

    ``from package import name`` goes to the submodule ``name`` if there is one, else to the module the package's
    lazy table names for it, else to the package. Importing a module also runs the ``__init__`` of each package
    above it, except the importer's own packages (those always run first).
    """
    found = modules(root)
    lazy = {name: _lazy_exports(path) for name, path in found.items() if path.name == "__init__.py"}

    def resolve(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own = {package.rsplit(".", i)[0] for i in range(package.count(".") + 1)}
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: package.count(".") + 2 - node.level]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in found else resolve(lazy.get(base, {}).get(alias.name, base)))
        edges = set()
        for target in targets - {None, name}:
            parts = target.split(".")
            edges |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} - own
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle_behind_a_function_level_import(tmp_path):
    (tmp_path / "savs" / "models").mkdir(parents=True)
    (tmp_path / "savs" / "__init__.py").write_text("")
    (tmp_path / "savs" / "models" / "__init__.py").write_text("from savs.models.registry import load\n")
    (tmp_path / "savs" / "models" / "registry.py").write_text("def load():\n    from savs.extract import run\n")
    (tmp_path / "savs" / "extract.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from savs.models.base import Adapter\n"
    )
    (tmp_path / "savs" / "models" / "base.py").write_text("")
    assert cycles(import_graph(tmp_path)) == [["savs.extract", "savs.models", "savs.models.registry"]]


def test_savs_mini_uses_only_the_base_of_the_models_package():
    graph = import_graph()
    for name in (m for m in graph if m == "savs.mini" or m.startswith("savs.mini.")):
        models = {t for t in graph[name] if t.startswith("savs.models.")}
        assert models <= {"savs.models.base"}, f"{name} imports {models}"
        assert not any(t == "savs.baselines" or t.startswith("savs.baselines.") for t in graph[name]), name


def test_the_model_free_parts_import_without_torch():
    code = f"import sys, {', '.join(TORCH_FREE)}; print(sorted({{'torch', 'transformers'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_lazy_names_load_on_first_use():
    code = (
        "import savs, savs.models\n"
        "for p in (savs, savs.models):\n"
        "    assert set(p.__all__) <= set(dir(p)) and all(getattr(p, n) is not None for n in p.__all__)\n"
        "from savs import cli\n"  # a submodule that is no lazy name still imports
        "assert cli.__name__ == 'savs.cli'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# The house's floors, lowest first: a module imports only from its own floor and those below (a module is on the floor
# of the longest prefix naming it). Model sources above the models package (savs-mini, the test harness's random
# stand-ins) are named to the registry by "module:attribute" strings, not imported by it.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("savs.lazy", "savs.paths", "savs.cache", "savs.identity", "savs.outputs", "savs.examples", "savs.paper",
              "savs.readout", "savs.head_rules", "savs.classifier", "savs.nbclean", "savs.data.prompts")),
    ("data", ("savs.data",)),
    ("models", ("savs.models", "savs.capture", "savs.kvcache", "savs.extract")),
    ("model sources", ("savs.mini",)),
    ("methods", ("savs.baselines", "savs.pipeline", "savs.plots", "savs.methods")),
    ("runs", ("savs.profiles", "savs.plan", "savs.experiments", "savs.report", "savs.readout_study", "savs.compare",
              "savs.notebook", "savs.preflight", "savs.distributed", "savs.cli", "savs.__main__")),
    ("test harness", ("savs.testing",)),
)  # fmt: skip


def floor(module: str, floors=FLOORS) -> int | None:
    """The index of ``module``'s floor (its longest matching prefix), None if no floor names it."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(floors):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def upward_imports(graph: dict[str, set[str]], floors=FLOORS) -> list[str]:
    """Each import that runs from a floor to one above it, as "importer (floor) -> imported (floor)"."""
    out = []
    for module, targets in sorted(graph.items()):
        here = floor(module, floors)
        for target in sorted(targets - {"savs"}):
            there = floor(target, floors)
            if here is not None and there is not None and there > here:
                out.append(f"{module} ({floors[here][0]}) -> {target} ({floors[there][0]})")
    return out


def test_every_module_is_on_a_floor():
    assert not [m for m in import_graph() if m != "savs" and floor(m) is None]


def test_no_import_runs_up_a_floor():
    found = upward_imports(import_graph())
    assert not found, "imports running up a floor:\n" + "\n".join(found)


def test_the_floor_check_finds_an_import_running_up(tmp_path):
    (tmp_path / "savs" / "models").mkdir(parents=True)
    (tmp_path / "savs" / "__init__.py").write_text("")
    (tmp_path / "savs" / "models" / "__init__.py").write_text("")
    (tmp_path / "savs" / "models" / "registry.py").write_text("def load():\n    from savs.mini.adapter import A\n")
    (tmp_path / "savs" / "mini").mkdir()
    (tmp_path / "savs" / "mini" / "__init__.py").write_text("")
    (tmp_path / "savs" / "mini" / "adapter.py").write_text("from savs.models import registry\n")
    assert upward_imports(import_graph(tmp_path)) == [
        "savs.models.registry (models) -> savs.mini (model sources)",
        "savs.models.registry (models) -> savs.mini.adapter (model sources)",
    ]


def test_the_model_registry_imports_nothing_above_the_models_package():
    """savs-mini's adapter and the random-weight stand-ins are named by "module:attribute" strings, imported on use."""
    imported = import_graph()["savs.models.registry"]
    above = {t for t in imported if t.split(".")[:2] in (["savs", "mini"], ["savs", "testing"]) or t == "savs.tiny"}
    assert not above, f"savs.models.registry imports {sorted(above)}"


def test_load_object_names_what_is_wrong():
    from savs.lazy import load_object
    from savs.models.registry import EXTERNAL_ADAPTERS, RANDOM_BUILDER

    assert load_object(RANDOM_BUILDER).__name__ == "build_random_model"
    assert all(load_object(ref).family == family for family, ref in EXTERNAL_ADAPTERS.items())
    with pytest.raises(ValueError, match="expected 'module:attribute'"):
        load_object("savs.mini.adapter.MiniAdapter")
    with pytest.raises(ImportError, match="has no attribute 'Nope'"):
        load_object("savs.mini.adapter:Nope")
