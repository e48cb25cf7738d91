"""OOD detection metrics: AUROC, AUPR-In/Out and FPR at 95 % TPR under three labelled conventions.

Every function takes 1-D ID scores and OOD scores where higher = more in-distribution. A convention
bundles an FPR95 rule and an AUPR estimator; see shared/METHOD.md section 2.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve
from synood.errors import UserError

Scores = np.ndarray | torch.Tensor | Sequence[float]

CONVENTIONS = {  # name -> what it means; the first is the default, the one the paper's tables use
    "mos": "MOS / NegLabel / SynOOD paper tables: ID positive, threshold = highest score keeping >= 95 % of ID, "
           "FPR = share of OOD at or above it; AUPR = average precision",
    "openood": "OpenOOD v1.5: OOD positive (score -S), FPR = share of ID flagged at the first ROC point catching "
               ">= 95 % of OOD; AUPR = trapezoid rule over the precision-recall curve",
    "neglabel": "NegLabel's code (fpr_and_fdr_at_recall): threshold whose ID recall is nearest 95 % (may be below), "
                "the lowest among equals, FPR = share of OOD at or above it; AUPR = average precision",
}


class MetricError(UserError, ValueError):
    """Scores that no OOD metric can be computed from (empty side, NaN/inf, wrong shape), or an unknown option."""


def _as_array(scores: Scores, side: str) -> np.ndarray:
    """One side's scores as a checked 1-D float64 array; `side` ("ID"/"OOD") names it in errors."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MetricError(f"{side} scores are not numbers: {error}") from error
    if array.ndim != 1:
        raise MetricError(f"{side} scores must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise MetricError(f"no {side} scores: the metrics need both ID and OOD samples")
    num_nan = int(np.isnan(array).sum())
    num_inf = int(np.isinf(array).sum())
    if num_nan or num_inf:
        raise MetricError(
            f"{side} scores contain {num_nan + num_inf} non-finite value(s) "
            f"({num_nan} NaN, {num_inf} inf) out of {array.size}"
        )
    return array


def _labelled(id_scores: Scores, ood_scores: Scores) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated scores and labels with ID = 1, OOD = 0."""
    id_array = _as_array(id_scores, "ID")
    ood_array = _as_array(ood_scores, "OOD")
    labels = np.concatenate([np.ones(id_array.size), np.zeros(ood_array.size)])
    return np.concatenate([id_array, ood_array]), labels


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise MetricError(f"unknown metric convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise AUPR, sum over thresholds of (recall step) x precision: scikit-learn's, used by MOS and NegLabel."""
    return float(average_precision_score(labels, scores))


def trapezoid_aupr(labels: np.ndarray, scores: np.ndarray) -> float:
    """OpenOOD's AUPR, computed as OpenOOD does: the trapezoid rule (`auc`) over scikit-learn's precision-recall
    curve, whose points are every distinct threshold plus (recall 0, precision 1). `labels`: 1 = positive."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(auc(recall, precision))


_AUPR: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mos": average_precision, "openood": trapezoid_aupr, "neglabel": average_precision}


def auroc(id_scores: Scores, ood_scores: Scores) -> float:
    """Area under the ROC curve (ID positive); ties count one half, as in scikit-learn. The same in every
    convention (OpenOOD's trapezoid over its ROC curve is this area)."""
    scores, labels = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def aupr_in(id_scores: Scores, ood_scores: Scores, convention: str = "mos") -> float:
    """AUPR with ID as the positive class, by the estimator of `convention`."""
    _check_convention(convention)
    scores, labels = _labelled(id_scores, ood_scores)
    return _AUPR[convention](labels, scores)


def aupr_out(id_scores: Scores, ood_scores: Scores, convention: str = "mos") -> float:
    """AUPR with OOD as the positive class, ranked by the negated score, by the estimator of `convention`."""
    _check_convention(convention)
    scores, labels = _labelled(id_scores, ood_scores)
    return _AUPR[convention](1 - labels, -scores)


def fpr_at_tpr(
    id_scores: Scores, ood_scores: Scores, tpr: float = 0.95, convention: str = "mos"
) -> float:
    """False-positive rate at a true-positive rate of `tpr`, under one of the three conventions.

    "mos" (the primary one): ID is positive. The threshold t is the largest value with at least `tpr`
    of ID scores >= t; FPR = share of OOD scores >= t (OOD ties at t count as false positives).
    "openood" (OpenOOD v1.5): OOD is positive with score -S. FPR = share of ID flagged as OOD at the
    first point of `roc_curve(ood_indicator, -S)` with TPR >= `tpr`. Like OpenOOD, this keeps
    scikit-learn's default drop_intermediate=True, which can skip a point when scores tie.
    "neglabel" (NegLabel's fpr_and_fdr_at_recall): ID is positive. Candidate thresholds are the
    distinct scores (ID or OOD) from the lowest ID score up; t is the one whose ID recall is nearest
    `tpr` in float64 (it can be below `tpr`), the lowest among equal distances; FPR = share of OOD >= t.
    """
    if not 0.0 < tpr <= 1.0:
        raise MetricError(f"tpr must be in (0, 1], got {tpr}")
    _check_convention(convention)
    scores, labels = _labelled(id_scores, ood_scores)
    id_array, ood_array = scores[labels == 1], scores[labels == 0]

    if convention == "mos":
        return float(np.mean(ood_array >= id_threshold(id_array, tpr, "mos")))

    if convention == "neglabel":
        candidates = np.unique(scores[scores >= id_array.min()])  # ascending: argmin's first = the lowest
        recall = (id_array.size - np.searchsorted(np.sort(id_array), candidates)) / id_array.size
        threshold = candidates[np.argmin(np.abs(recall - tpr))]
        return float(np.mean(ood_array >= threshold))

    fpr, tpr_curve, _ = roc_curve(1 - labels, -scores)
    return float(fpr[np.argmax(tpr_curve >= tpr)])


def id_threshold(id_scores: Scores, tpr: float = 0.95, convention: str = "mos") -> float:
    """The score threshold that keeps `tpr` of the ID images (at or above it), as `fpr_at_tpr` sets it: the share
    of OOD scores at or above it is that FPR. "mos": the largest value with at least `tpr` of ID scores >= it.
    "neglabel": the level of ID recall nearest `tpr` (the highest recall among equals, recall 0 excluded), placed
    just above the next lower ID score, where NegLabel's lowest candidate of that level lies. "openood" sets its
    threshold on the OOD scores (95 % of OOD caught), so it has no ID threshold: MetricError."""
    if not 0.0 < tpr <= 1.0:
        raise MetricError(f"tpr must be in (0, 1], got {tpr}")
    _check_convention(convention)
    if convention == "openood":
        raise MetricError("the openood convention sets its threshold on the OOD scores: it has no ID threshold")
    id_array = np.sort(_as_array(id_scores, "ID"))
    if convention == "mos":
        # Keep the k highest ID scores, k = ceil(tpr * n); rounding absorbs float noise (0.95 * 20).
        return float(id_array[-math.ceil(round(tpr * id_array.size, 6))])
    levels = np.unique(id_array)  # ascending: argmin's first = the lowest, as in fpr_at_tpr
    recall = (id_array.size - np.searchsorted(id_array, levels)) / id_array.size
    nearest = int(np.argmin(np.abs(recall - tpr)))
    return float(levels[0] if nearest == 0 else np.nextafter(levels[nearest - 1], np.inf))


@dataclass(frozen=True)
class OODMetrics:
    """The standard OOD metrics of one (ID set, OOD set) pair under one convention, as fractions in [0, 1]."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float
    convention: str

    def as_percent(self) -> dict[str, float]:
        """The four metrics x100, the way papers report them (the convention is `self.convention`)."""
        return {name: 100.0 * getattr(self, name) for name in ("auroc", "aupr_in", "aupr_out", "fpr95")}


def evaluate(id_scores: Scores, ood_scores: Scores, convention: str = "mos") -> OODMetrics:
    """All metrics of `OODMetrics` for one pair of score arrays, under `convention`."""
    _check_convention(convention)
    id_array = _as_array(id_scores, "ID")
    ood_array = _as_array(ood_scores, "OOD")
    return OODMetrics(
        auroc=auroc(id_array, ood_array),
        aupr_in=aupr_in(id_array, ood_array, convention),
        aupr_out=aupr_out(id_array, ood_array, convention),
        fpr95=fpr_at_tpr(id_array, ood_array, 0.95, convention),
        convention=convention,
    )


# Bootstrap: every metric above, recomputed for many resamples at once. A resample is a count per distinct score
# value (how often each ID and OOD value was drawn), so one sort serves every resample and each metric is a few
# cumulative sums over a (resamples x distinct values) block instead of a Python loop with a sort per resample.
METRIC_NAMES = ("auroc", "aupr_in", "aupr_out", "fpr95")
BLOCK = 1_000_000  # entries of one (resamples x distinct values) block: about 8 MB per array, fastest here


def _counts(inverse: np.ndarray, index: np.ndarray, size: int) -> np.ndarray:
    """(rows, size) counts of each distinct value (`inverse` maps a sample to its value) in each row of `index`."""
    rows = index.shape[0]
    flat = (np.arange(rows)[:, None] * size + inverse[index]).ravel()
    return np.bincount(flat, minlength=rows * size).reshape(rows, size).astype(np.int32)


def _precision(hits: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """hits / flagged, and 1 where nothing is flagged yet: the precision-recall curve's start (recall 0,
    precision 1), which the trapezoid needs; the step estimator weighs those points by 0."""
    empty = flagged == 0
    return (hits + empty) / np.maximum(flagged, 1)


def _step_aupr(positives: np.ndarray, hits: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Per row, scikit-learn's average precision: the precision at each distinct value times its recall step (a
    value with positives has flagged > 0)."""
    return np.sum(positives * hits / np.maximum(flagged, 1), axis=1) / positives.sum(axis=1)


def _trapezoid_aupr(positives: np.ndarray, hits: np.ndarray, flagged: np.ndarray, previous: int) -> np.ndarray:
    """Per row, OpenOOD's trapezoid over the precision-recall curve from (0, 1); `previous` (-1 or +1) is the
    column of the next more positive value, whose precision each recall step starts from."""
    precision = _precision(hits, flagged)
    ones = np.ones((len(precision), 1))
    before = (np.concatenate([ones, precision[:, :-1]], axis=1) if previous < 0
              else np.concatenate([precision[:, 1:], ones], axis=1))
    return np.sum(positives * (precision + before), axis=1) / (2 * positives.sum(axis=1))


def _openood_fpr(a: np.ndarray, o: np.ndarray, id_below: np.ndarray, ood_below: np.ndarray,
                 tpr: float) -> np.ndarray:
    """Per row, `fpr_at_tpr(..., "openood")` from counts at distinct values (column 0 the highest) and the ID and
    OOD counts at or below each: the first ROC point, from the lowest value up, with OOD recall >= tpr after
    roc_curve's drop_intermediate, which drops a point whose count step equals the next present point's (collinear
    with its neighbours); the lowest and highest present points stay."""
    rows, size = a.shape
    present = (a + o) > 0
    higher = np.maximum.accumulate(np.where(present, np.arange(size), -1), axis=1)  # nearest present at or above
    higher = np.concatenate([np.full((rows, 1), -1), higher[:, :-1]], axis=1) + 1  # strictly above, +1 for the pad
    pad = np.full((rows, 1), -1)
    kept = present & ((np.take_along_axis(np.concatenate([pad, a], axis=1), higher, axis=1) != a)
                      | (np.take_along_axis(np.concatenate([pad, o], axis=1), higher, axis=1) != o))
    rows_index = np.arange(rows)
    kept[rows_index, size - 1 - np.argmax(present[:, ::-1], axis=1)] = True
    hit = kept & (ood_below / ood_below[:, :1] >= tpr)
    first = size - 1 - np.argmax(hit[:, ::-1], axis=1)
    return id_below[rows_index, first] / id_below[:, 0]


def _columns(id_array: np.ndarray, ood_array: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Each ID and OOD sample's column among the distinct score values, column 0 the highest, and their number."""
    values, inverse = np.unique(np.concatenate([id_array, ood_array]), return_inverse=True)
    descending = len(values) - 1 - inverse.ravel()
    return descending[:id_array.size], descending[id_array.size:], len(values)


def resampled(id_scores: Scores, ood_scores: Scores, id_index: np.ndarray, ood_index: np.ndarray,
              conventions: Sequence[str] = ("mos",)) -> dict[str, dict[str, np.ndarray]]:
    """Each metric of `evaluate` (fractions) on every resample at once: row r of `id_index` (rows, n_id) and of
    `ood_index` (rows, n_ood) picks resample r's ID and OOD scores. Identity rows give `evaluate`'s values."""
    for convention in conventions:
        _check_convention(convention)
    id_array, ood_array = _as_array(id_scores, "ID"), _as_array(ood_scores, "OOD")
    if id_index.ndim != 2 or ood_index.ndim != 2 or len(id_index) != len(ood_index):
        raise ValueError(f"index matrices must be 2-D with as many rows, got {id_index.shape} and {ood_index.shape}")
    id_columns, ood_columns, size = _columns(id_array, ood_array)
    return _metrics_of_counts(_counts(id_columns, id_index, size), _counts(ood_columns, ood_index, size), conventions)


def _metrics_of_counts(a: np.ndarray, o: np.ndarray, conventions: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """`resampled`'s metrics from each row's ID (`a`) and OOD (`o`) counts per distinct value, highest first."""
    n_id, n_ood = int(a[0].sum()), int(o[0].sum())
    id_above, ood_above = np.cumsum(a, axis=1, dtype=np.int32), np.cumsum(o, axis=1, dtype=np.int32)  # at or above
    id_below, ood_below = n_id - id_above + a, n_ood - ood_above + o  # at or below each value
    rows = np.arange(len(a))
    # AUROC with ties counted one half, in integers: each ID sample against the OOD below it and half those level.
    common = {"auroc": np.sum(a * (2.0 * (n_ood - ood_above) + o), axis=1) / (2 * n_id * n_ood)}  # exact: < 2**53
    auprs = {}  # estimator -> (AUPR-In, AUPR-Out), shared by the conventions that use it
    result = {}
    for convention in conventions:
        estimator = "trapezoid" if convention == "openood" else "step"
        if estimator not in auprs:
            auprs[estimator] = ((_trapezoid_aupr(a, id_above, id_above + ood_above, -1),
                                 _trapezoid_aupr(o, ood_below, ood_below + id_below, +1)) if estimator == "trapezoid"
                                else (_step_aupr(a, id_above, id_above + ood_above),
                                      _step_aupr(o, ood_below, ood_below + id_below)))
        metrics = {**common, "aupr_in": auprs[estimator][0], "aupr_out": auprs[estimator][1]}
        if convention == "mos":
            keep = math.ceil(round(0.95 * n_id, 6))
            metrics["fpr95"] = ood_above[rows, np.argmax(id_above >= keep, axis=1)] / n_ood
        elif convention == "neglabel":
            candidate = ((a + o) > 0) & (id_below > 0)  # present, and at or above the lowest ID score
            distance = np.where(candidate, np.abs(id_above / n_id - 0.95), np.inf)
            nearest = distance.shape[1] - 1 - np.argmin(distance[:, ::-1], axis=1)  # the lowest among equals
            metrics["fpr95"] = ood_above[rows, nearest] / n_ood
        else:
            metrics["fpr95"] = _openood_fpr(a, o, id_below, ood_below, 0.95)
        result[convention] = {name: metrics[name] for name in METRIC_NAMES}
    return result


def bootstrap_samples(id_scores: Scores, ood_scores: Scores, conventions: Sequence[str] = ("mos",),
                      resamples: int = 1000, seed: int = 0, stream: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """`resampled` over `resamples` bootstrap resamples, ID and OOD drawn separately with replacement. The ID draws
    depend on `seed` only and the OOD draws on (`seed`, `stream`), so OOD sets evaluated against one ID set with
    distinct streams share each resample's ID draw and differ in their own, as independent resamples should."""
    if resamples < 1:
        raise MetricError(f"the bootstrap needs at least one resample, got {resamples}")
    for convention in conventions:
        _check_convention(convention)
    id_array, ood_array = _as_array(id_scores, "ID"), _as_array(ood_scores, "OOD")
    id_columns, ood_columns, size = _columns(id_array, ood_array)
    id_draws, ood_draws = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1, stream])
    chunk = max(1, BLOCK // size)
    parts = []
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        a = _counts(id_columns, id_draws.integers(0, id_array.size, (rows, id_array.size)), size)
        o = _counts(ood_columns, ood_draws.integers(0, ood_array.size, (rows, ood_array.size)), size)
        parts.append(_metrics_of_counts(a, o, conventions))
    return {c: {name: np.concatenate([part[c][name] for part in parts]) for name in METRIC_NAMES}
            for c in conventions}


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap samples: (lo, hi)."""
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap(id_scores: Scores, ood_scores: Scores, convention: str = "mos", resamples: int = 1000,
              seed: int = 0) -> dict[str, tuple[float, float]]:
    """The 95 % percentile bootstrap interval (fractions) of each metric of `evaluate` under `convention`."""
    samples = bootstrap_samples(id_scores, ood_scores, [convention], resamples, seed)[convention]
    return {name: percentile_interval(values) for name, values in samples.items()}
