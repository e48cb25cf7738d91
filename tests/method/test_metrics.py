"""synood.method.metrics: scikit-learn, OpenOOD and NegLabel agreement, hand-computed cases with ties, the three
conventions (FPR95 rule + AUPR estimator) and the two AUPR estimators."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from synood.method.metrics import CONVENTIONS, MetricError, OODMetrics, aupr_in, aupr_out, auroc, average_precision, evaluate, fpr_at_tpr, trapezoid_aupr


def _fpr_mos_brute_force(id_scores, ood_scores, tpr):
    """Largest t with share(ID >= t) >= tpr, searched over every ID value; share(OOD >= t)."""
    candidates = [t for t in np.unique(id_scores) if np.mean(id_scores >= t) >= tpr - 1e-12]
    return float(np.mean(ood_scores >= max(candidates)))


def _fpr_openood_literal(id_scores, ood_scores, tpr):
    """OpenOOD v1.5's rule as its evaluator states it: OOD positive, score -S, first TPR >= tpr."""
    conf = np.concatenate([id_scores, ood_scores])
    ood_indicator = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    fpr_list, tpr_list, _ = roc_curve(ood_indicator, -conf)
    return float(fpr_list[np.argmax(tpr_list >= tpr)])


def _fpr_neglabel_brute_force(id_scores, ood_scores, tpr):
    """Walk every distinct score from the lowest ID score up; keep the first one with the smallest
    |ID recall - tpr| (a later one must be strictly nearer); share(OOD >= it)."""
    best, best_distance = None, math.inf
    for t in sorted(set(id_scores) | set(ood_scores)):
        if t < min(id_scores):
            continue
        distance = abs(sum(s >= t for s in id_scores) / len(id_scores) - tpr)
        if distance < best_distance:
            best, best_distance = t, distance
    return sum(s >= best for s in ood_scores) / len(ood_scores)


