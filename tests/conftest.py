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
