"""synood.method.scores: vectorised NegLabel score against a loop from its definition; the baselines."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from synood.method.scores import cosine_logits, energy, energy_score, group_permutation, grouped_scores, mcm_score, msp_score, neglabel_score


def _grouped_scores_loop(id_logits, neg_logits, ngroup, seed):
    """NegLabel's grouped score written out: drop remainder, shuffle, loop softmax over groups."""
    num_negatives = neg_logits.shape[1]
    kept = num_negatives - num_negatives % ngroup
    neg_logits = neg_logits[:, :kept]
    order = torch.randperm(kept, generator=torch.Generator().manual_seed(seed))
    neg_logits = neg_logits[:, order]
    size = kept // ngroup
    per_group = []
    for g in range(ngroup):
        logits = torch.cat([id_logits, neg_logits[:, g * size : (g + 1) * size]], dim=1)
        per_group.append(logits.softmax(dim=1)[:, : id_logits.shape[1]].sum(dim=1))
    per_group = torch.stack(per_group, dim=1)
    return per_group.mean(dim=1), per_group


def _random_logits(batch, num_id, num_neg, seed, scale=30.0):
    generator = torch.Generator().manual_seed(seed)
    id_logits = scale * torch.randn(batch, num_id, generator=generator, dtype=torch.float64)
    neg_logits = scale * torch.randn(batch, num_neg, generator=generator, dtype=torch.float64)
    return id_logits, neg_logits


def _unit(rows, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dim, generator=generator), dim=-1)


@pytest.mark.parametrize(
    "num_neg, ngroup",
    [(100, 10), (103, 10), (57, 5), (64, 1), (50, 50), (7, 7), (1, 1), (1000, 100), (1037, 100)],
)
def test_grouped_scores_match_the_loop(num_neg, ngroup):
    id_logits, neg_logits = _random_logits(4, 12, num_neg, seed=num_neg + ngroup, scale=5.0)
    score, per_group = grouped_scores(id_logits, neg_logits, ngroup=ngroup, seed=3)
    expected_score, expected_per_group = _grouped_scores_loop(id_logits, neg_logits, ngroup, 3)
    assert score.shape == (4,)
    assert per_group.shape == (4, ngroup)
    torch.testing.assert_close(per_group, expected_per_group, atol=1e-6, rtol=0)
    torch.testing.assert_close(score, expected_score, atol=1e-6, rtol=0)


def test_grouped_scores_match_the_loop_in_float32():
    id_logits, neg_logits = _random_logits(8, 1000, 1050, seed=0, scale=3.0)
    score, _ = grouped_scores(id_logits.float(), neg_logits.float(), ngroup=100)
    expected, _ = _grouped_scores_loop(id_logits, neg_logits, 100, 0)
    torch.testing.assert_close(score.double(), expected, atol=1e-6, rtol=0)


def test_ngroup_one_still_applies_the_softmax():
    # Reference code skips the softmax for ngroup = 1; here it is the ID mass of one softmax.
    id_logits = torch.tensor([[0.0, math.log(2.0)]])  # exp sum 3
    neg_logits = torch.tensor([[0.0]])  # exp sum 1
    score, per_group = grouped_scores(id_logits, neg_logits, ngroup=1)
    assert per_group.shape == (1, 1)
    assert score.item() == pytest.approx(3 / 4)


def test_extreme_logits_stay_finite():
    id_logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4]])
    neg_logits = torch.tensor([[-1e4] * 6, [1e4] * 6, [1e4, -1e4] * 3])
    score, per_group = grouped_scores(id_logits, neg_logits, ngroup=3)
    assert torch.isfinite(per_group).all()
    assert score[0].item() == pytest.approx(1.0)
    assert score[1].item() == pytest.approx(0.0)
    # Row 3: a group with k of the three 1e4 negatives has ID mass sigmoid(log 3 - log k), one
    # with none has mass 1; at least one group has k >= 1, so the mean is inside (0.5, 1).
    assert 0.5 < score[2].item() < 1.0
    torch.testing.assert_close(per_group, _grouped_scores_loop(id_logits, neg_logits, 3, 0)[1])


def test_grouped_scores_match_the_loop_at_large_scale():
    id_logits, neg_logits = _random_logits(4, 10, 95, seed=5, scale=1e4)
    expected = _grouped_scores_loop(id_logits, neg_logits, 9, 0)
    torch.testing.assert_close(grouped_scores(id_logits, neg_logits, ngroup=9), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_grouping_is_the_same_on_cuda():
    id_logits, neg_logits = _random_logits(4, 10, 1037, seed=6, scale=5.0)
    on_cpu = grouped_scores(id_logits, neg_logits, ngroup=100)
    on_cuda = grouped_scores(id_logits.cuda(), neg_logits.cuda(), ngroup=100)
    torch.testing.assert_close(tuple(t.cpu() for t in on_cuda), on_cpu)


def test_same_seed_same_output_and_different_seed_different_groups():
    id_logits, neg_logits = _random_logits(5, 10, 200, seed=1)
    first = grouped_scores(id_logits, neg_logits, ngroup=20, seed=7)
    again = grouped_scores(id_logits, neg_logits, ngroup=20, seed=7)
    other = grouped_scores(id_logits, neg_logits, ngroup=20, seed=8)
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.equal(group_permutation(200, 20, seed=7), group_permutation(200, 20, seed=8))
    assert not torch.allclose(first[1], other[1])


def test_group_permutation_drops_the_last_negatives_and_shuffles_the_rest():
    groups = group_permutation(103, 10, seed=0)
    assert groups.shape == (10, 10)
    assert groups.dtype == torch.long
    assert sorted(groups.flatten().tolist()) == list(range(100))  # 100, 101, 102 dropped
    assert not torch.equal(groups.flatten(), torch.arange(100))
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(0)).reshape(10, 10)
    assert torch.equal(groups, expected)


