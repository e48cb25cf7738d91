"""OOD detection metrics: AUROC, AUPR-In/Out and FPR at 95 % TPR in two labelled conventions.

Every function takes 1-D ID scores and OOD scores where higher = more in-distribution.
See shared/METHOD.md section 2 for the two FPR95 conventions.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence, Union

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

Scores = Union[np.ndarray, torch.Tensor, Sequence[float]]

CONVENTIONS = ("mos", "openood")


class MetricError(ValueError):
    """Scores that no OOD metric can be computed from (empty side, NaN/inf, wrong shape)."""


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


def auroc(id_scores: Scores, ood_scores: Scores) -> float:
    """Area under the ROC curve (ID positive); ties count one half, as in scikit-learn."""
    scores, labels = _labelled(id_scores, ood_scores)
    return float(roc_auc_score(labels, scores))


def aupr_in(id_scores: Scores, ood_scores: Scores) -> float:
    """Average precision with ID as the positive class (scikit-learn's step-wise AP)."""
    scores, labels = _labelled(id_scores, ood_scores)
    return float(average_precision_score(labels, scores))


def aupr_out(id_scores: Scores, ood_scores: Scores) -> float:
    """Average precision with OOD as the positive class, ranked by the negated score."""
    scores, labels = _labelled(id_scores, ood_scores)
    return float(average_precision_score(1 - labels, -scores))


def fpr_at_tpr(
    id_scores: Scores, ood_scores: Scores, tpr: float = 0.95, convention: str = "mos"
) -> float:
    """False-positive rate at a true-positive rate of `tpr`, in one of two conventions.

    "mos" (MOS / NegLabel / SynOOD tables; the primary one): ID is positive. The threshold t is
    the largest value with at least `tpr` of ID scores >= t; FPR = share of OOD scores >= t
    (OOD ties at t count as false positives).
    "openood" (OpenOOD v1.5): OOD is positive with score -S. FPR = share of ID flagged as OOD at
    the first point of `roc_curve(ood_indicator, -S)` with TPR >= `tpr`. Like OpenOOD, this keeps
    scikit-learn's default drop_intermediate=True, which can skip a point when scores tie.
    """
    if not 0.0 < tpr <= 1.0:
        raise MetricError(f"tpr must be in (0, 1], got {tpr}")
    if convention not in CONVENTIONS:
        raise MetricError(f"unknown FPR convention {convention!r}; expected one of {CONVENTIONS}")
    scores, labels = _labelled(id_scores, ood_scores)
    id_array, ood_array = scores[labels == 1], scores[labels == 0]

    if convention == "mos":
        # Keep the k highest ID scores, k = ceil(tpr * n); rounding absorbs float noise (0.95 * 20).
        keep = math.ceil(round(tpr * id_array.size, 6))
        threshold = np.sort(id_array)[-keep]
        return float(np.mean(ood_array >= threshold))

    fpr, tpr_curve, _ = roc_curve(1 - labels, -scores)
    return float(fpr[np.argmax(tpr_curve >= tpr)])


@dataclass(frozen=True)
class OODMetrics:
    """The standard OOD metrics of one (ID set, OOD set) pair, as fractions in [0, 1]."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr95: float  # "mos" convention, the one the paper's tables use
    fpr95_openood: float

    def as_percent(self) -> dict[str, float]:
        """The metrics x100, the way papers report them."""
        return {name: 100.0 * value for name, value in asdict(self).items()}


def evaluate(id_scores: Scores, ood_scores: Scores) -> OODMetrics:
    """All metrics of `OODMetrics` for one pair of score arrays."""
    id_array = _as_array(id_scores, "ID")
    ood_array = _as_array(ood_scores, "OOD")
    return OODMetrics(
        auroc=auroc(id_array, ood_array),
        aupr_in=aupr_in(id_array, ood_array),
        aupr_out=aupr_out(id_array, ood_array),
        fpr95=fpr_at_tpr(id_array, ood_array, 0.95, convention="mos"),
        fpr95_openood=fpr_at_tpr(id_array, ood_array, 0.95, convention="openood"),
    )
