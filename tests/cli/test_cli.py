"""The `synood` command through its installed entry point."""
import json

import pytest

from tests.helpers.cli import synood


def test_models_lists_every_suite_without_network():
    result = synood("models", offline_flag=False, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("suite paper (not ready)", "suite offline (ready)", "suite tiny (ready)", "needs download",
                 "built in-process", "llava-hf/llava-1.5-7b-hf", "stabilityai/stable-diffusion-2-inpainting",
                 "resnet50-11ad3fa6.pth", "installed package", "--suite auto resolves to: offline"):
        assert text in out


def test_models_json_and_overrides(tmp_path):
    weights = tmp_path / "clip.safetensors"
    weights.write_bytes(b"x")
    result = synood("models", "--json", "--suite", "paper", "--encoder-weights", str(weights),
                    "--labeller", str(tmp_path / "missing"))
    report = json.loads(result.stdout)
    (paper,) = report["suites"]
    states = {row["role"]: row["state"] for row in paper["components"]}
    assert states == {"encoder": "local path", "classifier": "needs download", "labeller": "missing",
                      "generator": "needs download"}
    assert paper["available"] is False


def test_unavailable_component_is_one_clear_message():
    result = synood("models", "load", "--suite", "paper", "--role", "classifier", offline_flag=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr
    assert message.startswith("synood: error: The paper suite's energy classifier")
    assert "synood models download --suite paper" in message and "--classifier-weights FILE" in message


def test_download_offline_fails_fast_and_clearly():
    result = synood("models", "download", "--suite", "paper", "--role", "encoder", timeout=120)
    assert result.returncode == 1
    assert "encoder: download failed" in result.stderr and "Traceback" not in result.stderr


def test_config_shows_the_resolved_tree(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("synthesis:\n  iterations: 4\n")
    result = synood("config", "--config", str(f), "--set", "projection.epochs=6", "--suite", "tiny")
    assert result.returncode == 0
    assert "iterations: 4" in result.stdout and "epochs: 6" in result.stdout and "suite: tiny" in result.stdout


@pytest.mark.parametrize("args, words", [
    (("config", "--set", "synthesis.iterations=x"), "synthesis.iterations: expected int"),
    (("models", "--suite", "huge"), "models.suite: 'huge' is not allowed; choose one of auto, paper, offline, tiny"),
])
def test_bad_input_is_a_message_not_a_traceback(args, words):
    result = synood(*args)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_offline_suite_loads_without_network_and_names_its_stand_ins():
    result = synood("models", "load", "--suite", "offline", "--role", "encoder", "--role", "classifier",
                    offline_flag=False)
    assert result.returncode == 0, result.stderr
    assert "Offline stand-in for CLIP (not CLIP)" in result.stdout
    assert "EfficientNet-Lite0 (ImageNet-1k)" in result.stdout and "pretrained" in result.stdout
