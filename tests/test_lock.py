"""Reproducible installs: requirements-lock.txt pins every package the requirements resolve to, and the installs
of `make run`, `make test` and CI use it, so the venv under test holds exactly the locked versions."""
import importlib.metadata
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    lines = [line.strip() for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {canonical(name): version for name, version in (line.split("==") for line in lines)}


def test_every_requirement_is_pinned():
    named = []
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                named.append(canonical(re.split(r"[<>=!~;\[ ]", line)[0]))
    assert named and not [name for name in named if name not in pins()]


def test_the_installed_versions_are_the_locked_ones():
    installed = {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    differ = {name: (version, installed.get(name, "not installed")) for name, version in pins().items()
              if installed.get(name) != version}
    assert differ == {}, "(locked, installed): run `make test` to install the lock, or `make lock` to refresh it"


def test_every_install_uses_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install -r" in line]
    assert len(installs) == 2 and all(line.endswith("-c $(LOCK)") for line in installs)
    assert "LOCK := requirements-lock.txt" in makefile and "make test" in (ROOT / ".ci" / "run").read_text()
