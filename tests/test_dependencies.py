"""The lock (requirements/constraints.txt) agrees with pyproject.toml, every install goes through it, and the venv
running the tests holds exactly its versions. Offline and fast: files, installed metadata and `make -n`, no pip."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "constraints.txt"
NO_DEPS = ROOT / "requirements" / "no-deps.txt"


def requirement_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each requirement in a pip requirements file, comments and blanks left out."""
    lines = [(n, line.split("#", 1)[0].strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
    return [(n, line) for n, line in lines if line]


def read_lock() -> dict[str, Version]:
    """Canonical name -> pinned version; fails on anything but one plain ``name==version`` per package."""
    pins: dict[str, Version] = {}
    for n, line in requirement_lines(LOCK):
        req = Requirement(line)
        specs = list(req.specifier)
        where = f"{LOCK.name}:{n}: {line!r}"
        assert len(specs) == 1 and specs[0].operator == "==", f"{where} is not name==version"
        assert not (req.url or req.extras or req.marker) and "*" not in specs[0].version, f"{where} is not plain"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{where}: {name} is pinned twice"
        pins[name] = Version(specs[0].version)
    return pins


def declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for pyproject.toml's dependencies and extras, and requirements/no-deps.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [("dependencies", Requirement(s)) for s in project["dependencies"]]
    for extra, specs in project.get("optional-dependencies", {}).items():
        reqs += [(f"[{extra}]", Requirement(s)) for s in specs]
    reqs += [(NO_DEPS.name, Requirement(line)) for _, line in requirement_lines(NO_DEPS)]
    me = canonicalize_name(project["name"])  # test = ["savs[mini,notebooks]", ...] names the package itself
    return [(w, r) for w, r in reqs if canonicalize_name(r.name) != me and (r.marker is None or r.marker.evaluate())]


def test_lock_is_one_exact_pin_per_package():
    assert len(read_lock()) > 50  # the whole transitive set, not just the direct dependencies


def test_every_declared_dependency_is_pinned_inside_its_range():
    pins = read_lock()
    wrong = []
    for where, req in declared():
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            wrong.append(f"{req} ({where}) is not in the lock")
        elif not req.specifier.contains(pin, prereleases=True):
            wrong.append(f"{req} ({where}): the lock has {pin}")
    assert not wrong, "run `make lock`:\n" + "\n".join(wrong)


def test_torch_is_declared_as_exactly_the_locked_release():
    """pyproject.toml pins torch to one exact version (a range lets pip pull a multi-GB CUDA build where the lock is
    not applied, e.g. ``pip install savs``), and that version is the lock's; which version it is may change."""
    torch = [(where, r) for where, r in declared() if canonicalize_name(r.name) == "torch"]
    assert len(torch) == 1, f"torch declared {len(torch)} times: {torch}"
    where, req = torch[0]
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"torch ({where}) is {req}, not one exact ==version pin"
    assert Version(specs[0].version) == read_lock()["torch"], f"torch ({where}) is {req}; the lock has another"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_setup_installs_through_the_lock_and_reinstalls_when_it_changes(tmp_path):
    """``make -n setup`` (a dry run in a copy, nothing executes): every pip install takes ``-c`` the lock, and the
    venv stamp's name changes with the lock's contents, so editing the lock reinstalls."""
    for name in ("Makefile", "pyproject.toml", "requirements"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)

    def dry_run() -> list[str]:
        dry = subprocess.run(["make", "-n", "setup", "VENV=venv"], cwd=tmp_path, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        return dry.stdout.splitlines()

    lines = dry_run()
    installs = [line for line in lines if "pip install" in line]
    assert len(installs) == 3 and all("-c requirements/constraints.txt" in line for line in installs), installs
    assert any("--no-deps -r requirements/no-deps.txt" in line for line in installs)
    stamp = [line for line in lines if line.startswith("rm -f venv/.installed-")]
    lock = tmp_path / "requirements" / "constraints.txt"
    _, first = requirement_lines(lock)[0]  # any pin will do: bump its version
    lock.write_text(lock.read_text().replace(f"{first}\n", f"{first}.post1\n", 1))
    assert len(stamp) == 1 and stamp != [line for line in dry_run() if line.startswith("rm -f venv/.installed-")]


def test_conda_environment_installs_through_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-c requirements/constraints.txt" in pip and "-e .[test]" in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert f"Python {python.removeprefix('python=')}." in LOCK.read_text()  # the Python the lock was resolved for


def site_packages() -> list[str]:
    """The running venv's own site-packages: not the working directory, where ``savs.egg-info`` may lie."""
    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def not_this_checkouts_venv() -> str | None:
    """Why the running interpreter is not a venv that `make setup` built for this checkout, or None if it is."""
    if sys.prefix == sys.base_prefix:
        return f"not run from a virtual environment ({sys.prefix}); `make test` runs in the project's .venv"
    savs = list(md.distributions(name="savs", path=site_packages()))
    if not savs:
        return f"savs is not installed in {sys.prefix} (PYTHONPATH use?); `make test` installs it"
    direct = savs[0].read_text("direct_url.json")
    url = json.loads(direct)["url"] if direct else None
    if url is None or Path(unquote(urlparse(url).path)).resolve() != ROOT:
        return f"{sys.prefix} has savs installed from {url or 'an index'}, not from this checkout ({ROOT})"
    return None


def test_installed_versions_match_the_lock():
    reason = not_this_checkouts_venv()
    if reason:
        pytest.skip(f"installed versions not compared with the lock: {reason}")
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions(path=site_packages())}
    wrong = []
    for name, pin in read_lock().items():
        if name not in installed:
            wrong.append(f"{name}: not installed, the lock has {pin}")
        elif not SpecifierSet(f"=={pin}").contains(installed[name], prereleases=True):  # 2.13.0+cpu is ==2.13.0
            wrong.append(f"{name}: {installed[name]} installed, the lock has {pin}")
    assert not wrong, "run `make setup` (the lock changed since this venv was built?):\n" + "\n".join(wrong)
