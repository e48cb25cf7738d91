"""synood.method.metrics' bootstrap: the vectorised resampled metrics equal `evaluate` on each resample (identity
included, ties included), and the 95 % intervals contain the point estimate, shrink with more samples and are
reproducible per seed."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synood.method.metrics import (CONVENTIONS, METRIC_NAMES, MetricError, bootstrap, bootstrap_samples, evaluate,
                                   resampled)


def _pair(seed, n_id=300, n_ood=200, ties=False):
    rng = np.random.default_rng(seed)
    id_scores, ood_scores = rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.0, n_ood)
    if ties:
        id_scores, ood_scores = np.round(id_scores, 1), np.round(ood_scores, 1)
    return id_scores, ood_scores


def _assert_rows_are_evaluate(id_scores, ood_scores, id_index, ood_index):
    found = resampled(id_scores, ood_scores, id_index, ood_index, list(CONVENTIONS))
    for row in range(len(id_index)):
        for convention in CONVENTIONS:
            expected = evaluate(id_scores[id_index[row]], ood_scores[ood_index[row]], convention)
            for name in METRIC_NAMES:
                assert found[convention][name][row] == pytest.approx(getattr(expected, name), abs=1e-12), (
                    convention, name, row)


@pytest.mark.parametrize("ties", [False, True])
def test_the_identity_resample_is_the_point_estimate(ties):
    id_scores, ood_scores = _pair(0, ties=ties)
    _assert_rows_are_evaluate(id_scores, ood_scores, np.arange(len(id_scores))[None],
                              np.arange(len(ood_scores))[None])


@pytest.mark.parametrize("ties", [False, True])
def test_every_resample_row_is_evaluate_on_that_resample(ties):
    id_scores, ood_scores = _pair(1, 120, 90, ties)
    rng = np.random.default_rng(2)
    _assert_rows_are_evaluate(id_scores, ood_scores, rng.integers(0, 120, (6, 120)), rng.integers(0, 90, (6, 90)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=25), st.lists(st.integers(0, 6), min_size=1, max_size=25),
       st.integers(0, 2**32 - 1))
def test_small_tied_sets_match_evaluate_row_by_row(id_values, ood_values, seed):
    """Heavy ties and tiny sets: where OpenOOD's drop_intermediate, NegLabel's nearest recall and the step and
    trapezoid AUPR estimators differ most."""
    id_scores, ood_scores = np.array(id_values, float), np.array(ood_values, float)
    rng = np.random.default_rng(seed)
    id_index = np.vstack([np.arange(id_scores.size), rng.integers(0, id_scores.size, (2, id_scores.size))])
    ood_index = np.vstack([np.arange(ood_scores.size), rng.integers(0, ood_scores.size, (2, ood_scores.size))])
    _assert_rows_are_evaluate(id_scores, ood_scores, id_index, ood_index)


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_the_interval_contains_the_point_estimate(convention):
    id_scores, ood_scores = _pair(3, 2000, 1500)
    point = evaluate(id_scores, ood_scores, convention)
    intervals = bootstrap(id_scores, ood_scores, convention, resamples=300, seed=4)
    assert set(intervals) == set(METRIC_NAMES)
    for name, (lo, hi) in intervals.items():
        assert lo < getattr(point, name) < hi, (name, lo, hi)


def test_the_interval_shrinks_with_more_samples():
    small = bootstrap(*_pair(5, 200, 150), resamples=300, seed=0)
    large = bootstrap(*_pair(5, 5000, 3500), resamples=300, seed=0)
    for name in METRIC_NAMES:
        assert large[name][1] - large[name][0] < (small[name][1] - small[name][0]) / 2, name


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    id_scores, ood_scores = _pair(6)
    first = bootstrap(id_scores, ood_scores, "openood", resamples=200, seed=7)
    assert bootstrap(id_scores, ood_scores, "openood", resamples=200, seed=7) == first
    assert bootstrap(id_scores, ood_scores, "openood", resamples=200, seed=8) != first


def test_resamples_are_drawn_in_blocks_without_changing_them(monkeypatch):
    """The block size bounds memory only: one block or many give the same resamples."""
    from synood.method import metrics

    id_scores, ood_scores = _pair(9, 100, 80)
    whole = bootstrap_samples(id_scores, ood_scores, ["mos"], 50, seed=1)
    monkeypatch.setattr(metrics, "BLOCK", 7 * len(np.unique(np.concatenate([id_scores, ood_scores]))))  # 7 per block
    blocks = bootstrap_samples(id_scores, ood_scores, ["mos"], 50, seed=1)
    for name in METRIC_NAMES:
        np.testing.assert_array_equal(blocks["mos"][name], whole["mos"][name])


def test_streams_share_the_id_draw_and_differ_in_the_ood_draw():
    """The engine gives each OOD set its own stream: one ID resample per replicate, independent OOD resamples."""
    id_scores, ood_scores = _pair(10, 50, 40)
    constant = np.zeros(40)  # an OOD set whose resamples all look alike: only the ID draw moves the metric
    a = bootstrap_samples(id_scores, constant, ["mos"], 30, seed=2, stream=0)["mos"]["auroc"]
    b = bootstrap_samples(id_scores, constant, ["mos"], 30, seed=2, stream=1)["mos"]["auroc"]
    np.testing.assert_array_equal(a, b)
    c = bootstrap_samples(id_scores, ood_scores, ["mos"], 30, seed=2, stream=0)["mos"]["auroc"]
    d = bootstrap_samples(id_scores, ood_scores, ["mos"], 30, seed=2, stream=1)["mos"]["auroc"]
    assert not np.array_equal(c, d)


def test_bad_bootstrap_input_is_one_message():
    with pytest.raises(MetricError, match="at least one resample"):
        bootstrap([1.0, 2.0], [0.0], resamples=0)
    with pytest.raises(MetricError, match="unknown metric convention"):
        bootstrap([1.0, 2.0], [0.0], "hendrycks")
    with pytest.raises(MetricError, match="non-finite"):
        bootstrap([1.0, np.nan], [0.0])
