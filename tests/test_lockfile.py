"""requirements.txt and requirements-test.txt (what the PaaS and the Quick start install) agree
with pyproject.toml: a dependency added to one and not the other fails here, offline. The lock
holds for every Python the project supports: a pin carries an environment marker where only
some Pythons need it (redis wants async-timeout below 3.11.3, Debian 12's Python is 3.11.2)."""

from __future__ import annotations

import platform
import tomllib
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.gunicorn import ROOT

Environment = dict[str, str]


def here() -> Environment:
    return dict(default_environment())


def python(full_version: str) -> Environment:
    """This machine, as it would be with another supported Python."""
    major_minor = ".".join(full_version.split(".")[:2])
    return here() | {"python_full_version": full_version, "python_version": major_minor}


def pins(name: str, environment: Environment | None = None) -> dict[str, str]:
    """The exact pins of a lock file that apply in ``environment`` (this machine's if None)."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        if "==" not in line or line.startswith("#"):
            continue
        pin = Requirement(line)
        if pin.marker is None or pin.marker.evaluate(environment or here()):
            (version,) = [s.version for s in pin.specifier]
            found[canonicalize_name(pin.name)] = version
    return found


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(r) for r in listed]


def closure(roots: list[Requirement], environment: Environment | None = None) -> set[str]:
    """The names of ``roots`` and of everything they need in ``environment``, from the
    installed metadata (the locked versions', see the last test)."""
    seen: set[str] = set()
    todo = [canonicalize_name(r.name) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            # Only another Python needs it (async-timeout below 3.11.3), so this machine has
            # not installed it; such back-ports need nothing themselves.
            continue
        for raw in requires:
            requirement = Requirement(raw)
            scope = (environment or here()) | {"extra": ""}
            if requirement.marker is None or requirement.marker.evaluate(scope):
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


@pytest.mark.parametrize("full_version", ["3.11.2", "3.11.3", "3.12.3", "3.13.5", "3.14.0"])
def test_the_lock_holds_for_every_supported_python(full_version: str):
    """Debian 12 (3.11.2), Ubuntu 24.04 (3.12), Debian 13 (3.13): each gets exactly what it
    needs from the same files, judged by the locked packages' own requirements and markers."""
    if platform.python_implementation() != "CPython":
        pytest.skip("the metadata read here is CPython's")
    environment = python(full_version)
    runtime, test = (
        pins("requirements.txt", environment),
        pins("requirements-test.txt", environment),
    )
    needed = closure(declared(), environment)
    assert set(runtime) == needed
    assert set(test) == closure(declared("test"), environment) - needed


def test_async_timeout_is_pinned_for_debian_12s_python_only():
    assert "async-timeout" in pins("requirements.txt", python("3.11.2"))
    assert "async-timeout" not in pins("requirements.txt", python("3.11.3"))