def _openood_aupr(labels, scores):
    """OpenOOD's lines: auc(recall, precision) of scikit-learn's precision-recall curve."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(auc(recall, precision))


def _random_scores(seed, ties):
    rng = np.random.default_rng(seed)
    id_scores = rng.normal(1.0, 1.0, size=int(rng.integers(20, 400)))
    ood_scores = rng.normal(0.0, 1.0, size=int(rng.integers(20, 400)))
    if ties:
        id_scores, ood_scores = np.round(id_scores, 1), np.round(ood_scores, 1)
    return id_scores, ood_scores


def test_conventions_are_named_and_described_in_order():
    assert list(CONVENTIONS) == ["mos", "openood", "neglabel"]
    assert all(isinstance(text, str) and text and "\n" not in text for text in CONVENTIONS.values())
    assert "MOS" in CONVENTIONS["mos"] and "average precision" in CONVENTIONS["mos"]
    assert "trapezoid" in CONVENTIONS["openood"] and "nearest" in CONVENTIONS["neglabel"]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_openood_and_neglabel_on_random_data(seed, ties):
    id_scores, ood_scores = _random_scores(seed, ties)
    labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    scores = np.r_[id_scores, ood_scores]

    assert auroc(id_scores, ood_scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    for convention in ("mos", "neglabel"):
        assert aupr_in(id_scores, ood_scores, convention) == pytest.approx(
            average_precision_score(labels, scores), abs=1e-12
        )
        assert aupr_out(id_scores, ood_scores, convention) == pytest.approx(
            average_precision_score(1 - labels, -scores), abs=1e-12
        )
    assert aupr_in(id_scores, ood_scores, "openood") == pytest.approx(_openood_aupr(labels, scores), abs=1e-12)
    assert aupr_out(id_scores, ood_scores, "openood") == pytest.approx(
        _openood_aupr(1 - labels, -scores), abs=1e-12
    )
    for tpr in (0.95, 0.9, 0.5):
        assert fpr_at_tpr(id_scores, ood_scores, tpr, "mos") == _fpr_mos_brute_force(
            id_scores, ood_scores, tpr
        )
        assert fpr_at_tpr(id_scores, ood_scores, tpr, "openood") == _fpr_openood_literal(
            id_scores, ood_scores, tpr
        )
        assert fpr_at_tpr(id_scores, ood_scores, tpr, "neglabel") == _fpr_neglabel_brute_force(
            list(id_scores), list(ood_scores), tpr
        )


def test_hand_computed_case_with_ties():
    id_scores = [1.0, 2.0, 2.0, 3.0]
    ood_scores = [0.0, 1.0, 2.0, 2.0]
    # AUROC = P(ID > OOD) + 0.5 P(tie), over 16 pairs:
    #   ID 1: beats 0, ties 1, loses to 2, 2  -> 1.5
    #   ID 2: beats 0, 1, ties 2, 2           -> 3.0   (twice)
    #   ID 3: beats all four                  -> 4.0
    #   (1.5 + 3 + 3 + 4) / 16 = 11.5 / 16 = 0.71875
    assert auroc(id_scores, ood_scores) == pytest.approx(0.71875, abs=1e-12)
    # AUPR-In (ID positive), thresholds from the top, tied scores enter together:
    #   S >= 3: TP 1 FP 0 -> P 1,   R 1/4
    #   S >= 2: TP 3 FP 2 -> P 3/5, R 3/4
    #   S >= 1: TP 4 FP 3 -> P 4/7, R 1
    #   S >= 0: TP 4 FP 4 -> P 1/2, R 1   (no recall step)
    #   average precision = 1/4 * 1 + 1/2 * 3/5 + 1/4 * 4/7 = 0.25 + 0.3 + 1/7
    #   trapezoid from (R 0, P 1): 1/4 * (1 + 1)/2 + 1/2 * (1 + 3/5)/2 + 1/4 * (3/5 + 4/7)/2
    #                             = 1/4 + 2/5 + 41/280
    assert aupr_in(id_scores, ood_scores) == pytest.approx(0.25 + 0.3 + 1 / 7, abs=1e-12)
    assert aupr_in(id_scores, ood_scores, "neglabel") == pytest.approx(0.25 + 0.3 + 1 / 7, abs=1e-12)
    assert aupr_in(id_scores, ood_scores, "openood") == pytest.approx(0.25 + 0.4 + 41 / 280, abs=1e-12)
    # AUPR-Out (OOD positive, score -S), from the lowest S up:
    #   S <= 0: TP 1 FP 0 -> P 1,   R 1/4
    #   S <= 1: TP 2 FP 1 -> P 2/3, R 1/2
    #   S <= 2: TP 4 FP 3 -> P 4/7, R 1
    #   average precision = 1/4 * 1 + 1/4 * 2/3 + 1/2 * 4/7
    #   trapezoid: 1/4 * 1 + 1/4 * (1 + 2/3)/2 + 1/2 * (2/3 + 4/7)/2 = 1/4 + 5/24 + 13/42 = 129/168
    assert aupr_out(id_scores, ood_scores) == pytest.approx(0.25 + 1 / 6 + 2 / 7, abs=1e-12)
    assert aupr_out(id_scores, ood_scores, "openood") == pytest.approx(129 / 168, abs=1e-12)
    # "mos", tpr 0.75: keep ceil(3) = 3 ID scores -> t = 2; OOD >= 2: {2, 2} -> 2/4.
    # The two OOD ties at t count as false positives (strictly above t would give 0).
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "mos") == 0.5
    # "neglabel", tpr 0.75: candidates from min ID = 1 up: t=1 recall 1, t=2 recall 3/4 (distance 0),
    #   t=3 recall 1/4 -> t = 2 -> 2/4 as well.
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "neglabel") == 0.5
    # "openood", tpr 0.75: catching >= 3 of 4 OOD needs S <= 2 (S <= 1 catches only 2);
    #   ID flagged with S <= 2: {1, 2, 2} -> 3/4.
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "openood") == 0.75
    # tpr 0.95: "mos" keeps ceil(3.8) = 4 ID -> t = 1; OOD >= 1: {1, 2, 2} -> 3/4.
    #           "neglabel": t=1 recall 1 (distance 0.05) beats t=2 recall 3/4 (0.2) -> 3/4.
    #           "openood" must catch all 4 OOD -> S <= 2 -> ID {1, 2, 2} -> 3/4.
    for convention in CONVENTIONS:
        assert fpr_at_tpr(id_scores, ood_scores, convention=convention) == 0.75


def test_three_fpr_rules_give_three_values_on_ties():
    id_scores = [1.0] + [2.0] * 4 + [3.0] * 10  # 15 ID
    ood_scores = [0.5, 1.0, 1.5, 2.0, 2.0, 4.0]  # 6 OOD
    # "mos": keep ceil(0.95 * 15) = ceil(14.25) = 15 ID -> t = 1; OOD >= 1: 5 of 6.
    assert fpr_at_tpr(id_scores, ood_scores, 0.95, "mos") == pytest.approx(5 / 6)
    # "neglabel": candidates from min ID = 1 up, with ID recall and |recall - 0.95|:
    #   t=1 15/15 0.05 | t=1.5 14/15 0.0167 | t=2 14/15 0.0167 | t=3 10/15 0.283 | t=4 0/15 0.95
    #   nearest: recall 14/15 = 0.933, below 0.95; of t=1.5 and t=2 (equal recall) the lowest, 1.5;
    #   OOD >= 1.5: {1.5, 2, 2, 4} -> 4/6 (t=2 would give 3/6).
    assert fpr_at_tpr(id_scores, ood_scores, 0.95, "neglabel") == pytest.approx(4 / 6)
    # "openood": catching >= 0.95 * 6 = 5.7 OOD means all 6, S <= 4: every ID is flagged -> 1.
    assert fpr_at_tpr(id_scores, ood_scores, 0.95, "openood") == 1.0


def test_neglabel_equal_distances_pick_the_lowest_threshold():
    id_scores = [1.0, 1.0, 2.0, 2.0]
    ood_scores = [0.0, 1.0, 1.5, 2.0, 3.0]
    # tpr 0.75 (exact in binary): t=1 recall 1, t=1.5 recall 1/2, t=2 recall 1/2 are all 0.25 away
    # (t=3 recall 0 is 0.75 away). The lowest, t=1, wins: OOD >= 1: {1, 1.5, 2, 3} -> 4/5
    # (t=1.5 would give 3/5, t=2 2/5).
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "neglabel") == 0.8
    # "mos": keep ceil(3) = 3 ID -> t = 1 -> 4/5.
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "mos") == 0.8
    # "openood": catching >= 3.75 of 5 OOD needs S <= 2 (4 caught); every ID has S <= 2 -> 1.
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "openood") == 1.0


def test_neglabel_distances_are_float64_like_its_code():
    # 10 ID: recalls 0.9 (t=2) and 1.0 (t=1) are both 0.05 from 0.95 on paper, but in float64
    # 0.95 - 0.9 < 1.0 - 0.95, so NegLabel's argmin takes recall 0.9: t = 2, OOD >= 2: none -> 0.
    assert abs(0.9 - 0.95) < abs(1.0 - 0.95)
    id_scores = np.arange(1.0, 11.0)
    assert fpr_at_tpr(id_scores, [1.0], 0.95, "neglabel") == 0.0
    # "mos" keeps ceil(9.5) = 10 ID -> t = 1 -> the OOD 1.0 counts -> 1.
    assert fpr_at_tpr(id_scores, [1.0], 0.95, "mos") == 1.0


def test_neglabel_takes_the_bottom_of_the_gap_where_mos_takes_the_top():
    # 20 ID 1..20, 0.95 * 20 = 19: both rules pick recall exactly 19/20, but "mos" sets t at the 19th
    # ID score (2) and "neglabel" at the lowest score with that recall, the OOD 1.5 in the gap (1, 2).
    id_scores = np.arange(1.0, 21.0)
    assert fpr_at_tpr(id_scores, [1.5], 0.95, "mos") == 0.0
    assert fpr_at_tpr(id_scores, [1.5], 0.95, "neglabel") == 1.0
    # With no OOD score strictly inside the gap they agree.
    assert fpr_at_tpr(id_scores, [2.0, 0.5], 0.95, "mos") == fpr_at_tpr(id_scores, [2.0, 0.5], 0.95, "neglabel") == 0.5


def test_conventions_differ_where_they_should():
    id_scores = [4.0, 5.0, 6.0, 7.0]
    ood_scores = [1.0, 2.0, 3.0, 5.5]
    # "mos": keep ceil(0.95 * 4) = 4 ID -> t = 4; OOD >= 4: {5.5} -> 1/4.
    # "neglabel": t=4 has recall 1 (0.05 away), t=5 recall 3/4 (0.2) -> t = 4 -> 1/4.
    # "openood": catching 95 % of OOD means all 4, i.e. S <= 5.5; ID flagged: {4, 5} -> 2/4.
    expected = {"mos": 0.25, "openood": 0.5, "neglabel": 0.25}
    for convention, fpr in expected.items():
        result = evaluate(id_scores, ood_scores, convention)
        assert (result.fpr95, result.convention) == (fpr, convention)
        # AUROC: ID 4 and 5 lose only to 5.5 (3 wins each), 6 and 7 win all -> 14 / 16, in every convention.
        assert result.auroc == pytest.approx(0.875, abs=1e-12)


def test_average_precision_and_trapezoid_differ_on_a_tiny_tied_case():
    labels, scores = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    # One threshold, TP 1 FP 1: P 1/2 at R 1. Average precision = 1 * 1/2; the trapezoid from
    # (R 0, P 1) to (R 1, P 1/2) = (1 + 1/2) / 2 = 3/4.
    assert average_precision(labels, scores) == 0.5
    assert trapezoid_aupr(labels, scores) == 0.75
    assert trapezoid_aupr(labels, scores) == pytest.approx(_openood_aupr(labels, scores), abs=1e-15)


def test_openood_keeps_sklearn_drop_intermediate_like_openood():
    # Four tied (ID, OOD) pairs: the full ROC is the diagonal, 0.25 per step. scikit-learn's
    # default drop_intermediate=True removes the collinear middle points, so OpenOOD's
    # argmax(tpr >= 0.5) lands on the end point (FPR 1.0), not on (0.5, 0.5).
    scores = [1.0, 2.0, 3.0, 4.0]
    assert fpr_at_tpr(scores, scores, 0.5, "openood") == 1.0
    # "mos": keep ceil(2) = 2 ID -> t = 3; OOD >= 3: {3, 4} -> 0.5.
    assert fpr_at_tpr(scores, scores, 0.5, "mos") == 0.5


def test_mos_threshold_count_is_robust_to_float_noise():
    # 0.95 * 20 must keep exactly 19 ID scores (t = 2), not 20 (t = 1).
    id_scores = np.arange(1.0, 21.0)
    ood_scores = [1.5]
    assert fpr_at_tpr(id_scores, ood_scores, 0.95, "mos") == 0.0
    assert fpr_at_tpr(id_scores, ood_scores, 1.0, "mos") == 1.0


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_perfect_separation(convention):
    result = evaluate([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0], convention)
    assert result == OODMetrics(auroc=1.0, aupr_in=1.0, aupr_out=1.0, fpr95=0.0, convention=convention)


def test_reversed_scores():
    for convention in CONVENTIONS:
        result = evaluate([-1.0, 0.0, 1.0], [2.0, 3.0, 4.0], convention)
        assert (result.auroc, result.fpr95) == (0.0, 1.0)
    # Worst ranking: the 3 positives come after the 3 negatives, one recall step of 1/3 each at
    # precision 1/4, 2/5, 3/6 -> AP = (0.25 + 0.4 + 0.5) / 3 = 1.15 / 3 (same for both sides).
    # Trapezoid: (R 0, P 1) then three thresholds at R 0, P 0 (zero width), then
    # 1/3 * (0 + 1/4)/2 + 1/3 * (1/4 + 2/5)/2 + 1/3 * (2/5 + 1/2)/2 = 5/120 + 13/120 + 18/120 = 0.3.
    for convention, expected in (("mos", 1.15 / 3), ("neglabel", 1.15 / 3), ("openood", 0.3)):
        result = evaluate([-1.0, 0.0, 1.0], [2.0, 3.0, 4.0], convention)
        assert result.aupr_in == pytest.approx(expected, abs=1e-12)
        assert result.aupr_out == pytest.approx(expected, abs=1e-12)


def test_accepts_lists_numpy_and_torch_alike():
    id_scores, ood_scores = _random_scores(0, ties=False)
    for convention in CONVENTIONS:
        expected = evaluate(id_scores, ood_scores, convention)
        assert evaluate(list(id_scores), list(ood_scores), convention) == expected
        id_tensor = torch.tensor(id_scores, requires_grad=True)
        assert evaluate(id_tensor, torch.tensor(ood_scores), convention) == expected
    # Lower-precision tensors are converted too (values change, the call must not fail).
    evaluate(id_tensor.bfloat16(), torch.tensor(ood_scores).half())


def test_evaluate_defaults_to_mos():
    id_scores, ood_scores = _random_scores(1, ties=True)
    assert evaluate(id_scores, ood_scores) == evaluate(id_scores, ood_scores, "mos")
    assert evaluate(id_scores, ood_scores).convention == "mos"


def test_as_percent():
    metrics = OODMetrics(auroc=0.9421, aupr_in=0.5, aupr_out=0.25, fpr95=0.254, convention="openood")
    percent = metrics.as_percent()
    assert list(percent) == ["auroc", "aupr_in", "aupr_out", "fpr95"]
    assert percent["auroc"] == pytest.approx(94.21)
    assert percent["fpr95"] == pytest.approx(25.4)
    assert all(isinstance(value, float) for value in percent.values())


def test_metrics_are_frozen():
    metrics = evaluate([1.0], [0.0])
    with pytest.raises(AttributeError):
        metrics.auroc = 0.0


ALL_METRICS = [
    auroc,
    aupr_in,
    aupr_out,
    evaluate,
    fpr_at_tpr,
    lambda i, o: fpr_at_tpr(i, o, convention="openood"),
    lambda i, o: fpr_at_tpr(i, o, convention="neglabel"),
    lambda i, o: aupr_in(i, o, convention="openood"),
    lambda i, o: aupr_out(i, o, convention="openood"),
    lambda i, o: evaluate(i, o, convention="neglabel"),
]


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize(
    "id_scores, ood_scores, message",
    [
        ([], [0.1, 0.2], "no ID scores"),
        ([0.1, 0.2], [], "no OOD scores"),
        (np.array([]), torch.tensor([]), "no ID scores"),
        (
            [0.1, float("nan"), float("nan")],
            [0.2],
            r"ID scores contain 2 non-finite value\(s\) \(2 NaN, 0 inf\) out of 3",
        ),
        (
            [0.1],
            [0.2, float("inf"), -float("inf"), float("nan")],
            r"OOD scores contain 3 non-finite value\(s\) \(1 NaN, 2 inf\) out of 4",
        ),
        ([[0.1, 0.2]], [0.3], r"ID scores must be 1-D, got shape \(1, 2\)"),
        ([0.1], np.zeros((2, 1)), r"OOD scores must be 1-D, got shape \(2, 1\)"),
        (0.5, [0.3], r"ID scores must be 1-D, got shape \(\)"),
        (["a", "b"], [0.3], "ID scores are not numbers"),
    ],
)
def test_bad_input_raises_a_named_error(metric, id_scores, ood_scores, message):
    with pytest.raises(MetricError, match=message):
        metric(id_scores, ood_scores)


def test_metric_error_is_a_value_error():
    assert issubclass(MetricError, ValueError)


@pytest.mark.parametrize("tpr", [0.0, -0.1, 1.5, float("nan")])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_bad_tpr_raises(tpr, convention):
    with pytest.raises(MetricError, match="tpr must be in"):
        fpr_at_tpr([1.0, 2.0], [0.0], tpr, convention)


@pytest.mark.parametrize("metric", [
    lambda c: fpr_at_tpr([1.0, 2.0], [0.0], convention=c),
    lambda c: aupr_in([1.0, 2.0], [0.0], convention=c),
    lambda c: aupr_out([1.0, 2.0], [0.0], convention=c),
    lambda c: evaluate([1.0, 2.0], [0.0], convention=c),
])
def test_unknown_convention_raises(metric):
    expected = "unknown metric convention 'hendrycks'; expected one of mos, openood, neglabel"
    with pytest.raises(MetricError, match=expected):
        metric("hendrycks")


_score_lists = st.lists(
    st.one_of(
        st.integers(-3, 3).map(float),  # frequent ties
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(id_scores=_score_lists, ood_scores=_score_lists, tpr=st.floats(0.01, 1.0))
def test_auroc_is_antisymmetric_and_fpr_is_a_rate(id_scores, ood_scores, tpr):
    forward, backward = auroc(id_scores, ood_scores), auroc(ood_scores, id_scores)
    assert math.isclose(forward, 1 - backward, abs_tol=1e-9)
    for convention in CONVENTIONS:
        assert 0.0 <= fpr_at_tpr(id_scores, ood_scores, tpr, convention) <= 1.0
        assert 0.0 <= aupr_in(id_scores, ood_scores, convention) <= 1.0 + 1e-12
