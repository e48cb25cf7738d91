"""Per-image score files in OpenOOD's form, so scores move between synood and OpenOOD either way.

OpenOOD's evaluator saves each dataset's scores as `<output_dir>/scores/<dataset>.npz` (`np.savez` of `pred`,
`conf`, `label`): `conf` is the score, higher = more in-distribution; `label` is the class index for ID images and
-1 for every OOD image, which is how OpenOOD tells them apart (`label == -1` is OOD). synood writes one such folder
per score, `DIR/<score>/scores/<set>.npz`, plus `DIR/scores.csv` (set, path, one column per score). Its ID images
get label 0 (synood knows they are ID, not their class) and pred -1 (it does not classify): OpenOOD's ID accuracy
over these files means nothing, its OOD metrics are exact.
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synood.data import storage
from synood.errors import UserError

OOD_LABEL = -1  # OpenOOD's label of every OOD image
TABLE = "scores.csv"  # synood's per-image table beside the .npz folders; reading keeps its score and set order


class ScoreFileError(UserError, ValueError):
    """A score folder or file that cannot be read or written (missing, not .npz, no or several ID sets...)."""


@dataclass
class ScoreFolder:
    """The per-image scores of a folder: score -> set -> (N,) values, higher = more ID; `files` the .npz read."""

    id_set: str
    scores: dict[str, dict[str, np.ndarray]]
    files: dict[str, dict[str, Path]]

    @property
    def sets(self) -> list[str]:
        """The set names, the ID set first."""
        return list(next(iter(self.scores.values())))


def check_name(name: str) -> None:
    """A set or score name usable as a file name (ScoreFileError naming it otherwise)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ScoreFileError(f"{name!r} cannot name a score file: use a name without / or \\")


def write(folder: str | Path, scores: Mapping[str, Mapping[str, np.ndarray]], id_set: str,
          paths: Mapping[str, Sequence[str]]) -> list[Path]:
    """`scores` (score -> set -> values) as `folder/<score>/scores/<set>.npz` in OpenOOD's form, and every image's
    scores in `folder/scores.csv` (`paths`: set -> its images, in score order); the files written."""
    folder = Path(folder)
    written = []
    for score, by_set in scores.items():
        check_name(score)
        for name, values in by_set.items():
            check_name(name)
            label = np.full(len(values), OOD_LABEL if name != id_set else 0, dtype=np.int64)
            path = folder / score / "scores" / f"{name}.npz"
            with storage.atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, pred=np.full(len(values), -1, dtype=np.int64), conf=np.asarray(values), label=label)
            written.append(path)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["set", "path", *scores])
    for name, images in paths.items():
        columns = [scores[score][name].tolist() for score in scores]
        writer.writerows([name, image, *(repr(c[i]) for c in columns)] for i, image in enumerate(images))
    storage.write_text(folder / TABLE, out.getvalue())
    return [*written, folder / TABLE]


