"""The CSP scorer (NeurIPS 2024): NegLabel's grouped score over the CSP pool, checked against its definition by hand:
per group, the ID share of softmax([ID logits, that group's negative logits]); the score is the mean over groups."""
import math

import pytest
import torch

from synood.config import NegLabelConfig
from synood.method.scorers import SCORERS, ScoreInputs, build, choices, standard


def _basis(*rows):
    return torch.tensor(rows, dtype=torch.float64)  # exact cosines: the scorer computes in float64


# One image along e0 (raw, norm 3: the scorer normalises it); ID labels e0 and e1: cosines 1 and 0.
IMAGE = _basis([3.0, 0.0, 0.0])
ID = _basis([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
# Four negatives with cosines 0.6, 0.0, -0.8 and 0.8 to the image.
NEGATIVES = _basis([0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [-0.8, 0.0, 0.6], [0.8, 0.0, 0.6])
COSINES = (0.6, 0.0, -0.8, 0.8)


def _score(ngroups, temperature):
    config = NegLabelConfig(ngroups=ngroups, temperature=temperature)
    return build("csp").score(ScoreInputs(ID, NEGATIVES, config, features=IMAGE))


def _id_share(negative_cosines, temperature):
    """softmax([ID logits, negative logits]) summed over the ID entries, logits = cosine / temperature."""
    id_mass = math.exp(1 / temperature) + math.exp(0 / temperature)
    return id_mass / (id_mass + sum(math.exp(c / temperature) for c in negative_cosines))


def test_one_group_is_the_id_share_of_one_softmax_over_every_label():
    assert _score(1, 1.0).item() == pytest.approx(_id_share(COSINES, 1.0), abs=1e-12)


def test_one_negative_per_group_is_the_mean_of_the_pairwise_shares():
    # with four groups of one the seeded shuffle cannot matter: the mean runs over every negative alike
    expected = sum(_id_share([c], 1.0) for c in COSINES) / 4
    assert _score(4, 1.0).item() == pytest.approx(expected, abs=1e-12)


def test_the_papers_temperature_scales_cosines_by_100():
    # 100 * (1 - 0.8) = 20 logits between the top ID label and the closest negative: 1 / (1 + e^-20 + ...)
    expected = sum(_id_share([c], 0.01) for c in COSINES) / 4
    assert _score(4, 0.01).item() == pytest.approx(expected, rel=1e-12)
    assert 1 - expected == pytest.approx(math.exp(-20) / 4, rel=1e-6)  # only the 0.8 negative weighs


def test_two_groups_of_two_follow_the_seeded_grouping():
    # NegLabel's grouping: the seed-0 shuffle of the 4 negatives, split into 2 groups (torch.randperm on CPU)
    order = torch.randperm(4, generator=torch.Generator().manual_seed(0)).tolist()
    groups = [order[:2], order[2:]]
    expected = sum(_id_share([COSINES[i] for i in g], 1.0) for g in groups) / 2
    assert _score(2, 1.0).item() == pytest.approx(expected, abs=1e-12)


def test_csp_is_registered_as_a_post_hoc_score_of_its_own_pool():
    cls = SCORERS["csp"]
    assert (cls.name, cls.title, cls.kind, cls.needs, cls.pool) == ("csp", "CSP", "post-hoc", frozenset({"features"}),
                                                                    "csp")
    assert "csp" not in standard() and "csp" in choices()  # asked for explicitly: defaults never mine its pool


def test_csp_reads_the_negatives_it_is_given():
    near = ScoreInputs(ID, _basis([1.0, 0.0, 0.0]), NegLabelConfig(ngroups=1, temperature=1.0), features=IMAGE)
    far = ScoreInputs(ID, _basis([-1.0, 0.0, 0.0]), NegLabelConfig(ngroups=1, temperature=1.0), features=IMAGE)
    assert build("csp").score(near).item() == pytest.approx(_id_share([1.0], 1.0), abs=1e-12)
    assert build("csp").score(far).item() == pytest.approx(_id_share([-1.0], 1.0), abs=1e-12)
