"""`--suite auto` per role: the paper's component wherever it is on this machine, the offline stand-in for the rest.

The paper's models are random-weight twins in the real repos' layouts (tests/helpers/twins.py): the encoder and
ResNet-50 at full size (their loaders need the real shapes), LLaVA-1.5 and SD2 inpainting as tiny configs. Every
mix resolves, names itself and its missing roles in the notice, and loads each of its four components (the app's
header for a mix: tests/app/test_suite_header.py).
"""
import pytest
import torch
from PIL import Image

from synood.config import ModelsConfig, SynthesisConfig
from synood.data.logits import classifier_identity
from synood.models import suites
from synood.models.sources import INSTALLED
from synood.pipelines.generation import iterations, prepare
from tests.helpers.twins import PAPER_REPOS, RESNET50_FILE, build_paper_twins, link_paper_twins

ROLES = ("encoder", "classifier", "labeller", "generator")
OFFLINE = suites.SUITES["offline"]
PAPER = suites.SUITES["paper"]
# The class each role's component is, by where it comes from.
CLASSES = {"paper": {"encoder": "OpenClipEncoder", "classifier": "ImageNetClassifier", "labeller": "MLLMLabeller",
                     "generator": "InpaintGenerator"},
           "offline": {"encoder": "StandInEncoder", "classifier": "ImageNetClassifier", "labeller": "NearestLabels",
                       "generator": "ClassicalGenerator"}}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    return build_paper_twins(tmp_path_factory.mktemp("paper-twins"))


@pytest.fixture
def paper_here(twins, tmp_path, monkeypatch):
    """Makes only the given roles' paper models visible (an empty hub cache and TORCH_HOME otherwise)."""
    def have(*roles: str) -> None:
        hf, home = tmp_path / "hf", tmp_path / "torch"
        link_paper_twins(twins, set(roles), hf, home)
        monkeypatch.setenv("HF_HUB_CACHE", str(hf))
        monkeypatch.setenv("TORCH_HOME", str(home))
    return have


def resolved(**models) -> suites.Suite:
    return suites.Suite.from_config(ModelsConfig(suite="auto", device="cpu", **models))


def check_loads(suite: suites.Suite, paper_roles: set[str]) -> dict:
    """Load every component; the paper roles' must come from the fake caches as pretrained weights."""
    loaded = {}
    for role in ROLES:
        component = loaded[role] = suite.get(role)
        origin = "paper" if role in paper_roles else "offline"
        assert type(component).__name__ == CLASSES[origin][role], role
        assert component.info.role == role and component.info.pretrained
        if origin == "paper" and role in PAPER_REPOS:  # the hub id, or the cached file's path
            repo = PAPER_REPOS[role]
            assert repo in component.info.source or f"models--{repo.replace('/', '--')}" in component.info.source
    if "classifier" in paper_roles:
        assert loaded["classifier"].info.source.endswith(RESNET50_FILE)
    return loaded


def check_mix(suite: suites.Suite, paper_roles: set[str]) -> None:
    """Each role is the paper's or the offline stand-in as asked; the notice says, per missing role, what runs and
    how to get the paper's model."""
    missing = [role for role in ROLES if role not in paper_roles]
    for role in ROLES:
        expected = PAPER if role in paper_roles else OFFLINE
        assert suite.spec.components[role] == expected.components[role], role
    for role in missing:
        assert f"`synood models download --suite paper --role {role}`" in suite.notice
    for role in paper_roles:
        assert f"--role {role}`" not in suite.notice
    assert suite.notice.count("\n- ") == len(missing)
    for role in ROLES:
        assert suites.component_origin(suite.spec.components[role]) == ("paper" if role in paper_roles else "offline")


def test_only_the_encoder(paper_here):
    """The user who downloaded only CLIP gets CLIP, and the stand-ins for the other three."""
    paper_here("encoder")
    suite = resolved()
    assert suite.name == "mixed:paper=encoder,offline=classifier+labeller+generator"
    assert suite.spec.title == "Mixed: the paper's encoder; offline stand-ins for the classifier, labeller and generator"
    assert suite.notice.startswith("Running a mix of models, chosen per role: the paper's encoder; offline stand-ins")
    check_mix(suite, {"encoder"})
    loaded = check_loads(suite, {"encoder"})
    assert loaded["encoder"].encode_text(["a photo of a dog"]).shape == (1, 512)
    # caches key on each component's identity: the mix's features never meet the offline encoder's
    offline = suites.Suite(OFFLINE, device="cpu")
    assert loaded["encoder"].identity.startswith("open_clip:ViT-B-16-quickgelu:")
    assert loaded["encoder"].identity != offline.get("encoder").identity
    assert type(loaded["labeller"].encoder).__name__ == "StandInEncoder"  # the stand-in labeller keeps its own


