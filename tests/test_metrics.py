"""synood.metrics: scikit-learn agreement, hand-computed cases with ties, both FPR95 conventions."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from synood.metrics import (
    MetricError,
    OODMetrics,
    aupr_in,
    aupr_out,
    auroc,
    evaluate,
    fpr_at_tpr,
)


def _fpr_mos_brute_force(id_scores, ood_scores, tpr):
    """Largest t with share(ID >= t) >= tpr, searched over every ID value; share(OOD >= t)."""
    candidates = [t for t in np.unique(id_scores) if np.mean(id_scores >= t) >= tpr - 1e-12]
    return float(np.mean(ood_scores >= max(candidates)))


def _fpr_openood_literal(id_scores, ood_scores, tpr):
    """OpenOOD v1.5's lines, verbatim in spirit: OOD positive, score -S, first TPR >= tpr."""
    conf = np.concatenate([id_scores, ood_scores])
    ood_indicator = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    fpr_list, tpr_list, _ = roc_curve(ood_indicator, -conf)
    return float(fpr_list[np.argmax(tpr_list >= tpr)])


def _random_scores(seed, ties):
    rng = np.random.default_rng(seed)
    id_scores = rng.normal(1.0, 1.0, size=int(rng.integers(20, 400)))
    ood_scores = rng.normal(0.0, 1.0, size=int(rng.integers(20, 400)))
    if ties:
        id_scores, ood_scores = np.round(id_scores, 1), np.round(ood_scores, 1)
    return id_scores, ood_scores


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_matches_sklearn_and_reference_fprs_on_random_data(seed, ties):
    id_scores, ood_scores = _random_scores(seed, ties)
    labels = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    scores = np.r_[id_scores, ood_scores]

    assert auroc(id_scores, ood_scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr_in(id_scores, ood_scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert aupr_out(id_scores, ood_scores) == pytest.approx(
        average_precision_score(1 - labels, -scores), abs=1e-12
    )
    for tpr in (0.95, 0.9, 0.5):
        assert fpr_at_tpr(id_scores, ood_scores, tpr, "mos") == _fpr_mos_brute_force(
            id_scores, ood_scores, tpr
        )
        assert fpr_at_tpr(id_scores, ood_scores, tpr, "openood") == _fpr_openood_literal(
            id_scores, ood_scores, tpr
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
    #   AP = 1/4 * 1 + 1/2 * 3/5 + 1/4 * 4/7 = 0.25 + 0.3 + 1/7
    assert aupr_in(id_scores, ood_scores) == pytest.approx(0.25 + 0.3 + 1 / 7, abs=1e-12)
    # AUPR-Out (OOD positive, score -S), from the lowest S up:
    #   S <= 0: TP 1 FP 0 -> P 1,   R 1/4
    #   S <= 1: TP 2 FP 1 -> P 2/3, R 1/2
    #   S <= 2: TP 4 FP 3 -> P 4/7, R 1
    #   AP = 1/4 * 1 + 1/4 * 2/3 + 1/2 * 4/7
    assert aupr_out(id_scores, ood_scores) == pytest.approx(0.25 + 1 / 6 + 2 / 7, abs=1e-12)
    # "mos", tpr 0.75: keep ceil(3) = 3 ID scores -> t = 2; OOD >= 2: {2, 2} -> 2/4.
    # The two OOD ties at t count as false positives (strictly above t would give 0).
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "mos") == 0.5
    # "openood", tpr 0.75: catching >= 3 of 4 OOD needs S <= 2 (S <= 1 catches only 2);
    #   ID flagged with S <= 2: {1, 2, 2} -> 3/4.
    assert fpr_at_tpr(id_scores, ood_scores, 0.75, "openood") == 0.75
    # tpr 0.95: "mos" keeps ceil(3.8) = 4 ID -> t = 1; OOD >= 1: {1, 2, 2} -> 3/4.
    #           "openood" must catch all 4 OOD -> S <= 2 -> ID {1, 2, 2} -> 3/4.
    assert fpr_at_tpr(id_scores, ood_scores) == 0.75
    assert fpr_at_tpr(id_scores, ood_scores, convention="openood") == 0.75


def test_conventions_differ_where_they_should():
    id_scores = [4.0, 5.0, 6.0, 7.0]
    ood_scores = [1.0, 2.0, 3.0, 5.5]
    # "mos": keep ceil(0.95 * 4) = 4 ID -> t = 4; OOD >= 4: {5.5} -> 1/4.
    assert fpr_at_tpr(id_scores, ood_scores, 0.95, "mos") == 0.25
    # "openood": catching 95 % of OOD means all 4, i.e. S <= 5.5; ID flagged: {4, 5} -> 2/4.
    assert fpr_at_tpr(id_scores, ood_scores, 0.95, "openood") == 0.5
    # AUROC: ID 4 and 5 lose only to 5.5 (3 wins each), 6 and 7 win all -> 14 / 16.
    result = evaluate(id_scores, ood_scores)
    assert result.auroc == pytest.approx(0.875, abs=1e-12)
    assert (result.fpr95, result.fpr95_openood) == (0.25, 0.5)


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


def test_perfect_separation():
    result = evaluate([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0])
    assert result == OODMetrics(auroc=1.0, aupr_in=1.0, aupr_out=1.0, fpr95=0.0, fpr95_openood=0.0)


def test_reversed_scores():
    result = evaluate([-1.0, 0.0, 1.0], [2.0, 3.0, 4.0])
    assert result.auroc == 0.0
    assert result.fpr95 == 1.0
    assert result.fpr95_openood == 1.0
    # Worst ranking: the 3 positives come after the 3 negatives, one recall step of 1/3 each at
    # precision 1/4, 2/5, 3/6 -> AP = (0.25 + 0.4 + 0.5) / 3 = 1.15 / 3 (same for both sides).
    assert result.aupr_in == pytest.approx(1.15 / 3, abs=1e-12)
    assert result.aupr_out == pytest.approx(1.15 / 3, abs=1e-12)


def test_accepts_lists_numpy_and_torch_alike():
    id_scores, ood_scores = _random_scores(0, ties=False)
    expected = evaluate(id_scores, ood_scores)
    assert evaluate(list(id_scores), list(ood_scores)) == expected
    id_tensor = torch.tensor(id_scores, requires_grad=True)
    assert evaluate(id_tensor, torch.tensor(ood_scores)) == expected
    # Lower-precision tensors are converted too (values change, the call must not fail).
    evaluate(id_tensor.bfloat16(), torch.tensor(ood_scores).half())


def test_as_percent():
    metrics = OODMetrics(auroc=0.9421, aupr_in=0.5, aupr_out=0.25, fpr95=0.254, fpr95_openood=1.0)
    percent = metrics.as_percent()
    assert list(percent) == ["auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_openood"]
    assert percent["auroc"] == pytest.approx(94.21)
    assert percent["fpr95"] == pytest.approx(25.4)
    assert percent["fpr95_openood"] == 100.0
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
def test_bad_tpr_raises(tpr):
    with pytest.raises(MetricError, match="tpr must be in"):
        fpr_at_tpr([1.0, 2.0], [0.0], tpr)


def test_unknown_convention_raises():
    with pytest.raises(MetricError, match="unknown FPR convention 'hendrycks'"):
        fpr_at_tpr([1.0, 2.0], [0.0], convention="hendrycks")


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
    for convention in ("mos", "openood"):
        assert 0.0 <= fpr_at_tpr(id_scores, ood_scores, tpr, convention) <= 1.0
