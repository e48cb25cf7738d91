"""`synood evaluate` under `accelerate launch` with 2 CPU processes: each process scores its part of every set (an
odd count, and a one-image set that leaves one process nothing), the scores are gathered back in order, and the
result equals one process's, with the images encoded afresh in each run (not read from the other's cache)."""
import csv
import json
import os
import subprocess

import numpy as np
import pytest

from synood.data import photos
from tests.helpers.caches import model_caches
from tests.helpers.cli import SYNOOD, launched
from tests.helpers.reports import flat

SETS = {"id": photos.photos("id")[:5], "textures": [photos.by_name(n) for n in ("brick", "grass", "gravel")],
        "one": [photos.by_name("moon")]}


def evaluate(root, out, processes):
    args = ["evaluate", "--suite", "tiny", "--id", str(root / "id"), "--ood", f"textures={root / 'textures'}",
            "--ood", f"one={root / 'one'}", "--convention", "all", "--export-scores", str(out), "--json"]
    command = [SYNOOD, *args] if processes == 1 else launched(processes, *args)
    result = subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return json.loads(result.stdout)


def rows(folder):
    with open(folder / "scores.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_give_the_scores_and_metrics_of_one(tmp_path):
    for name, chosen in SETS.items():
        (tmp_path / name).mkdir()
        for photo in chosen:
            os.symlink(photo.path, tmp_path / name / f"{photo.name}{photo.path.suffix}")
    before = model_caches()
    one = evaluate(tmp_path, tmp_path / "one", 1)
    for path in model_caches() - before:  # the second run encodes every image again
        path.unlink()
    two = evaluate(tmp_path, tmp_path / "two", 2)
    assert {n: s["count"] for n, s in two["ood"].items()} == {"textures": 3, "one": 1} and two["id"]["count"] == 5
    recorded = json.loads(subprocess.run([SYNOOD, "runs", "--json", two["run"]], capture_output=True, text=True,
                                         check=True).stdout)
    assert recorded["inputs"]["processes"] == 2 and "processes" not in json.loads(subprocess.run(
        [SYNOOD, "runs", "--json", one["run"]], capture_output=True, text=True, check=True).stdout)["inputs"]
    assert [(r["set"], r["path"]) for r in rows(tmp_path / "two")] == [(r["set"], r["path"])
                                                                        for r in rows(tmp_path / "one")]
    for method in one["methods"]:
        for name in ("ID", "textures", "one"):
            with np.load(tmp_path / "one" / method / "scores" / f"{name}.npz") as a, \
                    np.load(tmp_path / "two" / method / "scores" / f"{name}.npz") as b:
                np.testing.assert_allclose(b["conf"], a["conf"], rtol=1e-5, atol=1e-6)
        assert flat(two["methods"][method]) == pytest.approx(flat(one["methods"][method]))
