"""synood.method.scorers: the registry's entries are the formulas of synood.method.scores, on fixed tensors."""
import pytest
import torch
import torch.nn.functional as F

from synood.config import NegLabelConfig
from synood.method import scores
from synood.method.finetune import Projection
from synood.method.scorers import COMBINATIONS, SCORERS, ScoreInputs, Scorer, SynOOD, build, standard
from synood.records.checkpoint import TunedDetector

CONFIG = NegLabelConfig(ngroups=4)


@pytest.fixture(scope="module")
def inputs() -> ScoreInputs:
    g = torch.Generator().manual_seed(0)
    return ScoreInputs(F.normalize(torch.randn(10, 16, generator=g), dim=-1),
                       F.normalize(torch.randn(40, 16, generator=g), dim=-1), CONFIG,
                       features=5 * torch.randn(6, 16, generator=g), logits=3 * torch.randn(6, 1000, generator=g))


def test_every_entry_is_named_by_its_key_and_declares_what_it_reads():
    assert list(SCORERS) == ["neglabel", "mcm", "msp", "energy", "csp", "synood"]
    assert standard() == ["neglabel", "mcm", "msp", "energy"]
    for name, cls in SCORERS.items():
        assert issubclass(cls, Scorer) and cls.name == name and cls.title
        assert cls.kind in ("post-hoc", "trained", "test-time") and cls.needs and cls.needs <= {"features", "logits"}
    assert SCORERS["synood"].kind == "trained" and SCORERS["energy"].title == "Energy -E(x)"


def test_entries_equal_the_formula_functions(inputs):
    unit = F.normalize(inputs.features, dim=-1)
    neglabel, _ = scores.neglabel_score(unit.double(), inputs.id_text.double(), inputs.negative_text.double(),
                                        CONFIG.ngroups, CONFIG.temperature, CONFIG.group_seed)
    expected = {"neglabel": neglabel, "mcm": scores.mcm_score(unit, inputs.id_text),
                "msp": scores.msp_score(inputs.logits), "energy": scores.energy_score(inputs.logits)}
    for name, value in expected.items():
        torch.testing.assert_close(build(name).score(inputs), value, rtol=0, atol=0)


def test_each_scorer_reads_only_what_it_needs(inputs):
    for name in standard():
        scorer = build(name)
        only = {"features": inputs.features if "features" in scorer.needs else None,
                "logits": inputs.logits if "logits" in scorer.needs else None}
        torch.testing.assert_close(scorer.score(ScoreInputs(inputs.id_text, inputs.negative_text, CONFIG, **only)),
                                   scorer.score(inputs))
    with pytest.raises(ValueError, match="needs the image logits"):
        build("msp").score(ScoreInputs(inputs.id_text, inputs.negative_text, CONFIG, features=inputs.features))


def test_synood_is_neglabel_with_the_tuned_parts(inputs):
    projection = Projection(16).eval()
    tuned_rows = torch.randn(3, 16)
    tuned = TunedDetector(projection, torch.tensor([0, 5, 7]), tuned_rows)
    assert torch.equal(build("synood", tuned, "none").score(inputs), build("neglabel").score(inputs))
    negatives = inputs.negative_text.clone()
    negatives[[0, 5, 7]] = F.normalize(tuned_rows, dim=-1)
    with torch.no_grad():
        projected = projection(inputs.features)
    expected = {"projection": (projected, inputs.negative_text), "negatives": (F.normalize(inputs.features, dim=-1),
                                                                               negatives), "both": (projected, negatives)}
    for combination, (features, negative_text) in expected.items():
        s, _ = scores.neglabel_score(features.double(), inputs.id_text.double(), negative_text.double(),
                                     CONFIG.ngroups, CONFIG.temperature, CONFIG.group_seed)
        torch.testing.assert_close(build("synood", tuned, combination).score(inputs), s)
    assert set(COMBINATIONS) == {"both", "projection", "negatives", "none"}


def test_a_trained_scorer_needs_its_detector_and_a_known_combination():
    with pytest.raises(ValueError, match="needs a fine-tuned detector"):
        build("synood")
    with pytest.raises(ValueError,
                       match="finetune.combination: 'all' is not allowed; choose one of both, projection, negatives, none"):
        SynOOD(TunedDetector(None, torch.arange(2), None), "all")
