"""`--labeller` takes any transformers image-text-to-text model: tiny random twins of two small architectures other
than LLaVA-1.5 (Qwen2-VL, LLaVA-OneVision) load from a folder and from the hub cache, through Suite and through the
`synood` command, are prompted with their own chat templates and answer with a list of labels. Random weights: the
tests check the plumbing, not what the labels mean."""
import pytest
import torch
from PIL import Image

from synood.config import ModelsConfig
from synood.models import labeller, sources, suites
from tests.helpers.cli import in_process, ok
from tests.helpers.generation import generate, records
from tests.helpers.hubcache import put_in_hf_cache
from tests.helpers.twins import save_tiny_llava_onevision, save_tiny_qwen2_vl

CPU = torch.device("cpu")
# architecture -> (how to save its twin, what its chat template puts before the prompt)
TWINS = {
    "Qwen2VLForConditionalGeneration": (save_tiny_qwen2_vl, "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"),
    "LlavaOnevisionForConditionalGeneration": (save_tiny_llava_onevision, "<|im_start|>user\n<image>\n"),
}


@pytest.fixture(scope="module", params=list(TWINS))
def twin(request, tmp_path_factory):
    """(architecture, saved folder) of each tiny twin."""
    architecture = request.param
    return architecture, TWINS[architecture][0](tmp_path_factory.mktemp(architecture) / "model")


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.new("RGB", (300, 200), (40, 120, 200))


def check_labeller(component, architecture: str, image: Image.Image) -> str:
    """The loaded labeller is the twin, prompted with its own chat template, and lists strings; its raw answer."""
    assert isinstance(component, labeller.MLLMLabeller)
    assert component.info.architecture == architecture and component.info.pretrained
    assert component.chat_text() == f"{TWINS[architecture][1]}{labeller.PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    labels = component.context(image)
    assert isinstance(labels, list) and all(isinstance(label, str) and label for label in labels)
    return component.answer(image)


def test_a_folder_through_the_suite(twin, image):
    architecture, folder = twin
    suite = suites.Suite.from_config(ModelsConfig(suite="tiny", labeller=str(folder), device="cpu"))
    assert suite.spec.components["labeller"] == suites.ComponentSpec("labeller", "transformers", str(folder))
    assert suites.probe(suite.spec.components["labeller"]).state == sources.LOCAL
    answer = check_labeller(suite.get("labeller"), architecture, image)
    assert check_labeller(suite.get("labeller"), architecture, image) == answer  # greedy: the same answer again


def test_a_hub_id_from_the_offline_cache(twin, image, tmp_path, monkeypatch):
    architecture, folder = twin
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    put_in_hf_cache("synood-test/tiny-vlm", {".": folder})
    spec = suites.ComponentSpec("labeller", "transformers", "synood-test/tiny-vlm")
    assert suites.probe(spec).state == sources.CACHED
    from_folder = labeller.load(suites.ComponentSpec("labeller", "transformers", str(folder)), CPU, "auto")
    assert check_labeller(labeller.load(spec, CPU, "auto"), architecture, image) == from_folder.answer(image)


def test_the_command_loads_it(twin):
    architecture, folder = twin
    code, out, _ = in_process("models", "load", "--suite", "tiny", "--role", "labeller", "--labeller", str(folder))
    assert code == 0
    assert out.startswith(f"Loading context labeller: transformers {folder} from ")
    line = out.splitlines()[-1]
    assert line.startswith(f"labeller: {folder} | {architecture} | ") and "| pretrained |" in line
    assert line.endswith(f"from local path: {folder}")


def test_generate_lists_context_with_it(selection, tmp_path):
    """Stage 1 through the installed `synood generate`: the small labeller's labels reach the manifest and prompt."""
    folder = save_tiny_qwen2_vl(tmp_path / "qwen2-vl")
    out = tmp_path / "generation"
    ok(generate("--selection", str(selection), "--out", str(out), "--limit", "1", "--labeller", str(folder)))
    (record,) = records(out)
    assert isinstance(record["context"], list) and all(isinstance(label, str) for label in record["context"])
    assert record["prompt"].startswith("A photo only remain")
