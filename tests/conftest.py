"""Test-wide isolation: no network, model caches in a private temporary folder, and apps that read only under
pytest's base temporary folder.

Set before any test module imports huggingface_hub/torch, so their cache constants pick it up.
"""
import os
import tempfile
from pathlib import Path

# $SYNOOD_TEST_CACHE (a developer's option, never set by CI) reuses one cache folder across sessions: the caches are
# keyed by content, so only tests of a cold start can notice it.
_CACHE = Path(os.environ.get("SYNOOD_TEST_CACHE") or tempfile.mkdtemp(prefix="synood-test-cache-"))
_CACHE.mkdir(parents=True, exist_ok=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HOME"] = str(_CACHE / "huggingface")
os.environ.pop("HF_HUB_CACHE", None)
os.environ["TORCH_HOME"] = str(_CACHE / "torch")
os.environ["SYNOOD_HOME"] = str(_CACHE / "synood")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cache_root() -> Path:
    """The private cache root every test of this session shares."""
    return _CACHE


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory) -> Path:
    """Pytest's base temporary folder, where every test writes its data: the data root ($SYNOOD_DATA_ROOTS) of
    every app a test starts without --data-root, so folders elsewhere (the repository, site-packages) are refused."""
    from ui.access import ROOTS_VARIABLE

    root = tmp_path_factory.getbasetemp().resolve()
    os.environ[ROOTS_VARIABLE] = str(root)
    return root


@pytest.fixture(scope="session")
def offline_app(tmp_path_factory, data_root):
    """One real `python app.py --suite offline` on 127.0.0.1 for every test file that drives it, reading only
    under pytest's base temporary folder."""
    from bench.common.serve import running_app

    log = tmp_path_factory.mktemp("offline-app") / "app.log"
    with running_app("--suite", "offline", "--data-root", str(data_root), log=log) as url:
        _APP_LOGS.append(log)
        yield url


_APP_LOGS: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that used the shared app gets the tail of the app's log in its report (CI keeps no files)."""
    report = yield
    if report.failed and "offline_app" in getattr(item, "fixturenames", ()) and _APP_LOGS:
        report.sections.append(("offline app log (last 80 lines)",
                                "\n".join(_APP_LOGS[-1].read_text(errors="replace").splitlines()[-80:])))
    return report


@pytest.fixture(scope="session")
def offline_generation(tmp_path_factory) -> Path:
    """A generation of two packaged photos (cat, orange; copied, so the data lies inside the apps' data root) by the
    real `synood select` and `synood generate --suite offline`, for every test file that needs stage 1's output."""
    from bench.load import make_generation

    return make_generation(tmp_path_factory.mktemp("stage1"))


@pytest.fixture(scope="module")
def selection(tmp_path_factory) -> Path:
    """`synood select` over tests.helpers.generation.train_folder (4 packaged photos, 2 classes), once per module."""
    from tests.helpers.cli import ok, synood
    from tests.helpers.generation import train_folder

    root = tmp_path_factory.mktemp("select")
    train_folder(root)
    result = ok(synood("select", "--train", str(root / "train"), "--per-class", "2", "--out", str(root / "sel.jsonl")))
    assert "selected 4 images from 2 classes (2 matched to ImageNet classes)" in result.stderr
    return root / "sel.jsonl"


@pytest.fixture(scope="module")
def single(selection, tmp_path_factory):
    """`selection` generated on the tiny suite by one process, in two runs (2 items, then the rest after a torn
    manifest tail): the folder and both runs' results, once per module."""
    from tests.helpers.cli import ok
    from tests.helpers.generation import generate

    out = tmp_path_factory.mktemp("gen") / "single"
    first = ok(generate("--selection", str(selection), "--out", str(out), "--limit", "2"))
    assert "generated 2, skipped 0" in first.stderr
    with open(out / "manifest.jsonl", "ab") as f:
        f.write(b'{"id": "torn')  # as if the merge writer had been killed (it never is: it renames)
    rest = ok(generate("--selection", str(selection), "--out", str(out)))
    return out, first, rest


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (Debian's) for every browser test; each test opens its own pages."""
    from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