def _npz(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.npz") if p.is_file()) if folder.is_dir() else []


def _score_folders(folder: Path) -> dict[str, Path]:
    """Score name -> its folder of .npz files: `folder` itself (named after itself, or after its parent when it is
    OpenOOD's `scores`), `folder/scores`, or each subfolder holding .npz files directly or in its `scores`."""
    if _npz(folder):
        return {folder.resolve().parent.name if folder.name == "scores" else folder.resolve().name: folder}
    if _npz(folder / "scores"):
        return {folder.resolve().name: folder / "scores"}
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for candidate in (sub, sub / "scores"):
            if _npz(candidate):
                found[sub.name] = candidate
                break
    if not found:
        raise ScoreFileError(f"{folder}: no .npz score files in it, in {folder / 'scores'} or in its subfolders "
                             "(expected <score>/scores/<set>.npz, as `synood evaluate --export-scores` writes, or "
                             "OpenOOD's <output_dir>/scores/<dataset>.npz)")
    return found


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(conf, label) of one OpenOOD score file, checked."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("one array, not an archive of pred, conf and label")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ScoreFileError(f"{path}: not a NumPy .npz score file ({exc})") from None
    missing = [k for k in ("conf", "label") if k not in arrays]
    if missing:
        raise ScoreFileError(f"{path}: no {' or '.join(missing)} array (has {', '.join(arrays) or 'none'}); "
                             "OpenOOD's score files hold pred, conf and label")
    conf, label = arrays["conf"], arrays["label"]
    if conf.ndim != 1 or label.shape != conf.shape or not np.issubdtype(conf.dtype, np.number):
        raise ScoreFileError(f"{path}: conf and label must be 1-D arrays of one length, got {conf.shape} "
                             f"{conf.dtype} and {label.shape}")
    return conf, label


def _listed(folder: Path) -> tuple[list[str], list[str]]:
    """(score names, set names) in the order of synood's scores.csv in `folder`; empty lists without one."""
    table = folder / TABLE
    if not table.is_file():
        return [], []
    with open(table, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, ["set", "path"])
        return header[2:], list(dict.fromkeys(row[0] for row in rows if row))


def paths(folder: str | Path) -> dict[str, list[str]]:
    """Each set's image paths in score order, from synood's scores.csv in `folder` ({} without one, as in
    OpenOOD's folders, which name no image)."""
    table = Path(folder) / TABLE
    if not table.is_file():
        return {}
    found: dict[str, list[str]] = {}
    with open(table, newline="") as f:
        for row in list(csv.reader(f))[1:]:
            if row:
                found.setdefault(row[0], []).append(row[1])
    return found


def _ordered(names: list[str], listed: list[str]) -> list[str]:
    """`names` in the order of `listed` (scores.csv's), the unlisted after them in their own order."""
    return [n for n in listed if n in names] + [n for n in names if n not in listed]


def read(folder: str | Path) -> ScoreFolder:
    """Every score's per-image values from a folder of OpenOOD-form score files (ours or OpenOOD's). The ID set is
    the one file whose labels hold no -1, as in OpenOOD; every other file must be all -1 (OOD)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScoreFileError(f"{folder}: no such folder")
    scores: dict[str, dict[str, np.ndarray]] = {}
    files: dict[str, dict[str, Path]] = {}
    id_sets: dict[str, str] = {}
    listed_scores, listed_sets = _listed(folder)
    folders = _score_folders(folder)
    for score in _ordered(list(folders), listed_scores):
        where = folders[score]
        id_found: dict[str, np.ndarray] = {}
        ood: dict[str, np.ndarray] = {}
        for path in _npz(where):
            conf, label = _load(path)
            ood_count = int(np.sum(label == OOD_LABEL))
            if 0 < ood_count < len(label):
                raise ScoreFileError(f"{path}: mixes {ood_count} OOD labels (-1) with {len(label) - ood_count} ID "
                                     "labels; one file holds one dataset, all ID or all OOD")
            (ood if ood_count else id_found)[path.stem] = conf
            files.setdefault(score, {})[path.stem] = path
        if len(id_found) != 1:
            raise ScoreFileError(f"{where}: {len(id_found)} ID score files ({', '.join(id_found) or 'none'}); "
                                 "exactly one file must have no label -1 (the ID set), the others all -1 (OOD)")
        if not ood:
            raise ScoreFileError(f"{where}: no OOD score file (labels -1) beside the ID set {next(iter(id_found))}")
        (id_sets[score],) = id_found
        scores[score] = {**id_found, **{n: ood[n] for n in _ordered(sorted(ood), listed_sets)}}
    first = next(iter(scores))
    for score, by_set in scores.items():
        shape = {n: len(v) for n, v in by_set.items()}
        expected = {n: len(v) for n, v in scores[first].items()}
        if id_sets[score] != id_sets[first] or shape != expected:
            raise ScoreFileError(f"{folder}: score {score} has sets {shape} (ID {id_sets[score]}) but {first} has "
                                 f"{expected} (ID {id_sets[first]}); every score must cover the same sets")
    return ScoreFolder(id_sets[first], scores, files)
