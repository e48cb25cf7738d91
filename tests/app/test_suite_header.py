"""The app names a mixed suite (`--suite auto` with only some of the paper's models here) role by role: the header's
badge and notice, the Models tab's suite line and table, and the stand-in notes beside outputs. Probe-only: the paper's
files are small stand-in files where the real ones would be (loading each mix is tests/models/test_auto_mix.py)."""
import pytest
import torch
from safetensors.torch import save_file

from synood.config import Config
from synood.models import Suite, suites
from synood.models.sources import torch_hub_dir
from tests.helpers.hubcache import put_in_hf_cache
from ui import build_app
from ui.models_tab import ModelsTab
from ui.notes import standin_note

MIX = "mixed:paper=encoder+classifier,offline=labeller+generator"
SHOWN = ("suite-badge", "suite-notice", "suite-description")


@pytest.fixture
def config(tmp_path, monkeypatch) -> Config:
    """The default config on a machine holding only the paper's CLIP and ResNet-50 files."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = tmp_path / "clip.safetensors"
    save_file({"weight": torch.zeros(2)}, str(weights))
    put_in_hf_cache(suites.OPEN_CLIP_HUB["ViT-B-16-quickgelu", "openai"], {"open_clip_model.safetensors": weights})
    checkpoint = torch_hub_dir() / "checkpoints" / "resnet50-11ad3fa6.pth"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"weight": torch.zeros(2)}, checkpoint)
    config = Config()
    config.models.device = "cpu"
    return config


def shown(app) -> dict[str, str]:
    return {block.elem_id: str(block.value) for block in app.blocks.values()
            if getattr(block, "elem_id", None) in SHOWN}


def test_the_header_and_models_tab_name_each_roles_origin(config):
    suite = Suite.from_config(config.models)
    assert suite.name == MIX
    page = shown(build_app(config, suite))
    badge = page["suite-badge"]
    assert "Mixed: the paper&#x27;s encoder and classifier; offline stand-ins for the labeller and generator" in badge
    assert "pretrained weights" in badge and "RANDOM" not in badge
    for role, origin in (("encoder", "paper"), ("classifier", "paper"), ("labeller", "offline"),
                         ("generator", "offline")):
        assert f'data-role="{role}" data-origin="{origin}"' in badge
    notice = page["suite-notice"]
    assert notice.count("<li>") == 2 and "<li>Context labeller: offline stand-in" in notice
    assert "<code>synood models download --suite paper --role generator</code>" in notice
    assert "--role encoder" not in notice
    description = page["suite-description"]
    assert description.startswith(f"**Suite `{MIX}`**: Chosen per role by `--suite auto`")
    assert "Image/text encoder: open_clip ViT-B-16-quickgelu [openai] (the paper's)." in description
    assert "Generator: classical cam-context-shiftmap-noise (offline stand-in)." in description
    assert f'data-suite="{MIX}"' in ModelsTab(suite).table()


def test_stand_in_notes_name_only_the_stand_ins(config):
    suite = Suite.from_config(config.models)
    assert standin_note(suite, "encoder", "classifier") == ""
    note = standin_note(suite, "labeller", "classifier")
    assert note.startswith("*Stand-in.* Context labeller:") and "EfficientNet-Lite0's other labels" in note
    assert "Energy classifier" not in note


def test_a_single_suite_shows_no_role_list(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    config = Config()
    config.models.device = "cpu"
    suite = Suite.from_config(config.models)
    page = shown(build_app(config, suite))
    assert suite.name == "offline" and "data-origin" not in page["suite-badge"]
    assert "<li>" not in page["suite-notice"] and "not CLIP" in page["suite-notice"]