@pytest.mark.parametrize("num_neg, ngroup", [(10, 0), (10, -1), (10, 11), (0, 1)])
def test_group_permutation_rejects_bad_ngroup(num_neg, ngroup):
    with pytest.raises(ValueError, match="ngroup must be between 1 and the number of negative"):
        group_permutation(num_neg, ngroup)


def test_grouped_scores_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same batch"):
        grouped_scores(torch.zeros(2, 3), torch.zeros(3, 10), ngroup=2)
    with pytest.raises(ValueError, match="same batch"):
        grouped_scores(torch.zeros(3), torch.zeros(1, 10), ngroup=2)


def test_energy_and_msp_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -math.inf, -math.inf]])
    # Row 1: logsumexp = log 4. Row 2: log(1 + 3) = log 4 as well.
    torch.testing.assert_close(energy(logits), torch.full((2,), -math.log(4.0)))
    torch.testing.assert_close(energy_score(logits), torch.full((2,), math.log(4.0)))
    # MSP: row 1 uniform 1/4; row 2 softmax [1/4, 3/4, 0, 0] -> 3/4.
    torch.testing.assert_close(msp_score(logits), torch.tensor([0.25, 0.75]))
    # T = 2 on logits [2, 2]: -2 * logsumexp([1, 1]) = -2 * (1 + log 2).
    torch.testing.assert_close(
        energy(torch.tensor([[2.0, 2.0]]), temperature=2.0),
        torch.tensor([-2 * (1 + math.log(2.0))]),
    )


def test_cosine_logits_and_mcm_by_hand():
    image = torch.tensor([[1.0, 0.0, 0.0]])
    id_text = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # Cosines [1, 0]; / 0.5 -> [2, 0]. Features are used as given (no renormalisation).
    torch.testing.assert_close(cosine_logits(image, id_text, 0.5), torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(cosine_logits(2 * image, id_text, 1.0), torch.tensor([[2.0, 0.0]]))
    # MCM, T = 1: softmax [e, 1] / (e + 1) -> max = sigmoid(1); T = 0.5 -> sigmoid(2).
    assert mcm_score(image, id_text).item() == pytest.approx(1 / (1 + math.exp(-1)))
    mcm_sharp = mcm_score(image, id_text, temperature=0.5).item()
    assert mcm_sharp == pytest.approx(1 / (1 + math.exp(-2)))


def test_neglabel_score_is_grouped_scores_over_100_cosine():
    images, id_text, neg_text = _unit(6, 32, 0), _unit(10, 32, 1), _unit(205, 32, 2)
    score, per_group = neglabel_score(images, id_text, neg_text, ngroup=20, seed=4)
    id_logits, neg_logits = 100 * images @ id_text.T, 100 * images @ neg_text.T
    expected = grouped_scores(id_logits, neg_logits, ngroup=20, seed=4)
    torch.testing.assert_close((score, per_group), expected)


def test_image_equal_to_an_id_label_beats_one_equal_to_a_negative():
    id_text, neg_text = _unit(10, 512, 0), _unit(200, 512, 1)
    images = torch.stack([id_text[3], neg_text[17]])
    score, _ = neglabel_score(images, id_text, neg_text, ngroup=10)
    assert score[0] > score[1]
    assert score[0] > 0.99


@settings(max_examples=100, deadline=None)
@given(
    batch=st.integers(1, 4),
    num_id=st.integers(1, 20),
    num_neg=st.integers(1, 60),
    ngroup_fraction=st.floats(0.0, 1.0),
    scale=st.sampled_from([1e-3, 1.0, 100.0, 1e4]),
    seed=st.integers(0, 2**16),
)
def test_grouped_scores_lie_in_unit_interval(batch, num_id, num_neg, ngroup_fraction, scale, seed):
    ngroup = max(1, round(ngroup_fraction * num_neg))
    generator = torch.Generator().manual_seed(seed)
    id_logits = scale * torch.randn(batch, num_id, generator=generator)
    neg_logits = scale * torch.randn(batch, num_neg, generator=generator)
    score, per_group = grouped_scores(id_logits, neg_logits, ngroup=ngroup, seed=seed)
    assert ((per_group >= 0) & (per_group <= 1)).all()
    assert ((score >= 0) & (score <= 1)).all()
