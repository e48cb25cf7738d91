"""The test tree's layout rules, read from the source with `ast`: no module under tests/ imports a test module
(shared fixtures live in conftest.py, helpers in tests/helpers/), bench/ imports nothing from tests/ (what both need
lives in bench/common/), test modules live in their layer's folder, and tests/ itself holds only the project-wide
test modules, conftest.py and __init__.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS, BENCH = ROOT / "tests", ROOT / "bench"


def module_name(path: Path) -> str:
    """The dotted name `path` is imported under from the repository root (tests/helpers/cli.py -> tests.helpers.cli)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, importer: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted module name) for every import in `source`, relative ones resolved against `importer`; a name
    taken from a package (`from tests import test_cli`) counts as the submodule it may be, and so does a constant
    string handed to importlib.import_module or __import__."""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module:
                found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}" if module else alias.name) for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and called(node) in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return found


def called(call: ast.Call) -> str | None:
    """The name of the function `call` calls: `f` of f(...) or of a.b.f(...)."""
    return getattr(call.func, "attr", None) or getattr(call.func, "id", None)


def is_test_module(name: str) -> bool:
    """A module pytest collects or configures (tests.test_x, tests.sub.test_x, a conftest), by its dotted name; a bare
    test_x counts too (it imports when tests/ is on sys.path)."""
    last = name.rsplit(".", 1)[-1]
    in_tests = name.startswith("tests.") or "." not in name
    return in_tests and (last.startswith("test_") or last == "conftest")


def is_test_code(name: str) -> bool:
    """Anything under tests/ (test modules, conftest, tests/helpers)."""
    return name == "tests" or name.startswith("tests.")


def python_files(folder: Path) -> list[Path]:
    """Every .py file under `folder`, in a stable order."""
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def violations(folder: Path, forbidden) -> list[str]:
    """`path:line imports module` for every import under `folder` that `forbidden` names."""
    found = []
    for path in python_files(folder):
        name = module_name(path)
        for line, module in imported_modules(path.read_text(), name, path.name == "__init__.py"):
            if forbidden(module) and module != name:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_no_module_under_tests_imports_a_test_module():
    assert violations(TESTS, is_test_module) == [], "move shared fixtures to conftest.py and helpers to tests/helpers/"


def test_bench_imports_no_test_code():
    assert violations(BENCH, is_test_code) == [], "move what bench/ and tests/ share to bench/common/"


LAYER_FOLDERS = {"method", "data", "models", "pipelines", "cli", "app"}  # the layers of docs/architecture.md


def test_test_modules_follow_the_layers():
    """Each test module lives in the folder of the layer it tests; tests/ itself keeps the project-wide ones."""
    folders = {path.name for path in TESTS.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    assert folders == LAYER_FOLDERS | {"helpers"}
    project_wide = sorted(path.name for path in TESTS.glob("test_*.py"))
    assert project_wide == ["test_config.py", "test_faults.py", "test_layout.py", "test_lint.py", "test_lock.py"]


def test_tests_folder_holds_only_test_modules_conftest_and_init():
    loose = [path.name for path in TESTS.glob("*.py")
             if not (path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"))]
    assert loose == [], "helper modules belong in tests/helpers/"


@pytest.mark.parametrize("source, importer, is_package, expected", [
    ("from tests.test_cli import synood", "tests.test_x", False, ["tests.test_cli", "tests.test_cli.synood"]),
    ("import tests.test_generation as g", "tests.test_x", False, ["tests.test_generation"]),
    ("from tests import test_cli", "tests.test_x", False, ["tests", "tests.test_cli"]),
    ("from . import test_cli", "tests.test_x", False, ["tests", "tests.test_cli"]),
    ("from .test_cli import ok", "tests.test_x", False, ["tests.test_cli", "tests.test_cli.ok"]),
    ("from ..test_cli import ok", "tests.helpers.cli", False, ["tests.test_cli", "tests.test_cli.ok"]),
    ("from .cli import ok", "tests.helpers", True, ["tests.helpers.cli", "tests.helpers.cli.ok"]),
    ("import importlib\nimportlib.import_module('tests.test_cli')", "bench.x", False, ["importlib", "tests.test_cli"]),
    ("def f():\n    from tests.serve import free_port", "bench.x", False, ["tests.serve", "tests.serve.free_port"]),
])
def test_imports_are_read_as_python_reads_them(source, importer, is_package, expected):
    assert [name for _, name in imported_modules(source, importer, is_package)] == expected


@pytest.mark.parametrize("name, test_module, test_code", [
    ("tests.test_cli", True, True), ("tests.test_cli.synood", False, True), ("tests.conftest", True, True),
    ("tests.helpers.cli", False, True), ("tests", False, True), ("test_cli", True, False),
    ("bench.common.serve", False, False), ("synood.cli", False, False), ("hypothesis.strategies", False, False),
])
def test_what_counts_as_test_code(name, test_module, test_code):
    assert (is_test_module(name), is_test_code(name)) == (test_module, test_code)
