"""The lock: every dependency pinned within pyproject's ranges, the conda pins equal to it, and .venv built from it."""

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK, PINS = ROOT / "requirements.lock", ROOT / "constraints.txt"
NOT_LOCKED = {"torch"}  # installed first by the Makefile (its CPU build by default)


def pins_here() -> dict[str, str]:
    """Package -> locked version, for the lines whose markers hold on this interpreter and platform."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            requirement = Requirement(line.rstrip(" \\"))
            if requirement.marker is None or requirement.marker.evaluate():
                pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_dependency_is_locked_within_its_range():
    pins = pins_here()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name in NOT_LOCKED:
            assert name not in pins, f"{name} must stay out of the lock (the Makefile installs it)"
            continue
        assert name in pins, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"{name}=={pins[name]} is outside pyproject's {requirement.specifier}: run `make lock`"


def test_every_locked_package_has_hashes():
    text = LOCK.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2])
    assert entries and all("--hash=sha256:" in entry for entry in entries if entry.strip())


def test_the_conda_pins_are_the_lock_without_hashes():
    lines = [line.removesuffix(" \\") for line in LOCK.read_text(encoding="utf-8").splitlines() if "--hash=" not in line]
    assert PINS.read_text(encoding="utf-8").splitlines()[1:] == lines, "run `make pins`"


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
                    reason="only the workbook's own .venv (make setup) is installed from the lock")
def test_the_venv_holds_exactly_the_locked_versions():
    for name, version in pins_here().items():
        assert importlib.metadata.version(name) == version, f"{name}: installed {importlib.metadata.version(name)}"
