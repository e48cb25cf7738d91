"""Property-based tests (hypothesis) of the OOD metrics and scores against independent oracles: pair counting,
float64 NumPy formulas, and invariances every correct implementation has."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import auc, precision_recall_curve

from synood.method.metrics import CONVENTIONS, aupr_in, aupr_out, auroc, evaluate, fpr_at_tpr, trapezoid_aupr
from synood.method.scores import energy_score, grouped_scores, mcm_score, msp_score, neglabel_score

# Scores with many ties (small integers) or spread-out floats.
scores = st.one_of(
    st.lists(st.integers(-4, 4).map(float), min_size=1, max_size=30),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=30),
)
SETTINGS = settings(max_examples=150, deadline=None)


def pair_count_auroc(id_scores, ood_scores) -> float:
    """The Mann-Whitney statistic: P(ID score > OOD score) + P(tie) / 2, by counting every pair."""
    wins = sum((i > o) + 0.5 * (i == o) for i in id_scores for o in ood_scores)
    return wins / (len(id_scores) * len(ood_scores))


@SETTINGS
@given(id_scores=scores, ood_scores=scores)
def test_auroc_is_the_pair_count(id_scores, ood_scores):
    assert auroc(id_scores, ood_scores) == pytest.approx(pair_count_auroc(id_scores, ood_scores), abs=1e-9)


@SETTINGS
@given(id_scores=scores, ood_scores=scores, seed=st.integers(0, 2**16))
def test_metrics_ignore_order_and_strictly_increasing_maps(id_scores, ood_scores, seed):
    rng = np.random.default_rng(seed)
    _, ranks = np.unique(np.concatenate([id_scores, ood_scores]), return_inverse=True)
    cubed = 10.0 * ranks.astype(np.float64) ** 3 - 5.0  # a strictly increasing map of the distinct values, exactly
    for convention in CONVENTIONS:
        base = evaluate(id_scores, ood_scores, convention)
        shuffled = evaluate(rng.permutation(id_scores), rng.permutation(ood_scores), convention)
        mapped = evaluate(cubed[:len(id_scores)], cubed[len(id_scores):], convention)
        for other in (shuffled, mapped):
            for name, value in base.as_percent().items():
                assert other.as_percent()[name] == pytest.approx(value, abs=1e-9), (convention, name)


@SETTINGS
@given(id_scores=scores, ood_scores=scores)
def test_aupr_out_is_aupr_in_with_the_roles_swapped(id_scores, ood_scores):
    negated_ood, negated_id = [-s for s in ood_scores], [-s for s in id_scores]
    for convention in CONVENTIONS:
        swapped = aupr_in(negated_ood, negated_id, convention)
        assert aupr_out(id_scores, ood_scores, convention) == pytest.approx(swapped, abs=1e-12)
        assert 0 <= aupr_in(id_scores, ood_scores, convention) <= 1 + 1e-12


@SETTINGS
@given(id_scores=scores, ood_scores=scores)
def test_trapezoid_aupr_is_openoods_auc_of_the_precision_recall_curve(id_scores, ood_scores):
    labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    values = np.r_[id_scores, ood_scores].astype(np.float64)
    for positive, ranked in ((labels, values), (1 - labels, -values)):
        precision, recall, _ = precision_recall_curve(positive, ranked)
        assert trapezoid_aupr(positive, ranked) == pytest.approx(auc(recall, precision), abs=1e-12)


@SETTINGS
@given(id_scores=scores, ood_scores=scores, low=st.floats(0.01, 1.0), high=st.floats(0.01, 1.0))
def test_fpr_never_falls_as_the_tpr_rises(id_scores, ood_scores, low, high):
    low, high = sorted((low, high))
    for convention in CONVENTIONS:
        assert fpr_at_tpr(id_scores, ood_scores, low, convention) <= fpr_at_tpr(id_scores, ood_scores, high,
                                                                                  convention) + 1e-12


@SETTINGS
@given(id_scores=scores, ood_scores=scores, tpr=st.floats(0.01, 1.0))
def test_mos_fpr_is_the_share_of_ood_at_or_above_the_kth_id_score(id_scores, ood_scores, tpr):
    keep = math.ceil(round(tpr * len(id_scores), 6))
    threshold = sorted(id_scores, reverse=True)[keep - 1]  # at least tpr of the ID scores are >= it
    expected = sum(o >= threshold for o in ood_scores) / len(ood_scores)
    assert fpr_at_tpr(id_scores, ood_scores, tpr, "mos") == pytest.approx(expected)


@SETTINGS
@given(id_scores=scores, gap=st.floats(1e-3, 1e3))
def test_separated_scores_are_perfect(id_scores, gap):
    ood_scores = [min(id_scores) - gap - i for i in range(5)]
    for convention in CONVENTIONS:
        result = evaluate(id_scores, ood_scores, convention)
        assert (result.auroc, result.aupr_in, result.aupr_out, result.fpr95) == pytest.approx((1, 1, 1, 0), abs=1e-12)


@SETTINGS
@given(data=st.data(), num_id=st.sampled_from([20, 40, 60]))
def test_neglabel_and_mos_agree_on_continuous_scores_up_to_the_gap(data, num_id):
    """With distinct scores and 0.95 n an integer k, both rules pick ID recall exactly 0.95; "mos" puts the
    threshold at the k-th highest ID score, "neglabel" at the lowest score above the (k+1)-th. They agree when
    no OOD score falls strictly between those two ID scores, and otherwise differ by the share that does."""
    values = data.draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=num_id + 1,
                                max_size=num_id + 40, unique=True))
    id_scores, ood_scores = values[:num_id], values[num_id:]
    k = 19 * num_id // 20
    ranked = sorted(id_scores, reverse=True)
    in_gap = sum(ranked[k] < o < ranked[k - 1] for o in ood_scores) / len(ood_scores)
    mos = fpr_at_tpr(id_scores, ood_scores, 0.95, "mos")
    neglabel = fpr_at_tpr(id_scores, ood_scores, 0.95, "neglabel")
    assert neglabel == pytest.approx(mos + in_gap, abs=1e-12)
    outside = [o for o in ood_scores if not ranked[k] < o < ranked[k - 1]]
    if outside:
        assert fpr_at_tpr(id_scores, outside, 0.95, "neglabel") == fpr_at_tpr(id_scores, outside, 0.95, "mos")


def logit_matrix(rows: int, columns: int):
    return arrays(np.float64, (rows, columns), elements=st.floats(-40, 40))


@SETTINGS
@given(data=st.data(), batch=st.integers(1, 3), num_id=st.integers(1, 8), num_neg=st.integers(1, 24))
def test_one_group_is_the_softmax_id_mass(data, batch, num_id, num_neg):
    id_logits, neg_logits = data.draw(logit_matrix(batch, num_id)), data.draw(logit_matrix(batch, num_neg))
    score, per_group = grouped_scores(torch.from_numpy(id_logits), torch.from_numpy(neg_logits), ngroup=1)
    both = np.concatenate([id_logits, neg_logits], axis=1)
    softmax = np.exp(both - both.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    expected = softmax[:, :num_id].sum(axis=1)  # eq. 2: the ID share of the softmax over all labels
    assert score.numpy() == pytest.approx(expected, abs=1e-9)
    assert per_group[:, 0].numpy() == pytest.approx(expected, abs=1e-9)


@SETTINGS
@given(data=st.data(), num_id=st.integers(1, 6), num_neg=st.integers(2, 24), seed=st.integers(0, 99))
def test_grouped_score_is_the_mean_of_its_groups_and_moves_the_right_way(data, num_id, num_neg, seed):
    ngroup = data.draw(st.integers(1, num_neg))
    id_logits = torch.from_numpy(data.draw(logit_matrix(1, num_id)))
    neg_logits = torch.from_numpy(data.draw(logit_matrix(1, num_neg)))
    score, per_group = grouped_scores(id_logits, neg_logits, ngroup, seed)
    groups = torch.randperm(num_neg - num_neg % ngroup, generator=torch.Generator().manual_seed(seed))
    for g, members in enumerate(groups.reshape(ngroup, -1)):
        alone, _ = grouped_scores(id_logits, neg_logits[:, members], ngroup=1)
        assert per_group[0, g].item() == pytest.approx(alone.item(), abs=1e-12)
    assert score.item() == pytest.approx(per_group.mean().item(), abs=1e-12)
    raised_id, _ = grouped_scores(id_logits + 1.0, neg_logits, ngroup, seed)
    raised_neg, _ = grouped_scores(id_logits, neg_logits + 1.0, ngroup, seed)
    assert raised_id.item() >= score.item() >= raised_neg.item()


@SETTINGS
@given(data=st.data(), num_id=st.integers(1, 6), num_neg=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_neglabel_ignores_the_order_of_id_labels(data, num_id, num_neg, seed):
    rng = torch.Generator().manual_seed(seed)

    def unit(n):
        return torch.nn.functional.normalize(torch.randn(n, 16, generator=rng, dtype=torch.float64), dim=1)

    images, id_text, neg_text = unit(3), unit(num_id), unit(num_neg)
    ngroup = data.draw(st.integers(1, num_neg))
    score, _ = neglabel_score(images, id_text, neg_text, ngroup=ngroup)
    permuted, _ = neglabel_score(images, id_text[torch.randperm(num_id, generator=rng)], neg_text, ngroup=ngroup)
    assert permuted.numpy() == pytest.approx(score.numpy(), abs=1e-12)
    assert ((score >= 0) & (score <= 1)).all()


@SETTINGS
@given(data=st.data(), batch=st.integers(1, 3), classes=st.integers(1, 12), shift=st.floats(-50, 50))
def test_energy_msp_and_mcm_match_numpy(data, batch, classes, shift):
    values = data.draw(logit_matrix(batch, classes))
    tensor = torch.from_numpy(values)
    top = values.max(axis=1)
    expected_energy = top + np.log(np.exp(values - top[:, None]).sum(axis=1))  # logsumexp, the stable way
    assert energy_score(tensor).numpy() == pytest.approx(expected_energy, abs=1e-9)
    assert energy_score(tensor + shift).numpy() == pytest.approx(expected_energy + shift, abs=1e-9)
    msp = msp_score(tensor).numpy()
    assert msp == pytest.approx(1 / np.exp(values - top[:, None]).sum(axis=1), abs=1e-12)
    assert ((msp >= 1 / classes - 1e-12) & (msp <= 1)).all()
    features = torch.nn.functional.normalize(tensor, dim=1)
    mcm = mcm_score(features, torch.eye(classes, dtype=torch.float64), temperature=0.5)
    assert mcm.numpy() == pytest.approx(msp_score(features / 0.5).numpy(), abs=1e-12)
