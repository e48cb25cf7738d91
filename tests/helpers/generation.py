"""Stage 1 through the installed entry point on the tiny suite: a training folder of packaged photos, `synood
generate` in one process or several, and the manifest it writes."""
import json
import os
import shutil
import subprocess
from pathlib import Path

from synood.data import photos
from tests.helpers.cli import SYNOOD, launched

SLOW = 580
TRAIN_CLASSES = ["n02123045", "n02123045", "coffee_mug", "coffee_mug"]  # a WNID and a class name, 2 photos each


def train_folder(root: Path) -> list[Path]:
    """root/train with the first 4 packaged ID photos copied into TRAIN_CLASSES' folders; the photos' paths."""
    chosen = [photo.path for photo in photos.photos("id")[:len(TRAIN_CLASSES)]]
    for path, cls in zip(chosen, TRAIN_CLASSES):
        (root / "train" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / "train" / cls / path.name)
    return chosen


def generate(*args, processes=1, timeout=SLOW) -> subprocess.CompletedProcess:
    """`synood generate --suite tiny *args`, under `accelerate launch` with `processes` processes when more than 1."""
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same float reductions in every process
    if processes == 1:
        command = [SYNOOD, "generate", "--suite", "tiny", *args]
    else:
        command = launched(processes, "generate", "--suite", "tiny", *args)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def records(folder: Path) -> list[dict]:
    """The records of `folder`'s manifest.jsonl, in order."""
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
