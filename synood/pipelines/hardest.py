"""The hardest cases of a saved evaluation for one score: the OOD images it scored most in-distribution and the ID
images it scored least, for the report's thumbnails and the app's gallery."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from synood.pipelines.evaluation import EvaluationError, Saved


@dataclass(frozen=True)
class Case:
    """One image of a set and its score (higher = more ID); `path` is None when the scores came without paths."""

    set: str
    index: int  # its position in the set's scores
    score: float
    path: Path | None


@dataclass(frozen=True)
class Hardest:
    """A score's hardest cases: OOD images from the most ID-like down, ID images from the least ID-like up."""

    scorer: str
    ood: list[Case]
    id: list[Case]


def id_set_of(saved: Saved) -> str:
    """The ID set's name: the one set the saved report does not list as OOD."""
    found = [name for name in saved.sets if name not in saved.report.get("ood", {})]
    if len(found) != 1:
        raise EvaluationError(f"the saved evaluation has {len(found)} sets that are not OOD, expected one ID set")
    return found[0]


def _extreme(saved: Saved, names: Sequence[str], scorer: str, k: int, highest: bool) -> list[Case]:
    """The `k` cases of the sets `names` with the highest (or lowest) scores, ties in set and image order."""
    cases = []
    for name in names:
        scored = saved.sets[name]
        values = scored.scores[scorer].detach().double().cpu()
        top = torch.topk(values, min(k, len(values)), largest=highest, sorted=True).indices.tolist()
        cases += [Case(name, i, float(values[i]), scored.paths[i] if i < len(scored.paths) else None) for i in top]
    order = {name: position for position, name in enumerate(names)}
    cases.sort(key=lambda c: (-c.score if highest else c.score, order[c.set], c.index))
    return cases[:k]


def hardest(saved: Saved, scorer: str, k: int, sets: Sequence[str] | None = None) -> Hardest:
    """The `k` OOD images (of `sets`, by default every OOD set) that `scorer` scored most in-distribution and the
    `k` ID images it scored least; EvaluationError for a score or set the evaluation does not hold."""
    if k < 0:
        raise EvaluationError(f"the number of hardest cases must be 0 or more, got {k}")
    id_set = id_set_of(saved)
    if scorer not in saved.sets[id_set].scores:
        raise EvaluationError(f"the saved evaluation has no {scorer!r} scores; it has "
                              f"{', '.join(saved.sets[id_set].scores)}")
    ood = [name for name in saved.sets if name != id_set]
    if sets is not None:
        unknown = [name for name in sets if name not in ood]
        if unknown:
            raise EvaluationError(f"no OOD set {', '.join(map(repr, unknown))} in the saved evaluation; it has "
                                  f"{', '.join(ood)}")
        ood = [name for name in ood if name in sets]
    return Hardest(scorer, _extreme(saved, ood, scorer, k, highest=True),
                   _extreme(saved, [id_set], scorer, k, highest=False))
