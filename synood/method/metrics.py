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
        # Keep the k highest ID scores, k = ceil(tpr * n); rounding absorbs float noise (0.95 * 20).
        keep = math.ceil(round(tpr * id_array.size, 6))
        threshold = np.sort(id_array)[-keep]
        return float(np.mean(ood_array >= threshold))

    if convention == "neglabel":
        candidates = np.unique(scores[scores >= id_array.min()])  # ascending: argmin's first = the lowest
        recall = (id_array.size - np.searchsorted(np.sort(id_array), candidates)) / id_array.size
        threshold = candidates[np.argmin(np.abs(recall - tpr))]
        return float(np.mean(ood_array >= threshold))

    fpr, tpr_curve, _ = roc_curve(1 - labels, -scores)
    return float(fpr[np.argmax(tpr_curve >= tpr)])


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
