"""requirements.txt and requirements-test.txt (what the PaaS and the Quick start install) agree
with pyproject.toml: a dependency added to one and not the other fails here, offline."""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.gunicorn import ROOT


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            package, _, version = line.partition("==")
            found[canonicalize_name(package)] = version.strip()
    return found


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(r) for r in listed]


def closure(roots: list[Requirement]) -> set[str]:
    """The names of ``roots`` and of everything they need, from the installed metadata."""
    seen: set[str] = set()
    todo = [canonicalize_name(r.name) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for raw in metadata.requires(name) or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def test_every_runtime_dependency_is_pinned_within_its_range():
    runtime = pins("requirements.txt")
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in runtime, f"{name} is in pyproject.toml but not requirements.txt: bin/lock"
        assert requirement.specifier.contains(runtime[name], prereleases=True), name


def test_every_test_tool_is_pinned_within_its_range():
    everything = pins("requirements.txt") | pins("requirements-test.txt")
    for requirement in declared("test"):
        name = canonicalize_name(requirement.name)
        assert name in everything, f"{name} is not in requirements-test.txt: run bin/lock"
        assert requirement.specifier.contains(everything[name], prereleases=True), name


def test_the_lock_files_hold_exactly_what_the_dependencies_need():
    runtime, test = pins("requirements.txt"), pins("requirements-test.txt")
    # What is installed here came from these files, so its metadata is the pinned versions'.
    for name, version in (runtime | test).items():
        assert metadata.version(name) == version, f"{name}: the venv is not the locked one"
    needed = closure(declared())
    assert set(runtime) == needed
    assert set(test) == closure(declared("test")) - needed
    assert "-r requirements.txt" in (ROOT / "requirements-test.txt").read_text().splitlines()
