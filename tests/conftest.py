"""Test-wide isolation: no network, and model caches in a private temporary folder.

Set before any test module imports huggingface_hub/torch, so their cache constants pick it up.
"""
import os
import tempfile
from pathlib import Path

_CACHE = Path(tempfile.mkdtemp(prefix="synood-test-cache-"))
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


@pytest.fixture(scope="session")
def offline_app(tmp_path_factory):
    """One real `python app.py --suite offline` on 127.0.0.1 for every test file that drives it."""
    from tests.serve import running_app

    with running_app("--suite", "offline", log=tmp_path_factory.mktemp("offline-app") / "app.log") as url:
        yield url


@pytest.fixture(scope="session")
def offline_generation(tmp_path_factory) -> Path:
    """A generation of two packaged photos (cat, orange) by the real `synood select` and
    `synood generate --suite offline`, for every test file that needs stage 1's output."""
    from synood import photos
    from tests.test_cli import synood
    from tests.test_generation import ok

    root = tmp_path_factory.mktemp("stage1")
    for wnid, name in {"n02124075": "cat", "n07747607": "orange"}.items():  # Egyptian cat, orange
        photo = photos.by_name(name)
        (root / "train" / wnid).mkdir(parents=True)
        os.symlink(photo.path, root / "train" / wnid / f"{name}{photo.path.suffix}")
    ok(synood("select", "--train", str(root / "train"), "--per-class", "1", "--out", str(root / "sel.jsonl")))
    result = ok(synood("generate", "--suite", "offline", "--selection", str(root / "sel.jsonl"), "--out",
                       str(root / "gen"), timeout=580))  # 580 s: the first offline mining in a fresh home
    assert "generated 2, skipped 0 finished before, 0 failed" in result.stderr
    return root / "gen"
