"""The static checks, run by the test command: ruff over the whole tree with the rules in pyproject.toml (no unused
names, undefined names or statement errors), import-linter's contracts in .importlinter (each layer of synood/
imports only the layers below it; synood/ never imports ui/ or Gradio), and mypy over synood/, ui/ and app.py with the
settings in pyproject.toml (its cache in the git-ignored .mypy_cache)."""
import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def check(*command: str) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing():
    check(sys.executable, "-m", "ruff", "check", "synood", "ui", "tests", "bench", "app.py")


def test_layer_contracts_hold():
    check(str(BIN / "lint-imports"), "--no-cache")


def test_types_check():
    check(sys.executable, "-m", "mypy")


def test_every_part_of_synood_has_a_layer():
    contracts = configparser.ConfigParser()
    contracts.read(ROOT / ".importlinter")
    layered = {name.strip() for line in contracts["importlinter:contract:layers"]["layers"].split("\n")
               for name in line.split("|") if name.strip()}
    parts = {f"synood.{path.stem if path.suffix else path.name}" for path in (ROOT / "synood").iterdir()
             if path.name != "__init__.py" and (path.suffix == ".py" or (path / "__init__.py").exists())}
    assert parts - layered == set(), "add the new module or package to a layer in .importlinter"
