"""requirements.lock as data: the exact pins, and what pyproject.toml asks for.

The lock is a universal `uv pip compile` output (one file for every platform and Python >= 3.11;
a package may have one pin per environment marker). The upgrade check diffs it against the newest
resolution, and a test checks that it still satisfies pyproject's ranges.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
#: The lock's resolution: every extra (the tests, the local model, tracing), the model files' group and
#: the eval data's, for
#: every platform and Python the project supports. `REFRESH_COMMAND` writes requirements.lock and is
#: the lock's own header; the upgrade check runs the same resolution into a scratch file.
COMPILE = ("uv", "pip", "compile", "pyproject.toml", "--extra", "dev", "--extra", "local", "--extra", "otel")
COMPILE += ("--group", "local-model", "--group", "eval-data", "--universal")
REFRESH_COMMAND = shlex.join([*COMPILE, "-o", "requirements.lock"])
EXTRAS = tuple(COMPILE[i + 1] for i, word in enumerate(COMPILE) if word == "--extra")
GROUPS = tuple(COMPILE[i + 1] for i, word in enumerate(COMPILE) if word == "--group")


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503) name
    version: Version
    marker: Marker | None

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        return self.marker is None or self.marker.evaluate(environment)


def read_pins(text: str) -> list[Pin]:
    """Every `name==version [; marker]` line of a requirements file (comments and options skipped)."""
    pins = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        if spec.operator != "==":
            raise ValueError(f"not an exact pin: {line!r}")
        pins.append(Pin(canonicalize_name(requirement.name), Version(spec.version), requirement.marker))
    return pins


def locked(path: Path = LOCK) -> list[Pin]:
    return read_pins(path.read_text(encoding="utf-8"))


def versions(pins: Iterable[Pin], environment: dict[str, str] | None = None) -> dict[str, Version]:
    """name -> version of the pins that apply in `environment` (default: this interpreter)."""
    return {p.name: p.version for p in pins if p.applies(environment)}


def project_requirements(path: Path = PYPROJECT) -> list[Requirement]:
    """What the lock must satisfy: the dependencies, the extras it is made with, and its groups."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    project = data["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    for group in GROUPS:
        lines += data["dependency-groups"][group]
    return [Requirement(line) for line in lines]


def excluded_dependencies(path: Path = PYPROJECT) -> dict[str, list[str]]:
    """package -> dependencies the lock leaves out on purpose (`[tool.uv] exclude-dependencies`)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for entry in data.get("tool", {}).get("uv", {}).get("exclude-dependencies", []):
        name = canonicalize_name(entry["package"]["name"])
        found.setdefault(name, []).extend(canonicalize_name(d) for d in entry["dependencies"])
    return found