def test_encoder_and_classifier(paper_here):
    """CLIP and ResNet-50 here: both the paper's, and the offline generator optimises its noise against ResNet-50."""
    paper_here("encoder", "classifier")
    suite = resolved()
    assert suite.name == "mixed:paper=encoder+classifier,offline=labeller+generator"
    check_mix(suite, {"encoder", "classifier"})
    loaded = check_loads(suite, {"encoder", "classifier"})
    offline_classifier = suites.Suite(OFFLINE, device="cpu").get("classifier")
    assert classifier_identity(loaded["classifier"]) != classifier_identity(offline_classifier)
    image = Image.new("RGB", (160, 120), (90, 140, 60))
    settings = SynthesisConfig(iterations=1)
    canvas = prepare(loaded["generator"], image, "A photo only remain grass", 0, settings, ["grass"])
    (step,) = list(iterations(loaded["generator"], loaded["classifier"], canvas, settings))
    assert torch.isfinite(torch.tensor(step.energy))


def test_labeller_and_generator_only(paper_here):
    """LLaVA and SD2 here but not CLIP and ResNet-50: the paper's labeller and generator beside the stand-ins."""
    paper_here("labeller", "generator")
    suite = resolved()
    assert suite.name == "mixed:paper=labeller+generator,offline=encoder+classifier"
    check_mix(suite, {"labeller", "generator"})
    assert "not CLIP" in suite.notice
    loaded = check_loads(suite, {"labeller", "generator"})
    image = Image.new("RGB", (160, 120), (200, 60, 40))
    assert loaded["labeller"].chat_text() == f"USER: <image>\n{loaded['labeller'].prompt} ASSISTANT:"  # LLaVA-1.5's
    assert isinstance(loaded["labeller"].context(image), list)
    settings = SynthesisConfig(iterations=1, steps=2)
    canvas = prepare(loaded["generator"], image, "A photo only remain sky", 0, settings, ["sky"])
    (step,) = list(iterations(loaded["generator"], loaded["classifier"], canvas, settings))
    assert torch.isfinite(torch.tensor(step.energy))


def test_all_four_is_the_paper_suite(paper_here):
    paper_here(*ROLES)
    suite = resolved()
    assert suite.spec is PAPER and suite.notice == ""
    check_loads(suite, set(ROLES))


def test_none_is_the_offline_suite(paper_here):
    paper_here()
    suite = resolved()
    assert suite.spec is OFFLINE
    assert suite.notice.startswith("Running the offline suite") and "\n" not in suite.notice  # one paragraph
    assert "`synood models download --suite paper`" in suite.notice and "`--labeller FOLDER`" in suite.notice
    check_loads(suite, set())


def test_a_missing_stand_in_falls_back_to_the_tiny_twin(paper_here, monkeypatch):
    """The offline encoder's packages missing: that role gets the tiny random twin, named loudly; the rest mix."""
    paper_here("classifier")
    monkeypatch.setitem(suites.PACKAGE_FAMILIES, "standin", ("no-such-distribution-xyz",))
    spec, notice = suites.resolve_suite(ModelsConfig())
    assert spec.name == "mixed:paper=classifier,offline=labeller+generator,tiny=encoder"
    assert spec.components["encoder"] == suites.SUITES["tiny"].components["encoder"]
    assert "tiny twins with RANDOM weights for the encoder" in spec.title
    assert "pip install no-such-distribution-xyz" in notice
    encoder = suites.Suite(spec, device="cpu", notice=notice).get("encoder")
    assert spec.components["encoder"].random and not encoder.info.pretrained


def test_a_replaced_role_keeps_its_replacement(paper_here, tmp_path):
    """A component the user names is used whatever else is here; it does not make a suite mixed on its own."""
    folder = tmp_path / "my-labeller"
    folder.mkdir()
    paper_here("encoder")
    spec, _ = suites.resolve_suite(ModelsConfig(labeller=str(folder)))
    assert spec.name == "mixed:paper=encoder,custom=labeller,offline=classifier+generator"
    assert spec.components["labeller"] == suites.ComponentSpec("labeller", "transformers", str(folder))
    assert "Context labeller: transformers" in spec.description and "(your replacement)" in spec.description
    spec, notice = suites.resolve_suite(ModelsConfig(encoder_weights=str(folder)))
    assert spec.name == "offline" and "--role encoder" not in notice
    assert suites.probe(spec.components["classifier"]).state == INSTALLED


def test_a_mixed_suites_missing_component_names_the_paper_download(paper_here, twins, tmp_path):
    """Weights that vanish after resolution: the load error names the paper suite's download for that role."""
    paper_here("encoder")
    suite = resolved()
    (tmp_path / "hf" / f"models--{PAPER_REPOS['encoder'].replace('/', '--')}").unlink()
    with pytest.raises(suites.ModelUnavailableError) as err:
        suite.get("encoder")
    assert "This mixed suite's image/text encoder" in str(err.value)
    assert "synood models download --suite paper --role encoder" in str(err.value)
